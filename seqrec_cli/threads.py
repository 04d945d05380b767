"""The thread policy: how many CPU threads torch may use in a seqrec process.

torch runs its CPU kernels on an OpenMP thread pool as wide as the machine. One process alone is
best served that way; but two processes that each spread over all cores oversubscribe them, and
OpenMP threads that *spin* while they wait for their siblings then burn the cores the other
process needs: two small trainings side by side on a 2-core machine took 143 s against 3.4 s for
one alone (docs/benchmarks.md). seqrec therefore

* sets ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep instead of spinning) before torch is
  imported, unless the user set it, so processes that share cores slow each other down only in
  proportion to the work;
* gives every process ``--threads N`` threads (or ``SEQREC_THREADS``), by default the cores it may
  run on divided by the number of worker processes seqrec itself starts on this machine
  (``--num-devices``, ``tune --n-jobs``), at least 1.
"""

from __future__ import annotations

import os


def set_wait_policy() -> None:
    """Make OpenMP threads sleep rather than spin while they wait (must run before torch loads);
    a wait policy the user chose (``OMP_WAIT_POLICY``, or libgomp's ``GOMP_SPINCOUNT``) is left alone.

    A bounded spin (``GOMP_SPINCOUNT=1000``) was measured as the default instead and lost: one
    small training alone was slower than with sleeping threads, not faster (docs/benchmarks.md,
    "Two trainings side by side")."""
    if "GOMP_SPINCOUNT" not in os.environ:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
