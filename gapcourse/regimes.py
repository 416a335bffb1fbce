"""The two training regimes of notebook 04's head comparison, a trained network per head, recipe and seed that is
saved once and loaded after (:func:`train_or_load`), and every number of one trained network (:func:`measure`).
Introduced in notebook 04; notebook 05 trains its own networks with it when ``TRAIN_MY_OWN = True``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch

from .canvas import CANVASES, CROP_SHIFTS, OFFSETS, RESIZED, TRANSLATE_CANVAS
from .canvas import accuracy_with, place_on_canvas, resize_images, robustness_subset, shift_images
from .checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from .config import Profile
from .data import Cifar10Split
from .models import HEADS, CifarNet, build_net
from .recipes import CPU_HALF_WIDTH, Recipe, resolve_precision
from .stats import pack_correctness
from .train import History, evaluate, fit


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

@dataclass(frozen=True)
class Regime:
    """How the heads are trained: which recipe changes, on how many images, for how many epochs."""

    name: str
    description: str
    per_class: int | None  # training images per class (None: all)
    epochs: int
    augment: bool

    def recipe(self, base: Recipe) -> Recipe:
        """``base`` with this regime's changes. Progressive resizing is always off: a flatten head cannot train on
        smaller images, and every head must get the same recipe."""
        common = dict(name=f"{base.name}-{self.name}", epochs=self.epochs, low_res_epochs=0)
        if self.augment:
            return replace(base, **common)
        return replace(base, **common, augment_padding=None, label_smoothing=0.0, ema=0.0, tta="none")

REGIMES = {
    "augmented": Regime("augmented", "the cpu recipe (random ±4 px shift + mirror, label smoothing 0.2, weight "
                                     "averaging, test-time flip + shift) on all 50 000 training images, 6 epochs",
                        per_class=None, epochs=6, augment=True),
    "no_augmentation": Regime("no_augmentation", "no augmentation, no label smoothing, no weight averaging, no "
                                                 "test-time augmentation; 5 000 training images (500 per class), "
                                                 "24 epochs", per_class=500, epochs=24, augment=False),
}

def check_names(heads: Sequence[str], regimes: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any unknown head or regime (the CLI calls this before loading any data)."""
    unknown = [h for h in heads if h not in HEADS] + [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"Unknown head or regime {unknown}: heads are {', '.join(HEADS)}; regimes "
                         f"{', '.join(REGIMES)}.")

def regime_recipe(regime: Regime, device: torch.device, base: Recipe | None = None) -> Recipe:
    """The recipe a regime trains with on ``device``: ``base`` (default: the half-width cpu preset the comparison was
    measured with, :data:`gapcourse.recipes.CPU_HALF_WIDTH`) with its precision resolved for the device, then the
    regime's changes."""
    base = base or CPU_HALF_WIDTH
    return regime.recipe(replace(base, precision=resolve_precision(base, device).mode))

def regime_data(regime: Regime, train: Cifar10Split) -> Cifar10Split:
    """The regime's training images: the first ``per_class`` of each class (all of them if fewer)."""
    if regime.per_class is None:
        return train
    return train.subset(min(regime.per_class, min(train.class_counts())))

TRAIN_ACC_IMAGES = 10_000  # training images (1 000 per class) on which the clean training accuracy is measured

def measure(model: CifarNet, train: Cifar10Split, test: Cifar10Split, recipe: Recipe, regime: Regime, *,
            device: torch.device) -> dict:
    """Every number of one trained network, as notebook 04's tables show them and ``python -m gapcourse
    compare-heads`` records them: test accuracy on the whole test split (with and without the recipe's test-time
    augmentation), clean training accuracy on up to :data:`TRAIN_ACC_IMAGES` of its training images, which test
    images it got right (``test_correct``, see :func:`gapcourse.stats.pack_correctness`; the test split's
    ``test_sha256`` beside it), and (augmented regime only) the size and translation tests on
    :data:`gapcourse.canvas.ROBUSTNESS_IMAGES` test images, one view each. Introduced in notebook 04 (section 4)."""
    model = model.to(device).eval()
    single = replace(recipe, tta="none")
    seen = robustness_subset(train, TRAIN_ACC_IMAGES)  # images the network trained on (all of them if fewer)
    scored = evaluate(model, test, device=device, recipe=recipe)
    record = {
        "train_acc": evaluate(model, seen, device=device, recipe=single).accuracy,  # clean: no augmentation
        "test_acc": scored.accuracy,
        "test_acc_single_view": evaluate(model, test, device=device, recipe=single).accuracy,
        # which test images it got right (bit-packed), for the paired interval between two networks
        "test_correct": pack_correctness(scored.predictions.cpu() == scored.labels.cpu()),
        "test_sha256": test.fingerprint(),
    }
    record["train_minus_test"] = record["train_acc"] - record["test_acc_single_view"]
    if not regime.augment:
        return record
    sub = robustness_subset(test)
    acc = lambda transform: accuracy_with(model, sub, transform, device=device, recipe=recipe)  # noqa: E731
    record["robustness_images"] = len(sub)
    record["at_32"] = acc(lambda x: x)
    record["resized"] = {str(s): acc(lambda x, s=s: resize_images(x, s)) for s in RESIZED}
    record["canvas"] = {str(s): acc(lambda x, s=s: place_on_canvas(x, s)) for s in CANVASES}
    record["translated"] = {str(d): acc(lambda x, d=d: place_on_canvas(x, TRANSLATE_CANVAS, d, d)) for d in OFFSETS}
    record["crop_shift"] = {str(d): acc(lambda x, d=d: shift_images(x, d)) for d in CROP_SHIFTS}
    return record
