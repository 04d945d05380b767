"""The bundled sample: a small synthetic data set with real sequential structure.

A user's next item depends on the current one (each item has three likely successors) mixed
with popularity-skewed noise, so a sequence model must clearly beat a popularity ranking, yet
the whole set trains in seconds. It is written as a raw MovieLens-style ``ratings.dat``
(shuffled within each user, like the real file) and processed by the very same ML-1M pipeline,
so the demo exercises real preprocessing. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_path


@dataclass(frozen=True)
class SampleSpec:
    users: int = 600
    items: int = 240  # catalogue of the Markov chain
    rare_items: int = 12  # extra items seen fewer than 5 times: the 5-core filter drops them
    min_len: int = 12
    max_len: int = 60
    follow: float = 0.75  # probability the next item is one of the current item's successors
    zipf: float = 1.1  # popularity skew of the noise items
    seed: int = 2024


def generate_ratings(spec: SampleSpec = SampleSpec()) -> list[tuple[int, int, int, int]]:
    """(user, movie, rating, timestamp) rows, grouped by user, shuffled within a user."""
    rng = np.random.default_rng(spec.seed)
    n = spec.items
    successors = np.stack([rng.permutation(n) for _ in range(3)], axis=1)  # [n, 3]
    succ_p = np.array([0.6, 0.3, 0.1])
    pop = 1.0 / np.arange(1, n + 1) ** spec.zipf
    pop = pop[rng.permutation(n)]
    pop /= pop.sum()
    movie_ids = np.sort(rng.choice(np.arange(1, 4 * n), size=n + spec.rare_items, replace=False))
    core_ids = movie_ids[rng.permutation(len(movie_ids))[:n]]
    rare_ids = np.setdiff1d(movie_ids, core_ids)
    rows: list[tuple[int, int, int, int]] = []
    for u in range(1, spec.users + 1):
        length = int(rng.integers(spec.min_len, spec.max_len + 1))
        cur = int(rng.choice(n, p=pop))
        seq = [cur]
        for _ in range(length - 1):
            if rng.random() < spec.follow:
                cur = int(successors[cur, rng.choice(3, p=succ_p)])
            else:
                cur = int(rng.choice(n, p=pop))
            seq.append(cur)
        movies = [int(core_ids[i]) for i in seq]
        if u <= spec.rare_items * 3:  # a few users also touch rare items (< 5 ratings each)
            movies.insert(int(rng.integers(0, len(movies))), int(rare_ids[(u - 1) // 3]))
        base = 956_703_932 + int(rng.integers(0, 30_000_000))
        gaps = rng.integers(1, 5_000, size=len(movies))
        stamps = base + np.cumsum(gaps)
        ratings = rng.integers(1, 6, size=len(movies))
        user_rows = [(u, m, int(r), int(t)) for m, r, t in zip(movies, ratings, stamps)]
        for i in rng.permutation(len(user_rows)):
            rows.append(user_rows[i])
    # one user whose ratings are all rare-ish would be dropped by the user filter: make one with 4
    extra_user = spec.users + 1
    for k in range(4):
        rows.append((extra_user, int(core_ids[k]), 3, 978_300_000 + k))
    return rows


def write_ratings(path: Path, rows: list[tuple[int, int, int, int]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in rows), encoding="latin-1")
