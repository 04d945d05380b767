"""Negative items drawn by popularity^alpha, pre-drawn in bulk (GRU4Rec's sample cache).

Drawing a few thousand negatives per step one call at a time costs more than the step itself,
so a large block of steps' worth of samples is drawn at once by inverse-CDF lookup and handed
out step by step. The draw uses its own ``torch.Generator`` so it is reproducible; the block is
dropped at every epoch start, so the generator state at an epoch boundary is all a checkpoint needs.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import kernels


def popularity(seqs_items: np.ndarray, n_items: int) -> np.ndarray:
    """Event counts of items 0..n_items (index 0, padding, is always 0)."""
    counts = np.bincount(seqs_items, minlength=n_items + 1).astype(np.float64)
    counts[0] = 0
    return counts


class PopularitySampler:
    def __init__(
        self,
        counts: np.ndarray,  # [n_items + 1] event counts, counts[0] = 0
        n_sample: int,
        alpha: float,
        generator: torch.Generator,
        cache_events: int = 10_000_000,  # how many samples to draw per refill
        device: torch.device = torch.device("cpu"),
    ):
        weights = np.where(counts > 0, counts, 0.0) ** alpha
        weights[0] = 0.0
        cdf = np.cumsum(weights) / weights.sum()
        cdf[-1] = 1.0
        self.cdf = torch.tensor(cdf, dtype=torch.float64, device=device)  # [n_items + 1]
        self._guide = kernels.cdf_guide(cdf) if device.type == "cpu" else None  # for the compiled search
        self.n_sample = n_sample
        self.generator = generator
        self.device = device
        self.block = max(1, cache_events // max(1, n_sample))
        self._cache: torch.Tensor | None = None
        self._next = 0

    def _refill(self) -> None:
        u = torch.rand(self.block * self.n_sample, generator=self.generator, dtype=torch.float64, device=self.device)
        compiled = kernels.compiled() if self._guide is not None else None
        if compiled is not None:  # the same indices, by a guide table instead of a binary search per draw
            idx = torch.empty(len(u), dtype=torch.int64)
            compiled.guided_search(self.cdf.numpy(), self._guide, u.numpy(), idx.numpy())
        else:
            idx = torch.searchsorted(self.cdf, u, right=True).clamp_(max=len(self.cdf) - 1)
        self._cache = idx.view(self.block, self.n_sample)  # first cdf > u; never 0 since cdf[0] = 0
        self._next = 0

    def draw(self) -> torch.Tensor:
        """[n_sample] item indices for one step."""
        if self._cache is None or self._next >= self.block:
            self._refill()
        assert self._cache is not None
        out = self._cache[self._next]
        self._next += 1
        return out

    def new_epoch(self) -> None:
        """Drop the unused rest of the block, so an epoch's draws depend only on the generator state
        at its start (which is what a checkpoint stores)."""
        self._cache = None
