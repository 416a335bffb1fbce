"""Device choice and repeatable seeds. Introduced in notebook 01."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .config import DEVICE_ENV


class DeviceError(RuntimeError):
    """The device asked for (argument or ``$GAPCOURSE_DEVICE``) is not available here; the command line prints the
    message on one line and exits with status 2."""


def pick_device(preferred: str | None = None, *, announce: bool = True) -> torch.device:
    """Best available device: CUDA, then Apple MPS, then CPU; ``preferred`` or ``$GAPCOURSE_DEVICE`` overrides.

    Prints what it picked and why, so a learner sees at once whether the GPU is in use. Raises ``ValueError`` for a
    name that is no device and :class:`DeviceError` (a ``RuntimeError``) for a device this machine lacks.
    """
    wanted = (preferred or os.environ.get(DEVICE_ENV) or "").strip().lower()
    origin = "argument" if preferred else DEVICE_ENV
    instead = ("Leave the device out (or give 'cpu') to pick automatically." if preferred else
               f"Unset {DEVICE_ENV} to pick automatically.")
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError:
            device = None
        if device is None or device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"Unknown device {wanted!r} ({origin}): expected 'cpu', 'cuda', 'cuda:N' (a GPU "
                             "index) or 'mps'.")
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0 or (device.index or 0) >= count:
                raise DeviceError(f"Device {wanted!r} was asked for ({origin}) but is not available here: this "
                                   f"machine has {count} CUDA GPU{'s' if count != 1 else ''}. {instead}")
        if device.type == "mps" and not mps_ok:
            raise DeviceError(f"Device {wanted!r} was asked for ({origin}) but is not available here (no Apple MPS). "
                               f"{instead}")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif mps_ok:
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if announce:
        print(f"Device: {describe_device(device)}")
    return device


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. ``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' * (threads != 1)}; no GPU found)"
    return device.type


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a CPU generator for shuffling and augmentation.

    With the same seed, a CPU run draws the same batches and gives the same losses (tested in tests/test_train.py).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
