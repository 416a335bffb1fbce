"""The head comparison behind notebook 04 and ``python -m gapcourse compare-heads``. Introduced in notebook 04;
notebook 05 reuses its trained networks.

Every head of :data:`gapcourse.models.HEADS` is trained on the same body with the same data, recipe and seed, then
measured the same way: parameters, clean train and test accuracy (their difference is the overfitting), test
accuracy on images resized to other sizes, test accuracy on shifted images, and training time per epoch. Trained
networks are saved in the cache (see :func:`train_or_load`), so notebooks 03, 04 and 05 and reruns reuse them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from .config import Profile
from .data import Cifar10Split, normalize
from .models import HEADS, CifarNet, build_net, count_parameters
from .train import History, Recipe, evaluate, fit, predict_logits

SIZES = (24, 32, 40, 48, 64)
SHIFTS = (0, 2, 4, 6, 8)


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


def train_or_load(head: str, recipe: Recipe, profile: Profile, train: Cifar10Split, test: Cifar10Split, *,
                  device: torch.device, seed: int = 0, progress: bool = True) -> tuple[CifarNet, History, bool]:
    """The trained network for ``head``: loaded if this exact run was saved before, else trained and saved.

    Returns ``(model, history, loaded)``. Seeding follows notebook 03, so the same head and recipe give the same
    network whichever notebook or command trains it first.
    """
    path = checkpoint_path(head, recipe, profile, train, seed)
    if path.exists():
        model, meta = load_checkpoint(path)
        if meta.get("train_sha256") == train.fingerprint():
            if progress:
                print(f"{head}: loaded {path.name} (delete it to train again)")
            return model.to(device), History(**meta["history"]), True
        print(f"{head}: {path.name} was trained on other data than this run's; training afresh.")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_net(head, width=recipe.width)
    if progress:
        print(f"{head}: training ({profile.epochs(recipe.epochs)} epochs, recipe '{recipe.name}')")
    history = fit(model, train, test, recipe, device=device, generator=generator, profile=profile,
                  progress=progress)
    save_checkpoint(model, path, history=asdict(history), recipe=recipe.describe(), seed=seed,
                    train_sha256=train.fingerprint(), train_source=train.source, synthetic=train.synthetic)
    return model, history, False


def shift_images(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Move each normalised image ``shift`` px right and ``shift`` px down; the uncovered border gets 0, the mean
    colour. Nothing wraps around."""
    if shift == 0:
        return images
    out = torch.zeros_like(images)
    out[..., shift:, shift:] = images[..., :-shift, :-shift]
    return out


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of normalised N×3×H×W images to size×size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def accuracy_with(model: CifarNet, data: Cifar10Split, transform, *, device: torch.device, recipe: Recipe,
                  batch_size: int = 500) -> float:
    """Test accuracy after applying ``transform`` to each normalised batch."""
    correct = 0
    for start in range(0, len(data), batch_size):
        x = transform(normalize(data.images[start:start + batch_size]))
        logits = predict_logits(model, x, device=device, recipe=recipe, batch_size=batch_size)
        correct += (logits.argmax(1) == data.labels[start:start + batch_size]).sum().item()
    return correct / len(data)


@dataclass
class HeadResult:
    head: str
    head_params: int
    total_params: int
    train_acc: float
    test_acc: float
    overfit_gap: float  # train accuracy minus test accuracy
    size_acc: dict[int, float | None] = field(default_factory=dict)  # None: the head cannot run at that size
    size_errors: dict[int, str] = field(default_factory=dict)
    shift_acc: dict[int, float] = field(default_factory=dict)
    seconds_per_epoch: float = 0.0
    epochs: int = 0


def measure_head(model: CifarNet, history: History, train: Cifar10Split, test: Cifar10Split, *,
                 device: torch.device, recipe: Recipe, sizes=SIZES, shifts=SHIFTS) -> HeadResult:
    """Every number of the comparison table for one trained network."""
    model = model.to(device).eval()
    train_acc = evaluate(model, train, device=device, recipe=recipe).accuracy
    test_acc = evaluate(model, test, device=device, recipe=recipe).accuracy
    result = HeadResult(model.head_name, count_parameters(model.head), count_parameters(model), train_acc, test_acc,
                        train_acc - test_acc, seconds_per_epoch=history.train_seconds / max(1, len(history.epoch)),
                        epochs=len(history.epoch))
    for size in sizes:
        try:
            result.size_acc[size] = accuracy_with(model, test, lambda x, s=size: resize_images(x, s), device=device,
                                                  recipe=recipe)
        except ValueError as err:  # a flatten head refuses other sizes with a clear message
            result.size_acc[size] = None
            result.size_errors[size] = str(err).split(". ")[0]
    for shift in shifts:
        result.shift_acc[shift] = accuracy_with(model, test, lambda x, s=shift: shift_images(x, s), device=device,
                                                recipe=recipe)
    return result


def compare_heads(train: Cifar10Split, test: Cifar10Split, recipe: Recipe, profile: Profile, *,
                  device: torch.device, heads=HEADS, seed: int = 0, progress: bool = True
                  ) -> tuple[list[HeadResult], dict[str, CifarNet]]:
    """Train (or load) and measure every head. Returns the results and the trained networks."""
    results, models = [], {}
    for head in heads:
        model, history, _ = train_or_load(head, recipe, profile, train, test, device=device, seed=seed,
                                          progress=progress)
        results.append(measure_head(model, history, train, test, device=device, recipe=recipe))
        models[head] = model
    return results, models


def _pct(v: float | None) -> str:
    return "cannot run" if v is None else f"{100 * v:.1f}"


def results_markdown(results: list[HeadResult]) -> str:
    """The comparison as one Markdown table (accuracies in %)."""
    sizes = list(results[0].size_acc)
    shifts = list(results[0].shift_acc)
    head = (["head", "head params", "total params", "train acc", "test acc", "train − test"]
            + [f"test @{s}px" for s in sizes if s != 32] + [f"shift {s}px" for s in shifts if s != 0]
            + ["s / epoch"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.head, f"{r.head_params:,}", f"{r.total_params:,}", _pct(r.train_acc), _pct(r.test_acc),
                 f"{100 * r.overfit_gap:.1f}"]
        cells += [_pct(r.size_acc[s]) for s in sizes if s != 32]
        cells += [_pct(r.shift_acc[s]) for s in shifts if s != 0]
        cells.append(f"{r.seconds_per_epoch:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: list[HeadResult], folder: str | os.PathLike, *, context: str = "") -> list[Path]:
    """Write ``heads.json``, ``heads.csv`` and ``heads.md`` to ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    as_json = folder / "heads.json"
    as_json.write_text(json.dumps({"context": context, "results": [asdict(r) for r in results]}, indent=2))
    as_csv = folder / "heads.csv"
    with open(as_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        sizes, shifts = list(results[0].size_acc), list(results[0].shift_acc)
        writer.writerow(["head", "head_params", "total_params", "train_acc", "test_acc", "overfit_gap"]
                        + [f"test_acc_{s}px" for s in sizes] + [f"shift_{s}px" for s in shifts]
                        + ["seconds_per_epoch", "epochs"])
        for r in results:
            writer.writerow([r.head, r.head_params, r.total_params, f"{r.train_acc:.4f}", f"{r.test_acc:.4f}",
                             f"{r.overfit_gap:.4f}"]
                            + ["" if r.size_acc[s] is None else f"{r.size_acc[s]:.4f}" for s in sizes]
                            + [f"{r.shift_acc[s]:.4f}" for s in shifts]
                            + [f"{r.seconds_per_epoch:.2f}", r.epochs])
    as_md = folder / "heads.md"
    as_md.write_text((context + "\n\n" if context else "") + results_markdown(results) + "\n")
    return [as_json, as_csv, as_md]
