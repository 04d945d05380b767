"""The thread policy: how many CPU threads torch may use in a seqrec process.

torch runs its CPU kernels on an OpenMP thread pool as wide as the machine. One process alone is
best served that way; but two processes that each spread over all cores oversubscribe them, and
OpenMP threads that *spin* while they wait for their siblings then burn the cores the other
process needs: two small trainings side by side on a 2-core machine took 143 s against 3.4 s for
one alone (docs/benchmarks.md). seqrec therefore

* bounds how long a waiting OpenMP thread spins before it sleeps: ``GOMP_SPINCOUNT`` (the
  OpenMP runtime torch's CPU wheels ship is GNU libgomp) is set to ``SPIN_COUNT`` before torch is
  imported, unless the user set it or ``OMP_WAIT_POLICY``. libgomp's own default spins 300,000
  times (milliseconds), which is what made two processes on the same cores 40 times slower; no
  spinning at all (``OMP_WAIT_POLICY=PASSIVE``, this module's earlier policy) puts every thread
  to sleep between two operations and made one training alone 1.3x slower. A short spin bridges
  the microseconds between the operations of one process and gives the cores up soon after
  (docs/benchmarks.md, "Two trainings side by side");
* gives every process ``--threads N`` threads (or ``SEQREC_THREADS``), by default the cores it may
  run on divided by the number of worker processes seqrec itself starts on this machine
  (``--num-devices``, ``tune --n-jobs``), at least 1.
"""

from __future__ import annotations

import os


#: Spin iterations of a waiting OpenMP thread before it sleeps (``GOMP_SPINCOUNT``; each iteration
#: is one check and one pause instruction, so tens of microseconds in all).
SPIN_COUNT = 1000


def set_wait_policy() -> None:
    """Let waiting OpenMP threads spin only briefly before they sleep (must run before torch
    loads); a ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` the user set is left alone."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


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
