"""Compiled loops (numba) for the CPU hot spots of GRU4Rec's training step and of full ranking.

A GRU4Rec step (batch 32, 2,048 shared negatives) is made of many small operations on the ~2,080
output rows it touches, so per-operation costs dominate, not arithmetic. Three of them run here as
one compiled pass each, with results identical to the torch operations they replace (which remain
the path on a GPU, and wherever numba cannot be used):

* the optimizer update of ``optim.AdagradM`` (Adagrad with momentum; a dozen torch passes over the
  touched rows: gathers, scatters, one element-wise operation each). Identical float32 results,
  bit for bit: both paths compute in float32 with an IEEE-rounded square root
  (``optim.sqrt_rounded``);
* the sorted unique rows of a step and each candidate's place among them (``torch.unique`` with
  ``sorted=True, return_inverse=True``: a sort; here a marking pass over the catalogue);
* the inverse-CDF lookup of popularity-sampled negatives (``torch.searchsorted``, a binary search
  per draw; here a guide table, Chen 1974, then a short linear search).

and, for every model's full-ranking evaluation, the pessimistic rank of each target (the items
scored at least as high as it, itself included: ``metrics.full_ranks``), counted in one pass over
a row instead of a comparison matrix and its sum.

numba is a dependency of seqrec; where it cannot be imported (a platform without its wheels) or
``SEQREC_NUMBA=0`` is set, :func:`compiled` returns None and the torch operations run. The kernels
compile on first use (under a second), cached on disk by numba where it can write (``__pycache__``
beside this file, else its user cache folder), and run on one thread. docs/benchmarks.md has the
measurements.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, NamedTuple

import numpy as np

ENV = "SEQREC_NUMBA"  # "0": never use the compiled kernels (the torch path; the same results)

#: Unique rows by one pass over the whole catalogue while it has at most this many entries per
#: value looked up (a scan of [0, n_values) beats a sort of the values); otherwise a sort.
SCAN_PER_VALUE = 32


class Kernels(NamedTuple):
    rows_step: Any
    dense_step: Any
    strictly_increasing: Any
    unique_inverse: Any
    guided_search: Any
    pessimistic_ranks: Any


@cache
def compiled() -> Kernels | None:
    """The compiled kernels, or None when numba is off (``SEQREC_NUMBA=0``) or missing.

    rows_step(p [n, d], acc [n, d], mom [n, d] or [0, d], rows [k] int64, grad [k, d], neg_lr,
    momentum, eps, use_momentum): for each given row r (unique) and column j, acc += g^2;
    u = neg_lr * g / sqrt(acc + eps); with momentum m = momentum * m + u, p += m; else p += u
    (Adagrad with momentum: the original GRU4Rec's optimizer). dense_step(p [n], acc [n], mom [n]
    or [0], grad [n], ...) is the same over every element of a flat parameter. The scalars come as
    numpy scalars of the arrays' float type, so a float32 update is computed in float32 throughout,
    as torch computes it.

    strictly_increasing(rows [k]) -> bool: each row once, in order (no sort or sum needed).

    unique_inverse(values [m] int64 in [0, n), mark [n] int64 all -1, scan) -> (rows [u], inverse
    [m]): rows = the sorted distinct values, rows[inverse] == values; ``mark`` is scratch space,
    left all -1 again; ``scan``: find the rows by a pass over [0, n) (else by a sort).

    guided_search(cdf [n] float64 non-decreasing with cdf[-1] = 1, guide [G + 1] int64, u [m] float64
    in [0, 1), out [m] int64): out[i] = the first j with cdf[j] > u[i], what ``torch.searchsorted(
    cdf, u, right=True)`` gives, where guide[k] = that index for u = k / G (:func:`cdf_guide`).

    pessimistic_ranks(scores [B, V] float32, targets [B] int64, out [B] int32): out[i] = the number
    of columns j with scores[i, j] >= scores[i, targets[i]] (the target itself included), or V when
    the target's score is NaN.
    """
    if os.environ.get(ENV, "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None

    def jit(fn):
        try:
            return numba.njit(nogil=True, boundscheck=False, error_model="numpy", cache=True)(fn)
        except RuntimeError:  # no writable cache location: compile in every process instead
            return numba.njit(nogil=True, boundscheck=False, error_model="numpy")(fn)

    @jit
    def rows_step(p, acc, mom, rows, grad, neg_lr, momentum, eps, use_momentum):  # pragma: no cover - compiled
        k, d = grad.shape
        for i in range(k):
            r = rows[i]
            for j in range(d):
                g = grad[i, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                u = (g / np.sqrt(a + eps)) * neg_lr
                if use_momentum:
                    u = mom[r, j] * momentum + u
                    mom[r, j] = u
                p[r, j] = p[r, j] + u

    @jit
    def dense_step(p, acc, mom, grad, neg_lr, momentum, eps, use_momentum):  # pragma: no cover - compiled
        for i in range(grad.shape[0]):
            g = grad[i]
            a = acc[i] + g * g
            acc[i] = a
            u = (g / np.sqrt(a + eps)) * neg_lr
            if use_momentum:
                u = mom[i] * momentum + u
                mom[i] = u
            p[i] = p[i] + u

    @jit
    def strictly_increasing(rows):  # pragma: no cover - compiled
        for i in range(1, rows.shape[0]):
            if rows[i] <= rows[i - 1]:
                return False
        return True

    @jit
    def unique_inverse(values, mark, scan):  # pragma: no cover - compiled
        m = values.shape[0]
        count = 0
        for i in range(m):
            v = values[i]
            if v < 0 or v >= mark.shape[0]:
                raise IndexError("an item index outside the catalogue")
            if mark[v] < 0:
                mark[v] = count  # first-seen order for now
                count += 1
        rows = np.empty(count, np.int64)
        if scan:
            j = 0
            for v in range(mark.shape[0]):
                if mark[v] >= 0:
                    rows[j] = v
                    j += 1
        else:
            for i in range(m):
                v = values[i]
                rows[mark[v]] = v
            rows.sort()
        for j in range(count):
            mark[rows[j]] = j
        inverse = np.empty(m, np.int64)
        for i in range(m):
            inverse[i] = mark[values[i]]
        for j in range(count):
            mark[rows[j]] = -1
        return rows, inverse

    @jit
    def guided_search(cdf, guide, u, out):  # pragma: no cover - compiled
        g = guide.shape[0] - 1
        last = cdf.shape[0] - 1
        for i in range(u.shape[0]):
            x = u[i]
            k = int(x * g)
            j = guide[k - 1 if k > 0 else 0]  # a lower bound even if x * g rounded up to k
            while j < last and cdf[j] <= x:
                j += 1
            out[i] = j

    @jit
    def pessimistic_ranks(scores, targets, out):  # pragma: no cover - compiled
        b, v = scores.shape
        for i in range(b):
            t = targets[i]
            if t < 0 or t >= v:
                raise IndexError("a target outside the scored columns")
            x = scores[i, t]
            if x != x:  # NaN
                out[i] = v
                continue
            count = 0
            for j in range(v):
                if scores[i, j] >= x:
                    count += 1
            out[i] = count

    return Kernels(rows_step, dense_step, strictly_increasing, unique_inverse, guided_search, pessimistic_ranks)


def cdf_guide(cdf: np.ndarray) -> np.ndarray:
    """[G + 1] int64, G = len(cdf): guide[k] = the first j with cdf[j] > k / G (the guide table of
    :func:`compiled`'s guided_search; about one step of linear search per draw)."""
    g = len(cdf)
    return np.searchsorted(cdf, np.arange(g + 1, dtype=np.float64) / g, side="right").clip(max=g - 1).astype(np.int64)


class UniqueRows:
    """The distinct item indices of a training step in [0, n_values), sorted, and each value's
    place among them: what ``torch.unique(values, sorted=True, return_inverse=True)`` returns,
    compiled (with a scratch array of n_values kept between calls) on the CPU where numba is on."""

    def __init__(self, n_values: int):
        self.n_values = n_values
        self._mark: np.ndarray | None = None

    def __call__(self, values):
        import torch

        kernels = compiled()
        if kernels is None or values.device.type != "cpu":
            return torch.unique(values, sorted=True, return_inverse=True)
        if self._mark is None:
            self._mark = np.full(self.n_values, -1, dtype=np.int64)
        v = values.numpy() if values.dtype == torch.int64 else values.numpy().astype(np.int64)
        scan = self.n_values <= SCAN_PER_VALUE * max(1, len(v))
        rows, inverse = kernels.unique_inverse(v, self._mark, scan)
        return torch.from_numpy(rows), torch.from_numpy(inverse)
