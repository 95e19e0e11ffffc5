"""Compute devices: the one check and the one resolver behind every ``device`` parameter.

A device is ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (CUDA when present, else the CPU).
``check_device`` checks the spelling only; ``resolve_device`` also turns ``auto`` into a device
and refuses CUDA on a machine without it. Errors name the parameter (``param``). ``to_device``
moves host arrays to a device without waiting for the work queued there.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from core.errors import ModelError, PrismError

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device: object, *, param: str = "device") -> str:
    """``device`` if it is spelled like a device (see the module docstring), else a PrismError."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise PrismError(
            f"{param} must be cpu, cuda or cuda:N (or mps, or auto: CUDA when present, else the "
            f"CPU); got {device!r}.",
            param=param,
        )
    return device


def resolve_device(device: object = "auto", *, param: str = "device") -> str:
    """The device to run on: ``auto`` picks CUDA when present, else the CPU (torch is imported
    only to answer that, so a CPU run never loads it)."""
    device = check_device(device, param=param)
    if device in ("cpu", "mps"):
        return device
    # heavy: torch, only to ask for CUDA (a CPU run never loads it)
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"{param} {device!r} was asked for but no CUDA device is available.", param=param
        )
    return device


def to_device(array: Any, device: Any) -> Any:
    """A numpy array or CPU tensor → a tensor on ``device``.

    To a GPU it goes through pinned memory as an asynchronous copy: a copy from pageable memory
    waits until every kernel queued on the device has run, which leaves the GPU idle while the
    next batch is prepared and launched.
    """
    # heavy: torch, only when moving arrays to a device
    import torch

    tensor = torch.from_numpy(array) if isinstance(array, np.ndarray) else array
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
