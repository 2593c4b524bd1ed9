"""Distributed helpers: init from the torchrun (or SLURM) environment, rank / world size, small collectives."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from detkit.utils.device import DeviceError, parse_device


def is_dist() -> bool:
    """True when ``torch.distributed`` is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0: the only process that logs and writes files."""
    return get_rank() == 0


def _slurm_to_torchrun_env() -> None:
    """Fill RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR from SLURM when a job runs one task per GPU via srun."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    os.environ["RANK"] = os.environ["SLURM_PROCID"]
    os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
    os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
    if "MASTER_ADDR" not in os.environ:
        nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", "127.0.0.1")
        try:
            out = subprocess.run(
                ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
            ).stdout.split()
            os.environ["MASTER_ADDR"] = out[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            os.environ["MASTER_ADDR"] = nodes.split(",")[0]
    os.environ.setdefault("MASTER_PORT", "29500")


def env_world_size() -> int:
    """World size announced by the launcher (torchrun or SLURM), before initialisation."""
    _slurm_to_torchrun_env()
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | None = None) -> torch.device:
    """Initialise the default process group from the environment and return this process's device.

    Uses NCCL when the device is CUDA and gloo on CPU. Without a launcher (WORLD_SIZE unset or 1) it
    initialises nothing and returns ``device`` (default: ``cuda`` when available, else ``cpu``). ``device``
    is read by :func:`detkit.utils.device.parse_device` (``cpu``, ``cuda``, ``cuda:1``, ``1``, ``mps``).
    """
    world = env_world_size()
    dev = parse_device(device)  # DeviceError (a ValueError) names what exists here
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        if dev.type == "cuda" and dev.index is not None:
            torch.cuda.set_device(dev)  # the current device: pinned-memory threads, per-device checks
        return dev
    if dev.type == "cuda" and dev.index is not None:  # every rank would take that one GPU: NCCL refuses
        raise DeviceError(
            f"--device {device} under torchrun ({world} processes): each process takes the GPU of its LOCAL_RANK; "
            "give --device cuda, and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":  # modulo the visible GPUs: `srun --gpus-per-task 1` shows each task its GPU alone
        _check_gpus_per_node()
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend=backend, init_method="env://", device_id=dev if dev.type == "cuda" else None)
    except (dist.DistNetworkError, dist.DistStoreError) as e:  # the rendezvous (not NCCL's own failures)
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise DeviceError(
            f"the {world} processes could not meet at MASTER_ADDR:MASTER_PORT {where} "
            f"({' '.join(str(e).split())[:160]}): the port may be in use by another run, or the address unreachable; "
            "set MASTER_PORT to a free port (torchrun: --master-port, or --standalone on one machine)"
        ) from e
    return dev


def _check_gpus_per_node() -> None:
    """Refuse more processes per machine (torchrun's LOCAL_WORLD_SIZE) than GPUs in sight: two processes on one
    GPU is what NCCL refuses later with its own message."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    gpus = torch.cuda.device_count()
    if local > gpus > 1:  # (one GPU in sight: each process may be shown its own, as srun --gpus-per-task does)
        raise DeviceError(
            f"{local} processes per machine (torchrun --nproc-per-node {local}) but {gpus} GPU(s) in sight: give "
            f"--nproc-per-node {gpus} or fewer (CUDA_VISIBLE_DEVICES chooses which GPUs)"
        )


def destroy() -> None:
    """Tear down the process group if this process created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Synchronise every process (no-op when not distributed)."""
    if is_dist():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over processes in place and return it (no-op when not distributed)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of ``t`` over processes, in place, and return it (no-op when not distributed)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_gather_object(obj: Any) -> list[Any]:
    """Gather a picklable object from every process; ``[obj]`` when not distributed."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Return rank ``src``'s ``obj`` on every process."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(fn: Any, *args: Any, errors: tuple[type[BaseException], ...] = (Exception,)) -> None:
    """Run ``fn(*args)`` on rank 0 alone (a check that reads files, a first write); an error of ``errors`` it
    raises there is raised on every rank, so that all stop together."""
    error = None
    if is_main_process():
        try:
            fn(*args)
        except errors as e:
            error = e
    error = broadcast_object(error)
    if error is not None:
        raise error


class StopSignals:
    """While active, the first SIGINT / SIGTERM only sets ``requested`` (the trainer finishes its step,
    saves and exits); a second SIGINT (or SIGTERM) raises ``KeyboardInterrupt`` at once.

    Args:
        verbose: say that the signal was received (on stderr); one process of a distributed run says it (a
            terminal's Ctrl-C reaches every rank).
        log: also called with that message (the trainer writes it into log.txt), when ``verbose``.

    A terminal sends its Ctrl-C to the whole process group, DataLoader workers included; a worker forked while
    the handler is active inherits it, and there it stays silent: the first signal changes nothing (the worker
    keeps serving the step that finishes), the second ends the worker as torch's own handling does.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, verbose: bool = True, log: Callable[[str], None] | None = None) -> None:
        self.verbose, self.log = verbose, log
        self.requested = False
        self.signame: str | None = None
        self._old: dict = {}
        self._pid = os.getpid()  # the process that installs the handler (a forked worker inherits it)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        import signal
        import sys

        name = signal.Signals(signum).name
        if self.requested:
            raise KeyboardInterrupt(f"a second {name}")
        self.requested, self.signame = True, name
        if not self.verbose or os.getpid() != self._pid:  # another rank, or a DataLoader worker: silent
            return
        message = (
            f"{name} received: finishing the current step and writing latest.pth (send it again to stop immediately)"
        )
        print(f"\n{message}", file=sys.stderr, flush=True)
        if self.log is not None:
            self.log(message)

    def __enter__(self) -> StopSignals:
        import signal
        import threading

        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
