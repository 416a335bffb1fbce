"""Save and reload trained networks safely. Introduced in notebook 03; notebook 04 reuses it.

A checkpoint is one file: the ``state_dict``, a small ``meta`` dict (head, width, accuracy, recipe...) and a SHA-256
over the weights. Loading uses ``torch.load(..., weights_only=True)``, which refuses pickled code, and then checks
the digest, so a tampered or damaged checkpoint is refused with a message instead of being used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .atomic import replacing
from .config import cache_dir
from .data import Cifar10Split
from .models import CifarNet, build_net

if TYPE_CHECKING:  # names for the annotations only
    from .config import Profile
    from .recipes import Recipe

FORMAT = 1


class CheckpointError(RuntimeError):
    """The checkpoint cannot be trusted or does not fit the model; the message says why and what to do."""


def checkpoint_dir() -> Path:
    """``<cache>/checkpoints``: where the notebooks keep trained networks between runs."""
    path = cache_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor of a ``state_dict`` (names and bytes, in sorted order): what a checkpoint records
    to check its weights, and what :mod:`gapcourse.studies.resume` records of a run's starting weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(model: CifarNet, path: str | os.PathLike, *, half: bool = False, **meta: Any) -> Path:
    """Write ``model``'s weights, its head and width, and ``meta`` (plain numbers and strings) to ``path``.
    ``half=True`` stores floating-point tensors in fp16 (half the size; they load back into an fp32 network)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {"format": FORMAT, "head": model.head_name, "width": model.width, "meta": meta,
               "state_dict": state, "sha256": state_dict_digest(state)}
    try:
        with replacing(path) as tmp, open(tmp, "wb") as fh:  # a reader sees the old file or the new one
            torch.save(payload, fh)
    except (OSError, RuntimeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"Could not write the checkpoint {path} ({first}). Check that the folder is writable "
                              "and has space; nothing was replaced.") from None
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[CifarNet, dict[str, Any]]:
    """Rebuild the network saved at ``path``; returns ``(model, meta)``. Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}. Train first (the notebook does it when the file is absent).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - refused pickles and truncated files have one remedy
        raise CheckpointError(
            f"{path} cannot be loaded safely ({type(err).__name__}: {str(err)[:200]}). It is damaged, not a "
            "gapcourse checkpoint, or holds code that weights_only=True refuses. Delete it and train again."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a gapcourse checkpoint (format {FORMAT}). Delete it and train again.")
    state = payload["state_dict"]
    if state_dict_digest(state) != payload.get("sha256"):
        raise CheckpointError(f"{path}: the weights do not match the SHA-256 recorded when they were saved, so the "
                              "file was modified or damaged. Delete it and train again.")
    model = build_net(payload["head"], payload["width"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit a '{payload['head']}' net of width {payload['width']}: {err}")
    return model, dict(payload.get("meta", {}))


def architecture_fingerprint(head: str, width: float) -> str:
    """A short hash of the network's layer-by-layer description (``repr`` of the module): it changes whenever a
    layer of the body or the head changes, so a checkpoint of an older design is never loaded into a newer one."""
    return hashlib.sha256(repr(build_net(head, width=width)).encode()).hexdigest()[:12]


def checkpoint_path(head: str, recipe: Recipe, profile: Profile, train: Cifar10Split, seed: int = 0) -> Path:
    """Where the network for this head, recipe, profile, training data and seed is kept. The name changes with any
    of them, including the architecture and the exact training images (their SHA-256), so a network trained on
    other data (e.g. the synthetic stand-in) or with another head design is never loaded by mistake."""
    if not isinstance(train, Cifar10Split):
        raise TypeError(f"checkpoint_path needs the training split itself (to fingerprint its images), got "
                        f"{type(train).__name__}.")
    key = "|".join([head, recipe.describe(), profile.name, str(len(train)), str(seed), train.fingerprint(),
                    architecture_fingerprint(head, recipe.width)])
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    return checkpoint_dir() / f"{head}_{recipe.name}_{profile.name}_{tag}.pt"
