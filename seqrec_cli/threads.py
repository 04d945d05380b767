"""The thread policy: how many CPU threads torch may use in a seqrec process.

torch runs its CPU kernels on an OpenMP thread pool as wide as the machine. One process alone is
best served that way; but two processes that each spread over all cores oversubscribe them, and
OpenMP threads that *spin* while they wait for their siblings then burn the cores the other
process needs: two small trainings side by side on a 2-core machine took 143 s against 3.4 s for
one alone (docs/benchmarks.md). seqrec therefore

* sets ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning) and, for libgomp
  (the OpenMP runtime of torch's Linux wheels), ``GOMP_SPINCOUNT=4000`` (a waiting thread spins
  a few tens of microseconds before it sleeps) before torch is imported, unless the user set
  either, so processes that share cores slow each other down only in proportion to the work,
  while one process alone keeps its threads awake between the operations of a step (sleeping at
  once made a BERT4Rec step on ML-1M 1.4x slower, docs/benchmarks.md);
* gives every process ``--threads N`` threads (or ``SEQREC_THREADS``), by default the cores it may
  run on divided by the number of worker processes seqrec itself starts on this machine
  (``--num-devices``, ``tune --n-jobs``), at least 1.
"""

from __future__ import annotations

import os


#: libgomp's spin count before a waiting thread sleeps (libgomp counts about 100,000 spins per
#: millisecond): long enough to bridge the gap between the operations of one training step, short
#: enough that two processes sharing the cores do not burn each other's time.
SPIN_COUNT = "4000"


def set_wait_policy() -> None:
    """Make OpenMP threads sleep after a short spin while they wait (must run before torch loads);
    a wait policy the user chose (``OMP_WAIT_POLICY``, or libgomp's ``GOMP_SPINCOUNT``) is left alone.

    Measured (docs/benchmarks.md, "Two trainings side by side"): sleeping at once (PASSIVE alone)
    kept two runs side by side at twice one run's time but made one BERT4Rec ML-1M step 1.4x
    slower than spinning; longer spins make one run alone faster and two side by side slower
    (10,000: the pair 3.6x one run); 4,000 keeps the pair at twice one run and one BERT4Rec run
    1.35x faster than sleeping at once."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup-limited containers included)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(processes: int = 1) -> int:
    """The default of ``--threads``: the available cores shared by ``processes`` seqrec workers."""
    return max(1, available_cores() // max(1, processes))


def configure(threads: int | None, processes: int = 1) -> int:
    """Set torch's intra-op thread count: ``threads``, or the default for ``processes`` workers on
    this machine; returns the count used."""
    import torch

    n = threads if threads else default_threads(processes)
    torch.set_num_threads(n)
    return n
