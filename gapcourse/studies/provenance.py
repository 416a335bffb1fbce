"""Where a committed number or weight file came from: command, commit, device, versions, date. Used by every command
that writes results or weights into the repository (docs/RESULTS.md shows them); no notebook needs it.

Each results file and the weights manifest carry one :func:`provenance` record, and the tests check that it is
complete, so a table in docs/RESULTS.md can always be traced to the run that produced it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
import datetime as _dt
import json
import os
import platform
import subprocess
import sys

import torch

from ..atomic import replacing
from ..config import PACKAGE_DIR
from ..outputs import ResultsError, committed_refusal, guard, instead, is_committed, read_object


REQUIRED = ("command", "commit", "device", "torch", "seconds", "date")


def git_commit(root: Path = PACKAGE_DIR.parent) -> str:
    """The checkout's commit, with ``+changes`` when the package's code differs from it; ``unknown`` outside git.
    The measurements a study writes (``gapcourse/results``, ``gapcourse/weights``) do not count as changes: a study
    that adds its runs one by one would otherwise mark every run after its first."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "gapcourse",
                                ":(exclude)gapcourse/results", ":(exclude)gapcourse/weights"],
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

def write_json(path: str | os.PathLike, payload: dict[str, Any], *, fixed_by: str | None = None) -> Path:
    """Write ``payload`` atomically (a temporary file renamed into place), so an interrupted run never leaves a
    half-written results file. A last guard: a payload whose provenance names another profile than ``full`` is never
    written into the committed folders (results should go through :func:`write_results`, which checks the data).
    ``fixed_by``: as for :func:`gapcourse.outputs.guard` (a file whose place no option chooses)."""
    path = Path(path)
    profile_name = (payload.get("provenance") or {}).get("profile", "full") if isinstance(payload, dict) else "full"
    if profile_name != "full" and is_committed(path):
        raise ResultsError(f"Refused: a {profile_name}-profile run may not change the committed {path.name}. Pass "
                           "--output a file elsewhere.")
    try:
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(payload, indent=1) + "\n")
    except OSError as err:
        raise ResultsError(f"Could not write {path} ({err.strerror or err}); the file as it was is unchanged. Check "
                           "that its folder is writable and has space" + (", or pass --output another file." if
                                                                          fixed_by is None else ".")) from None
    return path

def data_record(profile_name: str, train: Any) -> dict[str, Any]:
    """What a results file records about the data it was measured on: profile, training-set size, the training
    split's SHA-256 fingerprint (:meth:`gapcourse.data.Cifar10Split.fingerprint`), its source and whether it is the
    synthetic stand-in. Every results file's provenance carries it, and runs are identified by it."""
    return {"profile": profile_name, "n_train": len(train), "train_sha256": train.fingerprint(),
            "train_source": train.source, "synthetic": bool(train.synthetic)}

def check_output(path: str | os.PathLike, data: dict[str, Any] | None = None, *, what: str = "results file",
                 own_run: Callable[[dict], bool] | None = None, study: str = "this study", writer: str | None = None,
                 keys: Iterable[str] | None = None, fixed_by: str | None = None) -> Path:
    """Check, before any work, that ``path`` can take ``writer``'s results (:func:`gapcourse.outputs.guard`: not a
    folder, writable, not another kind of file, no committed file outside ``writer``'s own, and a committed file
    only for a run allowed to regenerate it), and that an existing results file is a JSON object of the same
    experiment (profile and training data), with only the top-level ``keys`` of this study's files and (with
    ``own_run``) every run already in it one of ``study``'s. ``fixed_by``: for a file whose place no option chooses
    (``bench --record``'s record), as for :func:`gapcourse.outputs.guard`. Returns the path (``~`` expanded); raises
    :class:`ResultsError`."""
    path = guard(path, writer=writer, kind="results", what=what, data=data, fixed_by=fixed_by)
    existing = read_object(path, what, fixed_by=fixed_by)
    todo = instead(path, fixed_by=fixed_by)
    prov = (existing or {}).get("provenance") or {}
    if keys is not None and existing is not None:
        foreign = sorted(set(existing) - set(keys) - {"provenance"})
        if foreign:
            command = prov.get("command", "another command") if isinstance(prov, dict) else "another command"
            raise ResultsError(f"{path} is not {study}'s file: it holds {', '.join(map(repr, foreign))} (written by "
                               f"`{command}`), and {study} writes only {', '.join(map(repr, sorted(keys)))}. Studies "
                               f"never share a file: {todo}; nothing was run.")
    if data is not None and existing is not None and prov:
        clash = [k for k in ("profile", "train_sha256") if k in prov and prov[k] != data.get(k)]
        if clash:
            theirs = ", ".join(f"{k} {str(prov[k])[:12]}" for k in clash)
            ours = ", ".join(f"{k} {str(data.get(k))[:12]}" for k in clash)
            raise ResultsError(f"{path} holds another experiment's results ({theirs}; this run: {ours}): runs "
                               f"on other data are never mixed: {todo}; nothing was run.")
    runs = (existing or {}).get("runs")
    strangers = [r for r in runs if not (isinstance(r, dict) and own_run(r))] if (
        own_run is not None and isinstance(runs, list)) else []
    if strangers:
        command = prov.get("command", "another command")
        raise ResultsError(f"{path} holds results that are not {study}'s ({len(strangers)} of its {len(runs)} "
                           f"runs, written by `{command}`): studies never share a file: {todo}; nothing was "
                           "run.")
    return path

def default_output(committed: Path, data: dict[str, Any]) -> Path:
    """The command line's default output: the committed file when this run may regenerate it, else a file in the
    cache folder named for the profile and the data, announced on one line (so a quick run never touches the
    committed evidence)."""
    why = committed_refusal(committed, data)
    if why is None:
        return committed
    from ..config import cache_dir

    alt = cache_dir() / "results" / f"{committed.stem}-{data['profile']}-{data['train_sha256'][:10]}{committed.suffix}"
    print(f"NOTE: {why}; results go to {alt} instead (pass --output to choose another file).")
    return alt

_ACC_PARENTS = {"resized", "canvas", "translated", "crop_shift", "test_acc_by_tta"}

def impossible_values(payload: Any, where: str = "", key: str = "", parent: str = "") -> list[str]:
    """Values no measurement can have, named by their place in ``payload``: an accuracy outside 0..1, a negative
    time or memory, a throughput ≤ 0, NaN or infinity. The tests run this on every committed results file, and
    :func:`write_results` refuses to write a payload that has any."""
    import math

    out: list[str] = []
    if isinstance(payload, dict):
        for k, value in payload.items():
            out += impossible_values(value, f"{where}.{k}" if where else str(k), str(k), key)
        return out
    if isinstance(payload, list):  # list items are judged by the list's own name
        for i, value in enumerate(payload):
            out += impossible_values(value, f"{where}[{i}]", key, parent)
        return out
    if isinstance(payload, bool) or not isinstance(payload, (int, float)):
        return out
    if not math.isfinite(payload):
        return [f"{where} = {payload} (not a number)"]
    if key == "train_minus_test":
        ok, rule = -1 <= payload <= 1, "a difference of accuracies lies within -1..1"
    elif "acc" in key or key == "at_32" or key.endswith("_share") or parent in _ACC_PARENTS:
        ok, rule = 0 <= payload <= 1, "an accuracy or a share lies within 0..1"
    elif key.endswith(("_ips", "img_s")):
        ok, rule = payload > 0, "a throughput is positive"
    elif "seconds" in key or key.endswith(("_s", "_mb")) or parent == "to_threshold":
        ok, rule = payload >= 0, "a time or a memory size is not negative"
    else:
        return out
    return [] if ok else [f"{where} = {payload} ({rule})"]

def write_results(path: str | os.PathLike, payload: dict[str, Any], data: dict[str, Any], *,
                  writer: str | None = None, fixed_by: str | None = None) -> Path:
    """Write a results file through the one gate: ``data`` (:func:`data_record`) goes into its provenance; the
    committed folder is refused unless this run may regenerate it (:func:`committed_refusal`); an existing file of
    another experiment is never overwritten; impossible values are refused. Atomic (see :func:`write_json`)."""
    path = check_output(path, data, writer=writer, fixed_by=fixed_by)
    payload.setdefault("provenance", {}).update(data)
    bad = impossible_values(payload)
    if bad:
        raise ResultsError(f"Refused to write {path}: impossible values {'; '.join(bad[:3])}"
                           + (f" and {len(bad) - 3} more" if len(bad) > 3 else "") + ".")
    return write_json(path, payload, fixed_by=fixed_by)
