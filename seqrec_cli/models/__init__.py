"""Models: typed dataclass configs and nn.Modules, and the explicit name -> class registry."""

from __future__ import annotations

from .bert4rec import Bert4Rec, Bert4RecConfig
from .gru4rec import GRU4Rec, GRU4RecConfig

REGISTRY: dict[str, tuple[type, type]] = {
    "gru4rec": (GRU4RecConfig, GRU4Rec),
    "bert4rec": (Bert4RecConfig, Bert4Rec),
}
