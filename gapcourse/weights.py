"""The trained networks the course ships, so every notebook stands alone on a fresh machine (Colab included).
Introduced in notebook 04; notebook 05 loads them too.

``gapcourse/weights/<head>.pt`` holds one network per head: the seed-0 network of the ``augmented`` regime of
``python -m gapcourse compare-heads``, stored in half precision (the accuracy with the fp16 weights is measured and
recorded). ``gapcourse/weights/manifest.json`` lists, per file, its SHA-256, the command and commit that produced
it, the device, the torch version, the test accuracy and the date. :func:`load_shipped` checks the file against
the manifest and loads it with ``weights_only=True``; a file that does not match is refused, never used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import Cifar10Split, file_digest
from .models import CifarNet
from .provenance import PACKAGE_DIR, provenance, write_json
from .train import Recipe, evaluate

WEIGHTS_DIR = PACKAGE_DIR / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
MANIFEST_FIELDS = ("file", "sha256", "command", "commit", "device", "torch", "test_acc", "date")


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def read_manifest(path: Path = MANIFEST) -> dict[str, dict[str, Any]]:
    """``{head: entry}`` from the manifest (empty if there is none)."""
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())["weights"]
    return {e["head"]: e for e in entries}


def load_shipped(head: str, *, folder: Path = WEIGHTS_DIR) -> tuple[CifarNet, dict[str, Any]]:
    """The course's trained network for ``head`` and its manifest entry; raises :class:`CheckpointError` if it is
    missing or does not match its manifest entry."""
    manifest = read_manifest(folder / "manifest.json")
    if head not in manifest:
        raise CheckpointError(f"The course ships no trained '{head}' network (shipped: {sorted(manifest) or 'none'}). "
                              "Train one instead (the notebook's TRAIN_MY_OWN switch).")
    entry = manifest[head]
    path = folder / entry["file"]
    if not path.exists():
        raise CheckpointError(f"{path} is listed in the manifest but missing. Reinstall the course, or train your own "
                              "network (TRAIN_MY_OWN = True).")
    if file_sha256(path) != entry["sha256"]:
        raise CheckpointError(f"{path} does not match the SHA-256 in {folder / 'manifest.json'}: it was modified or "
                              "damaged, so it is not used. Reinstall the course, or train your own network.")
    model, _ = load_checkpoint(path)
    return model, entry


def describe(entry: dict[str, Any]) -> str:
    """One sentence for a notebook: what network this is and where it came from."""
    return (f"the course's trained '{entry['head']}' network, trained by `{entry['command']}` on {entry['device']} "
            f"(torch {entry['torch']}, {entry['date'][:10]}, commit {entry['commit'][:10]}): "
            f"{100 * entry['test_acc']:.1f} % test accuracy")


def export(models: dict[str, CifarNet], test: Cifar10Split, recipes: dict[str, Recipe], *, device: torch.device,
           command: str, folder: Path = WEIGHTS_DIR) -> Path:
    """Write each network in half precision with its manifest entry; the recorded accuracy is measured on the fp16
    weights as they are reloaded, next to the fp32 accuracy."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for head, model in sorted(models.items()):
        recipe = recipes[head]
        fp32_acc = evaluate(model.to(device), test, device=device, recipe=recipe).accuracy
        path = folder / f"{head}.pt"
        save_checkpoint(model.cpu(), path, half=True, recipe=recipe.describe(), test_acc_fp32=fp32_acc)
        reloaded, _ = load_checkpoint(path)
        fp16_acc = evaluate(reloaded.to(device), test, device=device, recipe=recipe).accuracy
        record = provenance(command, device=device, seconds=0.0)
        entries.append({"head": head, "file": path.name, "sha256": file_sha256(path), "command": command,
                        "commit": record["commit"], "device": record["device"], "torch": record["torch"],
                        "test_acc": fp16_acc, "test_acc_fp32_weights": fp32_acc, "date": record["date"],
                        "recipe": recipe.describe(), "bytes": path.stat().st_size,
                        "test_tta": recipe.tta})
    return write_json(folder / "manifest.json", {"weights": entries})

