"""Where a committed number or weight file came from: command, commit, device, versions, date. Introduced in
notebook 03 (the shipped weights) and used by every command that writes results into the repository.

Each results file and the weights manifest carry one :func:`provenance` record, and the tests check that it is
complete, so a table in the README can always be traced to the run that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

PACKAGE_DIR = Path(__file__).resolve().parent
RESULTS_DIR = PACKAGE_DIR / "results"
REQUIRED = ("command", "commit", "device", "torch", "seconds", "date")


def git_commit(root: Path = PACKAGE_DIR.parent) -> str:
    """The checkout's commit, with ``+changes`` when the working tree differs from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "gapcourse"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def describe_hardware(device: torch.device) -> str:
    """E.g. ``cpu: 2 threads, x86_64, AMD EPYC ...`` or ``cuda: NVIDIA H100 80GB HBM3 (sm_90)``."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda: {torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    if device.type == "cpu":
        model = ""
        try:
            with open("/proc/cpuinfo") as fh:
                model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
        except OSError:
            pass
        return f"cpu: {torch.get_num_threads()} threads, {platform.machine()}" + (f", {model}" if model else "")
    return device.type


def provenance(command: str | None = None, *, device: torch.device, seconds: float, **extra: Any) -> dict[str, Any]:
    """A provenance record for results produced just now on ``device``."""
    import torchvision

    record = {
        "command": command or "python -m gapcourse " + " ".join(sys.argv[1:]),
        "commit": git_commit(),
        "device": describe_hardware(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "seconds": round(seconds, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    record.update(extra)
    return record


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (a temporary file renamed into place), so an interrupted run never leaves a
    half-written results file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
