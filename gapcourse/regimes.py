"""The two training regimes of notebook 04's head comparison, and a trained network per head, recipe and seed that
is saved once and loaded after (:func:`train_or_load`). Introduced in notebook 04; notebook 05 trains its own
networks with it when ``TRAIN_MY_OWN = True``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
import hashlib

import torch

from .checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from .config import Profile
from .data import Cifar10Split
from .models import HEADS, CifarNet, build_net
from .recipes import CPU_HALF_WIDTH, Recipe, resolve_precision
from .train import History, fit


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
