"""Device choice and repeatable seeds. Introduced in notebook 01."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .config import DEVICE_ENV


def pick_device(preferred: str | None = None, *, announce: bool = True) -> torch.device:
    """Best available device: CUDA, then Apple MPS, then CPU; ``preferred`` or ``$GAPCOURSE_DEVICE`` overrides.

    Prints what it picked and why, so a learner sees at once whether the GPU is in use.
    """
    wanted = (preferred or os.environ.get(DEVICE_ENV) or "").strip().lower()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if wanted:
        available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": mps_ok}
        if wanted not in available:
            raise ValueError(f"Unknown device {wanted!r}: expected 'cpu', 'cuda' or 'mps'.")
        if not available[wanted]:
            raise RuntimeError(
                f"Device {wanted!r} was asked for (argument or {DEVICE_ENV}) but is not available here. "
                f"Unset {DEVICE_ENV} to pick automatically."
            )
        device = torch.device(wanted)
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
        return f"cpu ({torch.get_num_threads()} threads; no GPU found)"
    return device.type


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a CPU generator for shuffling and augmentation.

    With the same seed, a CPU run draws the same batches and gives the same losses (tested in tests/test_train.py).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
