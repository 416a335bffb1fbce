"""Export trained networks as the course's shipped weights (half precision, with a manifest that
records each file's SHA-256 and provenance): ``python -m gapcourse compare-heads --export-weights``. Notebooks 04
and 05 load them with :func:`gapcourse.weights.load_shipped`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_checkpoint, save_checkpoint
from ..data import Cifar10Split
from ..models import CifarNet
from ..outputs import OutputError, committed_role, guard
from ..recipes import Recipe
from ..train import evaluate
from ..weights import WEIGHTS_DIR
from ..weights import file_sha256
from .provenance import provenance, write_json


def export(models: dict[str, CifarNet], test: Cifar10Split, recipes: dict[str, Recipe], *, device: torch.device,
           command: str, folder: Path = WEIGHTS_DIR, data: dict[str, Any] | None = None,
           trained_by: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write each network in half precision with its manifest entry; the recorded accuracy is measured on the fp16
    weights as they are reloaded, next to the fp32 accuracy. Every file is checked by the output guard first: the
    course's own folder only for a full-profile run on the real CIFAR-10 (``data``,
    :func:`gapcourse.studies.provenance.data_record`). Only the heads of ``models`` are exported: the manifest's
    entries for other heads are kept as they are. ``trained_by``: for a head, the ``made_by`` record of the results
    run the network comes from (the training's own command, commit and machine), kept in its entry."""
    for name in [f"{head}.pt" for head in models] + ["manifest.json"]:
        guard(folder / name, writer="export-weights", kind="results" if name.endswith(".json") else "checkpoint",
              data=data, what="weights manifest" if name.endswith(".json") else "shipped network")
    if committed_role(folder) == "weights" and data is None:
        raise OutputError(f"Refused: exporting into the course's shipped weights ({folder}) needs the run's data "
                          "(export(..., data=data_record(...))): only a full-profile run on the real CIFAR-10 "
                          "replaces them. Pass folder= another folder.")
    # the other heads stay shipped: their entries are kept as they are
    kept = [e for e in manifest_entries(folder / "manifest.json") if e.get("head") not in models]
    entries, staged = [], {}
    try:  # every network is written beside its place first: an error or Ctrl-C before the end replaces nothing
        for head, model in sorted(models.items()):
            recipe = recipes[head]
            fp32_acc = evaluate(model.to(device), test, device=device, recipe=recipe).accuracy
            path = folder / f"{head}.pt"
            staged[path] = folder / f".{head}.pt.new"
            save_checkpoint(model.cpu(), staged[path], half=True, recipe=recipe.describe(), test_acc_fp32=fp32_acc)
            reloaded, _ = load_checkpoint(staged[path])
            fp16_acc = evaluate(reloaded.to(device), test, device=device, recipe=recipe).accuracy
            record = provenance(command, device=device, seconds=0.0)
            entries.append({"head": head, "file": path.name, "sha256": file_sha256(staged[path]), "command": command,
                            "commit": record["commit"], "device": record["device"], "torch": record["torch"],
                            "test_acc": fp16_acc, "test_acc_fp32_weights": fp32_acc, "date": record["date"],
                            "recipe": recipe.describe(), "bytes": staged[path].stat().st_size,
                            "test_tta": recipe.tta,
                            **({"trained_by": trained_by[head]} if trained_by and head in trained_by else {})})
    except BaseException:
        for new in staged.values():
            new.unlink(missing_ok=True)
        raise
    replaced = []
    try:
        for path, new in staged.items():
            os.replace(new, path)
            replaced.append(path.name)
        return write_json(folder / "manifest.json", {"weights": sorted(kept + entries, key=lambda e: e["head"])})
    except BaseException as err:
        for new in staged.values():
            new.unlink(missing_ok=True)
        if replaced:
            raise OutputError(f"Exporting stopped after replacing {', '.join(replaced)} but before the manifest was "
                              f"written ({type(err).__name__}: {err}): those files no longer match "
                              f"{folder / 'manifest.json'}. Restore them (git checkout -- {folder}) or export "
                              "again.") from err
        raise


def manifest_entries(manifest: Path) -> list[dict[str, Any]]:
    """The entries of an existing manifest (none if there is no manifest yet); a damaged one is refused, not
    replaced (``compare-heads --export-weights`` asks before it trains)."""
    if not manifest.exists():
        return []
    try:
        entries = json.loads(manifest.read_text())["weights"]
    except (ValueError, KeyError, TypeError):
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise OutputError(f"Refused: {manifest} is not a weights manifest (a JSON object with a 'weights' list); "
                          "exporting would replace the other networks' entries. Restore it with `git checkout "
                          f"{manifest}` or remove it to start a new one.") from None
    return entries
