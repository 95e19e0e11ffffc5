"""Many processes, one shard plan: feature extraction on ``torch.distributed`` ranks.

``torchrun`` (or Slurm's ``srun torchrun …``) starts the ranks and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``join`` reads them and initialises the
process group — NCCL when the ranks run on CUDA (rank r of a node on ``cuda:LOCAL_RANK``), gloo
on CPUs — or, without that environment, yields ``SOLO``, the one-process group, so a plain run is
unchanged. ``Group.windows`` splits one plan deterministically (window i goes to rank
i mod world size), so ranks compute disjoint rows; ``Group.share`` sends rank 0's value to all and
``Group.gather`` collects one value per rank (and doubles as the barrier before rank 0 assembles).
``launch`` starts ``python -m core …`` on N local ranks through torch's elastic launcher.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from core.devices import resolve_device
from core.errors import PrismError
from core.validate import check_int

# The variables torchrun sets for every rank; all of them mark a distributed run.
RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# How long a rank waits for the others at a collective: rank 0 reads and validates the dataset
# while the others wait, and ranks finish their last window at different times.
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str | None = None  # the device of this rank; None: the caller's choice

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the manifest and progress, and assembles."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def windows(self, todo: np.ndarray, size: int) -> list[np.ndarray]:
        """This rank's windows of the missing rows ``todo``: window i (``size`` rows, fewer when
        the ranks would otherwise sit idle) goes to rank i mod world size."""
        check_int(size, param="shard_size", minimum=1)
        size = max(1, min(size, math.ceil(len(todo) / self.world_size)))
        starts = range(self.rank * size, len(todo), size * self.world_size)
        return [todo[start : start + size] for start in starts]

    def share(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError:  # a peer is gone; its own message says why
            raise PrismError(
                f"rank {self.rank}: rank 0 stopped before it shared its plan (see its message)."
            ) from None
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (waits for all of them)."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        try:
            dist.all_gather_object(values, value)
        except RuntimeError:
            raise PrismError(
                f"rank {self.rank}: another rank stopped before finishing its windows; the "
                "finished shards are kept, and `prism resume` computes the rest."
            ) from None
        return values


SOLO = Group()


def torchrun_env(environ: dict[str, str] | None = None) -> bool:
    """Whether this process was started as a rank by torchrun (or anything setting its variables)."""
    environ = dict(os.environ) if environ is None else environ
    return all(environ.get(name) for name in RANK_ENV)


def rank_device(device: str | None, local_rank: int) -> str:
    """The device of the rank with ``local_rank`` on its node: ``cuda:local_rank`` when ``device``
    asks for CUDA (``auto`` on a machine with CUDA, ``cuda``, ``cuda:N``), else ``device``."""
    resolved = resolve_device(device or "auto")
    if resolved.startswith("cuda"):
        return f"cuda:{local_rank}"
    return resolved


def join(device: str | None = None) -> Group:
    """This process's ``Group``: a torch.distributed rank when torchrun started it, else ``SOLO``.

    The first call under torchrun initialises the default process group (NCCL for CUDA ranks,
    gloo otherwise), which lives until the process exits; later calls return the same group.
    """
    global _JOINED
    if _JOINED is not None:
        return _JOINED
    if not torchrun_env():
        return SOLO
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    here = rank_device(device, local_rank)
    backend = "nccl" if here.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(here)
    dist.init_process_group(backend=backend, timeout=TIMEOUT)
    atexit.register(_leave)
    _JOINED = Group(rank=rank, world_size=world_size, local_rank=local_rank, device=here)
    return _JOINED


_JOINED: Group | None = None


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def validate_nproc(nproc: object) -> int:
    """``nproc`` as a count of local ranks (≥ 1)."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise PrismError(f"nproc must be an integer ≥ 1, got {nproc!r}.", param="nproc")
    return nproc


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m core *argv`` on ``nproc`` local ranks (torch's elastic launcher, one node,
    a rendezvous on a free local port); returns the exit code of the first rank that failed, else 0.

    Each rank gets ``OMP_NUM_THREADS`` = CPU cores / ``nproc`` unless it is set, so CPU ranks do
    not oversubscribe the cores.
    """
    nproc = validate_nproc(nproc)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.5,
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        elastic_launch(config, sys.executable)("-m", "core", *argv)
    except ChildFailedError as error:
        _, failure = error.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as error:
        return 128 + int(error.sigval)
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    return 0
