"""Resumable training: :func:`fit_resumable` runs :func:`gapcourse.train.fit` with its whole state saved to a file
after every epoch and, when the file is there at the start, goes on from the epoch after the last one saved.
Introduced for the gpu preset's study (``python -m gapcourse ablate --preset gpu``; docs/studies/gpu-preset.md), whose runs
take hours on a CPU and may be cut off.

The file holds the weights, the weight average, the optimizer's momentum, the learning-rate schedule, the gradient
scaler, the random generator that draws the batches and augmentations, and the history so far. On the same CPU, with
the same torch and number of threads, a run stopped and resumed ends with exactly the weights of one that never
stopped (``tests/test_resume.py`` checks it bit for bit, in fp32 and in bf16 with channels-last, in one process and
across two). Resumed anywhere else, or on a GPU (where cuDNN's autotuning already makes runs differ), it is a
continuation of the same run from the same state, not a bit-identical copy: the run then warns, and each stretch of the
run (its epochs, device, threads, torch, commit and date) is recorded in ``History.pieces``.

The file names the run it belongs to: the recipe, the number of epochs, the precision, the starting weights, the
generator's starting state, and the training and test data. A file from another run, an unreadable file and a file
changed since it was written (its SHA-256 digest covers every tensor and every number in it) are refused with an
error that says what to do; none is overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import replacing
from ..checkpoints import state_dict_digest
from ..config import Profile
from ..config import profile as active_profile
from ..data import Cifar10Split, data_digest
from ..outputs import locked
from ..recipes import Recipe, resolve_precision
from ..train import History, TrainingState, fit
from .provenance import describe_hardware, git_commit

FORMAT = "gapcourse-fit-state-1"


class ResumeError(ValueError):
    """A resume file that cannot be used for this run (unreadable, changed, or another run's)."""


def _data_digest(split: Cifar10Split | None) -> str | None:
    return None if split is None else data_digest(split.images.cpu(), split.labels.cpu())


def run_identity(model: nn.Module, generator: torch.Generator, recipe_text: str, epochs: int, precision: str,
                 train, test=None) -> dict[str, Any]:
    """What makes a run this run, taken before its first step: the recipe (``Recipe.describe()``), the number of
    epochs, the precision, and SHA-256 digests of the starting weights, of the generator's state and of the
    training and test splits (``Cifar10Split``; ``test`` may be None)."""
    return {"recipe": recipe_text, "epochs": int(epochs), "precision": precision,
            "start_weights": state_dict_digest(model.state_dict()),
            "generator": hashlib.sha256(generator.get_state().numpy().tobytes()).hexdigest(),
            "train_data": _data_digest(train), "n_train": len(train), "test_data": _data_digest(test)}


# What a later stretch may differ in from the one before; a difference ends bit-for-bit repeatability.
MACHINE_FIELDS = ("device", "threads", "torch", "commit")


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The :data:`MACHINE_FIELDS` in which two stretches of a run differ, as ``field: old → new``."""
    return [f"{k}: {before.get(k)} → {now.get(k)}" for k in MACHINE_FIELDS if before.get(k) != now.get(k)]


def piece(first_epoch: int, device: torch.device) -> dict[str, Any]:
    """The record of one stretch of a run, from ``first_epoch`` (``to_epoch`` is filled in as epochs end)."""

    return {"from_epoch": first_epoch, "to_epoch": first_epoch - 1, "device": describe_hardware(device),
            "threads": torch.get_num_threads(), "torch": str(torch.__version__), "commit": git_commit(),
            "started": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def resume_path(path: str | os.PathLike) -> Path:
    """``path`` as fit uses it: ``~`` expanded, made absolute (a relative path names the same file wherever the
    process runs from afterwards only if the working folder is the same; the absolute path is what gets printed)."""
    return Path(path).expanduser().absolute()


@contextlib.contextmanager
def claim(path: Path):
    """Hold ``<path>.lock`` (POSIX ``flock``, non-blocking) while a run uses ``path``, after checking that its folder
    can be written: two fits sharing one resume file would overwrite each other's epochs, and a folder that cannot
    be written would only show after an epoch had trained. Raises :class:`ResumeError` in either case."""
    folder = path.parent
    lock = contextlib.ExitStack()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
        held = lock.enter_context(locked(path, wait=False))  # the lock file stays, as every lock of the package
    except OSError as err:
        raise ResumeError(f"Cannot write the resume file {path}: its folder {folder} cannot be created or written "
                          f"({type(err).__name__}: {err.strerror or err}). Pick a writable place (GAPCOURSE_CACHE for "
                          "the study, or another path); nothing was trained.") from None
    with lock:
        if not held:
            raise ResumeError(f"{path} is in use by another training run (in this process or another; it holds "
                              f"{path.name}.lock). Two runs sharing one resume file would overwrite each other's "
                              "epochs: wait for it to end, or pass another resume file.")
        yield


def _numbers(value: Any) -> Any:
    """``value`` with every tensor replaced by a placeholder (tensors are hashed by :func:`_tensors`)."""
    if isinstance(value, torch.Tensor):
        return "<tensor>"
    if isinstance(value, dict):
        return {str(k): _numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    return value


def _state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over every tensor of a saved state and every other value in it (epoch, history, schedule, ...)."""
    rest = _numbers({k: v for k, v in state.items() if k != "sha256"})
    h = hashlib.sha256(state_dict_digest(_tensors(state)).encode())
    h.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of a saved state under a flat name, for the digest."""
    out = {f"model.{k}": v for k, v in state["model"].items()}
    if state["average"] is not None:
        out.update({f"average.{k}": v for k, v in state["average"]["state"].items()})
    for index, slot in state["optimizer"]["state"].items():
        out.update({f"optimizer.{index}.{k}": v for k, v in slot.items() if isinstance(v, torch.Tensor)})
    out["generator"] = state["generator"]
    return out


def save_state(path: str | os.PathLike, identity: dict[str, Any], *, epoch: int, model: nn.Module, average,
               optimizer: torch.optim.Optimizer, schedule, scaler: torch.amp.GradScaler, generator: torch.Generator,
               history, trained: float, pieces: list[dict[str, Any]]) -> Path:
    """Write the state after ``epoch`` to ``path`` atomically (a temporary file renamed into place: a reader sees
    the previous epoch's state or this one, never half of one)."""
    path = Path(path)
    cpu = lambda d: {k: v.detach().cpu().clone() for k, v in d.items()}  # noqa: E731
    optim = optimizer.state_dict()
    optim["state"] = {i: {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                      for i, s in optim["state"].items()}
    record = {k: v for k, v in asdict(history).items() if k not in ("plan", "pieces")}
    state = {"format": FORMAT, "identity": identity, "epoch": epoch, "model": cpu(model.state_dict()),
             "average": None if average is None else {"state": cpu(average.model.state_dict()),
                                                      "updates": average.updates},
             "optimizer": optim, "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
             "generator": generator.get_state(), "history": record, "trained": trained, "pieces": pieces}
    state["sha256"] = _state_digest(state)
    try:
        with replacing(path) as tmp, open(tmp, "wb") as fh:
            torch.save(state, fh)
    except (OSError, RuntimeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ResumeError(f"Could not write the resume file {path} ({first}). Check that its folder is writable and "
                          "has space; the previous epoch's file, if any, is unchanged.") from None
    return path


def load_state(path: str | os.PathLike, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state at ``path`` for the run ``identity`` describes, or None when there is no file yet. Raises
    :class:`ResumeError` for a folder, an unreadable file, a changed one or another run's (the file is left as it
    is)."""
    path = Path(path)
    keep = ("The file was left as it is: move or delete it to train this run from epoch 1 (or, calling fit_resumable "
            "yourself, pass another resume file).")
    if path.is_dir():
        raise ResumeError(f"The resume file {path} is a folder; expected a file written by fit_resumable. "
                          + keep)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a torch file, or pickled code that weights_only refuses
        first = (str(err).splitlines() or [type(err).__name__])[0]
        first = first if len(first) <= 200 else first[:200] + "…"
        raise ResumeError(f"{path} is not a readable resume file, e.g. cut short or not written by fit "
                          f"({type(err).__name__}: {first}). " + keep) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeError(f"{path} is not a gapcourse resume file (expected format {FORMAT!r}). " + keep)
    try:
        intact = _state_digest(state) == state.get("sha256")
    except (KeyError, TypeError, AttributeError):
        intact = False
    if not intact:
        raise ResumeError(f"{path} has been changed since fit wrote it: its contents do not match their SHA-256 "
                          "digest. " + keep)
    theirs = state.get("identity", {})
    differs = [k for k in identity if theirs.get(k) != identity[k]]
    if differs == ["precision"]:
        raise ResumeError(f"{path} holds this run trained in {theirs.get('precision')}, and this machine would go on "
                          f"in {identity['precision']} (each machine picks the precision its hardware does natively). "
                          "Go on with it on a machine like the one that started it, or move the file away or "
                          "delete it to train this run from epoch 1 here. The file was left as it is.")
    if differs:
        hint = ("another seed, recipe, number of epochs or data" if not set(differs) <= {"start_weights", "generator"}
                else "another seed; or a network or generator that has already trained: build both afresh, as at "
                     "the start of the run (generator = seed_everything(seed); model = build_net(...)), then call "
                     "fit again")
        raise ResumeError(f"{path} belongs to another run (it differs in: {', '.join(differs)}; e.g. {hint}). "
                          + keep)
    return state


def restore(state: dict[str, Any], *, model: nn.Module, average, optimizer: torch.optim.Optimizer, schedule,
            scaler: torch.amp.GradScaler, generator: torch.Generator) -> tuple[int, History, float, list]:
    """Put a state from :func:`load_state` back into a run's objects; returns ``(epochs done, history, seconds of
    training so far, pieces)``."""
    model.load_state_dict(state["model"])
    if average is not None:
        average.model.load_state_dict(state["average"]["state"])
        average.updates = state["average"]["updates"]
    # How this process steps (fused, foreach, ...) is its own choice for its device, not the file's.
    how = [{k: g[k] for k in ("fused", "foreach", "capturable", "differentiable") if k in g}
           for g in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])
    for group, kept in zip(optimizer.param_groups, how):
        group.update(kept)
    schedule.load_state_dict(state["schedule"])
    scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    names = {f.name for f in fields(History)}
    history = History(**{k: v for k, v in state["history"].items() if k in names})
    return state["epoch"], history, float(state["trained"]), list(state["pieces"])


def fit_resumable(model: nn.Module, train: Cifar10Split, test: Cifar10Split | None, recipe: Recipe,
                  path: str | os.PathLike, *, epochs: int | None = None, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None, profile: Profile | None = None, progress: bool = True,
                  log_every: int = 50) -> History:
    """:func:`gapcourse.train.fit`, resumable: the run's whole state is saved to ``path`` after every epoch, and a
    run that finds the file goes on after the last epoch saved, ending with the weights an unbroken run would have
    (on the same machine, torch and threads; elsewhere it warns, see the module's docstring). The file is claimed
    for the run (:func:`claim`), and a file from another run is refused (:class:`ResumeError`). ``epochs``: as
    ``fit``'s (default: the recipe's, as the profile scales them); a recipe with a time budget cannot be resumed."""
    if recipe.budget_s is not None:
        raise ValueError("fit_resumable needs a fixed number of epochs: a run to a time budget plans its epochs by "
                         "timing this machine, so it cannot go on elsewhere. Use a recipe without budget_s "
                         "(dataclasses.replace(recipe, budget_s=None)) and pass epochs=N.")
    device = torch.device(device)
    epochs = (profile or active_profile(announce=False)).epochs(recipe.epochs) if epochs is None else epochs
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    path = resume_path(path)
    identity = run_identity(model, generator, recipe.describe(), epochs, resolve_precision(recipe, device).mode,
                            train, test)  # before fit touches the network or the generator

    def go_on(state: TrainingState) -> None:  # after fit's setup: put the saved state back, if there is one
        saved = load_state(path, identity)
        if saved is not None:
            done, history, trained, pieces = restore(saved, model=state.model, average=state.average,
                                                     optimizer=state.optimizer, schedule=state.schedule,
                                                     scaler=state.scaler, generator=state.generator)
            history.pieces = pieces
            state.history = history
            print(f"Resuming from {path}: {done} of {epochs} epochs done ({trained:.0f} s of training).",
                  flush=True)  # even without progress bars: where a long run picks up is worth a line
        pieces = state.history.pieces
        if len(state.history.epoch) < epochs:
            pieces.append(piece(len(state.history.epoch) + 1, device))
            changed = differences(pieces[-2], pieces[-1]) if len(pieces) > 1 else []
            if changed:
                warnings.warn(f"This stretch of the run differs from the one before ({'; '.join(changed)}): the run "
                              "goes on from the same state, but is no longer bit-identical to an unbroken run (the "
                              "stretches are recorded in history.pieces).", stacklevel=4)

    def save(state: TrainingState) -> None:  # after every epoch
        history = state.history
        history.pieces[-1]["to_epoch"] = history.epoch[-1]
        save_state(path, identity, epoch=history.epoch[-1], model=state.model, average=state.average,
                   optimizer=state.optimizer, schedule=state.schedule, scaler=state.scaler,
                   generator=state.generator, history=history, trained=history.train_seconds, pieces=history.pieces)

    with claim(path):
        return fit(model, train, test, recipe, device=device, generator=generator, epochs=epochs, profile=profile,
                   progress=progress, log_every=log_every, on_start=go_on, on_epoch_end=save)
