"""The model registry: one entry per model (``models/<name>_config.py``), keyed by name.

Everything the rest of seqrec needs to know about a model is in its entry (configs, model class,
batchers, headline figures, default data); nothing outside a model's own files switches on its
name. Importing this module does not import torch.
"""

from __future__ import annotations

from ..errors import MismatchError
from .bert4rec_config import ENTRY as BERT4REC
from .gru4rec_config import ENTRY as GRU4REC
from .sasrec_config import ENTRY as SASREC
from .spec import ModelEntry

REGISTRY: dict[str, ModelEntry] = {e.name: e for e in (GRU4REC, BERT4REC, SASREC)}


def entry_for(name: str, where: object = "checkpoint") -> ModelEntry:
    """The registry entry of ``name``; an unknown name is one error naming ``where`` it came from."""
    if name not in REGISTRY:
        raise MismatchError(f"{where}: unknown model {name!r} (this seqrec knows {', '.join(REGISTRY)})")
    return REGISTRY[name]
