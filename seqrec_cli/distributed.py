"""Several processes, one run: data parallelism on ``torch.distributed``, started by torchrun.

Everything seqrec knows about running in several processes is here; the training loop, the
scoring layer and the commands call it, the models never do (docs/distributed.md).

* **Launch.** ``--num-devices N`` re-runs the same command line as ``python -m seqrec_cli ...``
  under torchrun's own launcher (``torch.distributed.run``, ``--standalone``, N processes on this
  machine); the same commands run unchanged under a ``torchrun`` the user starts (one or several
  nodes). A process started by torchrun finds its rank and world in torchrun's environment
  (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``PORT``) and
  joins the process group: gloo on CPUs, NCCL with ``--use-cuda`` (one GPU per process).
* **Sharding.** :class:`Shard` says which part of the data a process handles: its rows of a
  split, its training windows, its slots of GRU4Rec's session-parallel walk, and the seeds of
  its own random streams (derived from the run's seed and the rank).
* **Collectives.** Exact sums (integer histograms, float64 totals), gathering to rank 0, a value
  decided on rank 0 for everyone, and a check that every process holds the same weights.
* **Failures.** A worker records its error for the launcher (torchrun's error file); the launcher
  turns the first real failure into one ``Error:`` line. torchrun's agent stops the other workers
  as soon as one ends badly, and the process group has a timeout, so nothing hangs.

Importing this module does not import torch (the CLI imports it at start-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import SeqrecError

ENV_LAUNCHED = "SEQREC_LAUNCHED"  # set by --num-devices's launcher for the workers it starts
ENV_TIMEOUT = "SEQREC_DIST_TIMEOUT"  # seconds a collective may wait for the other processes
ENV_SPARSE = "SEQREC_SPARSE_ALLREDUCE"  # "dense": all-reduce sparse gradients densely on gloo too (tests)
DEFAULT_TIMEOUT_S = 600  # a process that neither works nor dies is given up on after this long

COMMAND_LINE: list[str] = []  # the arguments of this seqrec invocation (set by the CLI), re-run by the launcher


# ---------------------------------------------------------------------------------------------- who we are
@dataclass(frozen=True)
class Shard:
    """One process's part of the work: ``rank`` of ``world`` processes (0 of 1 in a single process)."""

    rank: int = 0
    world: int = 1

    def rows(self, n: int):
        """The indices 0..n-1 this process handles (every world-th, from its rank)."""
        import numpy as np

        return np.arange(self.rank, n, self.world, dtype=np.int64)

    def seed(self, base: int, *stream: int) -> int:
        """The seed of one of this process's random streams: ``base`` itself in a single process (the
        streams of a 1-process run are those of seqrec without this module), else a seed derived from
        (base, rank, world, stream) so that no two processes draw the same numbers."""
        if self.world == 1 and not stream:
            return base
        import numpy as np

        words = np.random.SeedSequence([base, self.rank, self.world, *stream]).generate_state(2, np.uint32)
        return (int(words[0]) << 31) | (int(words[1]) >> 1)  # < 2**63: fits torch.Generator.manual_seed


@dataclass(frozen=True)
class Context:
    """This process's place in the run; a single process is rank 0 of 1 with no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # gloo | nccl | None (one process)
    device: Any = None  # torch.device this process computes on
    threads: int | None = None  # torch threads of this process (None: torch's default)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world_size)

    @property
    def distributed(self) -> bool:
        """A process group exists (started by torchrun, even with one process: then every
        collective and the DDP wrapper run too, and the result is that of one plain process)."""
        return self.backend is not None


_ctx = Context()


def context() -> Context:
    return _ctx


def shard() -> Shard:
    return _ctx.shard


def is_main() -> bool:
    return _ctx.is_main


def under_torchrun() -> bool:
    """Was this process started by torchrun (``--num-devices``' launcher or the user's own)?"""
    return "TORCHELASTIC_RUN_ID" in os.environ or all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def thread_count(requested: int | None, local_world_size: int) -> int:
    """Torch threads of one process: ``--threads`` when given, else the cores divided among the
    processes on this machine (at least 1)."""
    from .threads import default_threads

    return requested if requested else default_threads(local_world_size)


# ---------------------------------------------------------------------------------------------- start
def start(num_devices: int | None, use_cuda: bool, threads: int | None, resumable: bool = False) -> Context | None:
    """Begin a command: the :class:`Context` this process works in, or None in the process that
    launched the workers (they have done the work when it returns; a failure is a SeqrecError).

    One process (no ``--num-devices``, not under torchrun): sets the thread count (``--threads``,
    else the thread policy's default, :mod:`seqrec_cli.threads`). Under
    torchrun: joins the process group. ``--num-devices N > 1`` elsewhere: starts N workers.
    ``resumable``: the command is a training run (a failure message mentions --resume)."""
    global _ctx
    if under_torchrun():
        _ctx = _join(num_devices, use_cuda, threads)
        return _ctx
    if num_devices is not None and num_devices > 1:
        launch(num_devices, use_cuda, threads, resumable)
        return None
    from .training import pick_device

    device = pick_device(use_cuda)
    from .threads import configure

    _ctx = Context(device=device, threads=configure(threads))
    return _ctx


def _join(num_devices: int | None, use_cuda: bool, threads: int | None) -> Context:
    """Join the process group of the run torchrun started (this process is one of its workers)."""
    import datetime

    import torch
    import torch.distributed as dist

    _die_with_parent()
    env = os.environ
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", 0))
    local_world = int(env.get("LOCAL_WORLD_SIZE", 1))
    if num_devices is not None and num_devices != local_world:
        raise SeqrecError(
            f"--num-devices {num_devices} under torchrun, which started {local_world} process(es) on this machine: "
            "drop --num-devices (torchrun's --nproc-per-node decides)"
        )
    if use_cuda:
        from .training import pick_device

        pick_device(True)  # CUDA present at all
        if local_rank >= torch.cuda.device_count():
            raise SeqrecError(
                f"--use-cuda: process {local_rank} of this machine has no GPU of its own "
                f"({torch.cuda.device_count()} visible); start at most that many processes per machine"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    n_threads = thread_count(threads, local_world)
    torch.set_num_threads(n_threads)
    if rank != 0:
        from .console import err, out

        out.quiet = err.quiet = True  # only rank 0 prints
    timeout = datetime.timedelta(seconds=float(env.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)))
    kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
    if backend == "nccl":
        kwargs["device_id"] = device
    dist.init_process_group(**kwargs)
    import atexit

    atexit.register(_leave)
    return Context(rank, world, local_rank, local_world, backend, device, n_threads)


def leave_together() -> None:
    """After a command succeeded in every worker: wait for all of them, then close the process
    group, so no worker tears down its connections while a peer still uses them (gloo aborted a
    worker with "terminate called without an active exception" when one left first). A failing
    worker does not wait here: it leaves through the launcher's stop."""
    if not _ctx.distributed:  # one process (and no torch import for the commands that need none)
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def _die_with_parent() -> None:
    """Linux: end this worker when the process that started it (torchrun's agent) is killed, so a
    ``kill -9`` of the launcher never leaves workers training on their own."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent was gone before the call
            os._exit(1)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


# ---------------------------------------------------------------------------------------------- launch
def launch(num_devices: int, use_cuda: bool, threads: int | None, resumable: bool = False) -> None:
    """Run this command line in ``num_devices`` processes on this machine through torchrun's
    launcher (``--standalone``: a private rendezvous on a free port) and wait for them.

    A worker's failure stops the others (torchrun's agent) and is raised here as one SeqrecError:
    the first real failure (a worker's own error, or a worker killed by a signal), not the
    connection errors it caused in the others."""
    if use_cuda:
        import torch

        from .training import pick_device

        pick_device(True)
        if torch.cuda.device_count() < num_devices:
            raise SeqrecError(
                f"--num-devices {num_devices} --use-cuda: only {torch.cuda.device_count()} GPU(s) visible; "
                "one process per GPU"
            )
    per_worker = thread_count(threads, num_devices)
    debug = "--debug" in COMMAND_LINE or bool(os.environ.get("SEQREC_DEBUG"))
    env = {ENV_LAUNCHED: "1", "OMP_NUM_THREADS": str(per_worker)}
    if not debug:
        env.update(LOGLEVEL="CRITICAL", TORCH_CPP_LOG_LEVEL="ERROR")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _quiet_elastic_logs(debug)
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.run import get_args_parser, run

        args = get_args_parser().parse_args(
            ["--standalone", "--nproc-per-node", str(num_devices), "--monitor-interval", "0.1",
             "-m", "seqrec_cli", *COMMAND_LINE]
        )  # fmt: skip
        try:
            run(args)
        except ChildFailedError as exc:
            raise SeqrecError(failure_message(exc.failures, num_devices, resumable)) from None
        except SignalException:
            raise KeyboardInterrupt from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quiet_elastic_logs(debug: bool) -> None:
    """torchrun's agent logs every worker's exit; seqrec reports the failure itself."""
    import logging

    if debug:
        return
    import torch.distributed.elastic  # noqa: F401  (creates the loggers)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def failure_message(failures: dict[int, Any], world: int, resumable: bool) -> str:
    """One sentence from torchrun's failure records (global rank -> ProcessFailure): the first
    worker that failed on its own account, with seqrec's own message when it left one."""

    def own(f) -> dict[str, Any] | None:
        data = f.error_file_data if isinstance(f.error_file_data, dict) else {}
        return data.get("seqrec") if isinstance(data.get("seqrec"), dict) else None

    def priority(item):
        import signal

        rank, f = item
        mine = own(f)
        if mine is not None:
            kind = 4 if mine.get("peer") else 0  # its own error (bad input on that rank, a bug) / another's echo
        elif f.exitcode < 0:
            kind = 3 if -f.exitcode == signal.SIGTERM else 1  # SIGTERM: most likely the agent stopping it
        else:
            kind = 2  # ended without saying why
        return (kind, f.timestamp, rank)

    rank, f = min(failures.items(), key=priority)
    mine = own(f)
    after = "; every checkpoint written is whole: continue with --resume" if resumable else ""
    if mine is not None and mine.get("user_error") and not mine.get("peer"):
        return str(mine["message"])  # a user error: the very line one process would print
    if mine is not None:
        return f"worker {rank} of {world}: {mine['message']}; the others were stopped{after}"
    if f.exitcode < 0:
        why = f.signal_name()
        hint = " (out of memory, or killed by hand)" if why == "SIGKILL" else ""
        return f"worker {rank} of {world} (PID {f.pid}) was killed by {why}{hint}; the others were stopped{after}"
    return f"worker {rank} of {world} (PID {f.pid}) exited with code {f.exitcode}; the others were stopped{after}"


def record_failure(exc: BaseException, user_error: bool) -> bool:
    """A worker failed with ``exc``: leave its message for the launcher in torchrun's error file;
    True when this process should print its own ``Error:`` line (not under ``--num-devices``'
    launcher, which prints one line for the whole run)."""
    peer = isinstance(exc, PeerError) or _is_collective_error(exc)
    message = str(exc) if user_error else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        import traceback

        data = {
            "message": {
                "message": message,
                "extraInfo": {"py_callstack": "".join(traceback.format_exception(exc)), "timestamp": str(int(time.time()))},
            },
            "seqrec": {"message": message, "peer": peer, "user_error": user_error, "rank": _ctx.rank},
        }
        with contextlib.suppress(OSError):
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
    return not os.environ.get(ENV_LAUNCHED)


def error_prefix() -> str:
    """How a worker under a user's torchrun labels its own error line (rank 0 prints plainly)."""
    return f"(rank {_ctx.rank} of {_ctx.world_size}) " if _ctx.rank else ""


class PeerError(SeqrecError):
    """This process stopped because another one failed (it carries that one's message)."""


def _is_collective_error(exc: BaseException) -> bool:
    """An error raised by a collective because another process went away."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return False
    kinds = tuple(k for k in (getattr(dist, "DistError", None),) if k is not None)
    text = str(exc)
    return (kinds and isinstance(exc, kinds)) or (
        isinstance(exc, RuntimeError)
        and any(s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Gloo", "NCCL"))
    )


# ---------------------------------------------------------------------------------------------- collectives
def _comm(t):
    """A tensor where this backend communicates (NCCL: the GPU)."""
    return t.to(_ctx.device) if _ctx.backend == "nccl" else t


def sum_int64(values) -> Any:
    """Exact element-wise sum over the processes of an int64 numpy array (same shape on every one)."""
    import numpy as np

    if not _ctx.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = _comm(torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)))
    dist.all_reduce(t)
    return t.cpu().numpy()


def sum_float64(*values: float) -> tuple[float, ...]:
    """Sums over the processes of a few float64 values (in rank order: the same on every process)."""
    if not _ctx.distributed:
        return values
    gathered = all_gather(list(values))
    return tuple(sum(g[i] for g in gathered) for i in range(len(values)))


def max_int(value: int) -> int:
    if not _ctx.distributed:
        return value
    return max(all_gather(value))


def all_gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (small picklable values)."""
    if not _ctx.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * _ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def reduce_to_main(values) -> Any:
    """The element-wise int64 sum of ``values`` over the processes, on rank 0 (others: None)."""
    import numpy as np

    if not _ctx.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = _comm(torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)))
    dist.reduce(t, dst=0)
    return t.cpu().numpy() if _ctx.is_main else None


def from_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on rank 0 only, its result given to every process; an error of rank 0 is raised
    on every process (as PeerError elsewhere), so they stop together."""
    if not _ctx.distributed:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    error: SeqrecError | None = None
    if _ctx.is_main:
        try:
            box[0] = ("ok", fn())
        except SeqrecError as exc:
            error = exc
            box[0] = ("error", str(exc))
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    status, value = box[0]
    if status == "error":
        raise PeerError(value)
    return value


def barrier() -> None:
    if _ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def check_replicas(model) -> None:
    """Every process holds bitwise the same weights (data parallelism keeps them so; a difference
    would make rank 0's checkpoint a model no process trained). Raises SeqrecError otherwise."""
    if not _ctx.distributed:
        return
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    seen = all_gather(digest.hexdigest())
    if len(set(seen)) > 1:
        raise SeqrecError(
            f"the processes' weights differ ({', '.join(s[:8] for s in seen)}): they no longer train one model "
            "(a bug: please report it)"
        )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KB)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)


# ---------------------------------------------------------------------------------------------- training
@dataclass
class DataParallel:
    """The model as the training loop calls it: ``forward(batch)`` (DistributedDataParallel when
    there are several processes, else the model itself) and ``after_backward()``.

    Sparse gradients (the item embeddings of GRU4Rec, ``nn.Embedding(sparse=True)``) are left out of
    DDP, whose reducer wants one layout per parameter for the whole run (GRU4Rec's ``--loss ce``
    mixes a sparse lookup and a dense product on one weight), and are all-reduced here after the
    backward pass: on gloo as sparse tensors (only the rows a step touched travel), densely where
    some process has a dense gradient. NCCL cannot all-reduce sparse tensors: there the gradient
    goes as a dense tensor together with a mask of the rows any process touched, and is made
    sparse again over exactly those rows, so the optimizer updates the same rows as on gloo or in
    one process (bitwise the same result; ``SEQREC_SPARSE_ALLREDUCE=dense`` takes that path on
    gloo, which is how it is tested without a GPU)."""

    model: Any
    forward: Any = None
    sparse: list[Any] = field(default_factory=list)  # parameters all-reduced by after_backward
    dense_path: bool = False  # the NCCL way (dense tensor + row mask)

    def __post_init__(self) -> None:
        self.forward = self.model
        if not _ctx.distributed:
            return
        import inspect

        from torch import nn
        from torch.nn.parallel import DistributedDataParallel as DDP

        names = [
            f"{name}.weight" if name else "weight"
            for name, m in self.model.named_modules()
            if isinstance(m, nn.Embedding) and m.sparse
        ]
        if names:
            DDP._set_params_and_buffers_to_ignore_for_model(self.model, names)
            params = dict(self.model.named_parameters())
            self.sparse = [params[n] for n in names]
            self.dense_path = _ctx.backend == "nccl" or os.environ.get(ENV_SPARSE) == "dense"
        ids = [_ctx.device.index] if _ctx.backend == "nccl" else None
        # no buffer traffic per step (seqrec's models keep no state in buffers)
        no_sync = "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
        buffers = {"forward_sync_buffers": False} if no_sync else {"broadcast_buffers": False}
        self.forward = DDP(self.model, device_ids=ids, **buffers)

    def after_backward(self) -> None:
        """All-reduce (mean over the processes) the gradients DDP does not handle."""
        if not self.sparse:
            return
        import torch
        import torch.distributed as dist

        world = _ctx.world_size
        if self.dense_path:
            for p in self.sparse:
                g = p.grad
                touched = torch.zeros(p.shape[0] + 1, device=p.device)  # rows touched; last: "a dense gradient"
                if g is None:
                    dense = torch.zeros_like(p)
                elif g.is_sparse:
                    g = g.coalesce()
                    dense = torch.zeros_like(p).index_add_(0, g.indices()[0], g.values())
                    touched[g.indices()[0]] = 1.0
                else:
                    dense = g.clone()
                    touched[-1] = 1.0
                dense.div_(world)
                dist.all_reduce(dense)
                dist.all_reduce(touched)
                if touched[-1] > 0:
                    p.grad = dense
                else:
                    rows = torch.nonzero(touched[:-1]).squeeze(1)
                    p.grad = torch.sparse_coo_tensor(
                        rows.unsqueeze(0), dense[rows], p.shape, check_invariants=False
                    ).coalesce()
            return
        # gloo: one small all-reduce says which parameters have a dense gradient somewhere
        dense_somewhere = torch.tensor([float(p.grad is not None and not p.grad.is_sparse) for p in self.sparse])
        dist.all_reduce(dense_somewhere)
        for p, dense in zip(self.sparse, dense_somewhere.tolist()):
            g = p.grad
            if g is None:
                g = torch.sparse_coo_tensor(
                    torch.zeros(1, 0, dtype=torch.long), p.new_zeros((0, *p.shape[1:])), p.shape, check_invariants=False
                )
            if dense:
                g = (g.to_dense() if g.is_sparse else g) / world
            else:
                g = g.coalesce() / world
            dist.all_reduce(g)
            p.grad = g
