"""The trained networks the course ships, so every notebook stands alone on a fresh machine (Colab included).
Introduced in notebook 04; notebook 05 loads them too.

``gapcourse/weights/<head>.pt`` holds one network per head: the seed-0 network of the ``augmented`` regime of
``python -m gapcourse compare-heads``, stored in half precision (the accuracy with the fp16 weights is measured and
recorded). ``gapcourse/weights/manifest.json`` lists, per file, its SHA-256, the command and commit that produced
it, the device, the torch version, the test accuracy and the date. :func:`load_shipped` checks the file against
the manifest and loads it with ``weights_only=True``; a file that does not match is refused, never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
import json


from .checkpoints import CheckpointError, load_checkpoint
from .config import PACKAGE_DIR
from .data import file_digest
from .models import CifarNet

WEIGHTS_DIR = PACKAGE_DIR / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
MANIFEST_FIELDS = ("file", "sha256", "command", "commit", "device", "torch", "test_acc", "date")


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


class WeightsError(CheckpointError):
    """The shipped weights or their manifest are missing, malformed or do not match; the message names the file and
    says what to do (reinstall the course, or train your own network)."""


_REMEDY = "Reinstall the course (or restore gapcourse/weights/), or train your own network (TRAIN_MY_OWN = True)."


def read_manifest(path: Path = MANIFEST, *, missing_ok: bool = True) -> dict[str, dict[str, Any]]:
    """``{head: entry}`` from the manifest (empty if there is none and ``missing_ok``). Raises :class:`WeightsError`,
    naming the manifest, when it is missing (``missing_ok=False``) or malformed: not JSON, no ``weights`` list, an
    entry without a ``head``, ``file`` or ``sha256`` string, or a ``file`` that is not a plain name in its folder."""
    if not path.is_file():
        if missing_ok and not path.exists():
            return {}
        what = "is a folder, not a file" if path.exists() else "is missing"
        raise WeightsError(f"The weights manifest {path} {what}, so no shipped network can be checked. {_REMEDY}")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"The weights manifest {path} is not valid JSON ({err}). {_REMEDY}") from None
    entries = payload.get("weights") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise WeightsError(f"The weights manifest {path} has no 'weights' list. {_REMEDY}")
    out = {}
    for i, e in enumerate(entries):
        bad = [k for k in ("head", "file", "sha256") if not isinstance(e, dict) or not isinstance(e.get(k), str)
               or not e.get(k)]
        if bad:
            raise WeightsError(f"Entry {i} of the weights manifest {path} lacks {', '.join(bad)} (each entry needs a "
                               f"head, a file name and its SHA-256). {_REMEDY}")
        if Path(e["file"]).name != e["file"] or e["file"] in (".", ".."):
            raise WeightsError(f"Entry '{e['head']}' of the weights manifest {path} names the file {e['file']!r}, "
                               f"which is not a plain file name inside {path.parent}: refused. {_REMEDY}")
        out[e["head"]] = e
    return out


def load_shipped(head: str, *, folder: Path = WEIGHTS_DIR) -> tuple[CifarNet, dict[str, Any]]:
    """The course's trained network for ``head`` and its manifest entry. Raises :class:`WeightsError` (a
    :class:`CheckpointError`) if the manifest is missing or malformed, the file is missing, does not match its
    SHA-256, or holds another head than the one asked for."""
    manifest = read_manifest(folder / "manifest.json", missing_ok=False)
    if head not in manifest:
        raise WeightsError(f"The course ships no trained '{head}' network (shipped: {sorted(manifest) or 'none'}). "
                           "Train one instead (the notebook's TRAIN_MY_OWN switch).")
    entry = manifest[head]
    lacking = [k for k in MANIFEST_FIELDS if entry.get(k) in (None, "")]
    if lacking:
        raise WeightsError(f"The manifest entry for '{head}' in {folder / 'manifest.json'} lacks {', '.join(lacking)}."
                           f" {_REMEDY}")
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path} is listed in the manifest but "
                           f"{'is a folder' if path.exists() else 'missing'}. {_REMEDY}")
    if file_sha256(path) != entry["sha256"]:
        raise WeightsError(f"{path} does not match the SHA-256 in {folder / 'manifest.json'}: it was modified or "
                           f"damaged, so it is not used. {_REMEDY}")
    model, _ = load_checkpoint(path)
    if model.head_name != head:  # a file and its hash swapped with another head's: refuse, never mislabel
        raise WeightsError(f"{path} holds a '{model.head_name}' network, but the manifest lists it as '{head}': "
                           f"refused. {_REMEDY}")
    return model, entry


def describe(entry: dict[str, Any]) -> str:
    """One line for a notebook: which network this is and its test accuracy. Where it was trained (command,
    machine, commit, date) stays in the manifest, which docs/RESULTS.md shows: not the learner's concern."""
    return f"the course's trained '{entry['head']}' network: {100 * entry['test_acc']:.1f} % test accuracy"
