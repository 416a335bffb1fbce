"""A short, readable training loop and its recipes. Introduced in notebook 03; reused by notebook 04 and the CLI.

One function trains (:func:`fit`), one measures (:func:`evaluate`). A :class:`Recipe` names every choice that
makes training fast, so none of them is hidden: batched augmentation (random shift + mirror), SGD with Nesterov
momentum, a one-cycle learning-rate schedule, label smoothing, bf16 autocast and channels-last memory layout where the
hardware gains from them, and test-time mirroring. :data:`PRESETS` holds the tuned recipes; :func:`pick_recipe`
chooses one for the device.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import Profile
from .config import profile as active_profile
from .data import Cifar10Split, normalize
from .pipeline import batches, num_batches


@dataclass(frozen=True)
class Recipe:
    """Every training choice in one place. ``epochs`` is for the full profile; the fast profile runs one epoch."""

    name: str
    epochs: int
    batch_size: int
    lr: float  # peak learning rate of the one-cycle schedule
    width: float = 1.0  # conv width multiplier for the seed body
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment_padding: int | None = 4  # random shift of up to ±4 px, plus a random mirror; None turns both off
    warmup: float = 0.25  # share of the steps spent raising the learning rate
    bf16: bool = False  # bf16 autocast (CPUs with AVX-512 BF16/AMX, and GPUs)
    channels_last: bool = False
    tta_flip: bool = False  # average the predictions for the image and its mirror at test time

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


PRESETS: dict[str, Recipe] = {
    # A 2-core CPU: the seed's layers at half width, bf16 where supported, budget about 300 s of training.
    "cpu": Recipe("cpu", epochs=14, batch_size=256, lr=0.2, width=0.5, bf16=True, channels_last=True, tta_flip=True),
    # One GPU: the seed network unchanged.
    "gpu": Recipe("gpu", epochs=20, batch_size=512, lr=0.4, width=1.0, bf16=True, channels_last=True, tta_flip=True),
    # Plain fp32, no tricks: the baseline the presets are measured against.
    "plain": Recipe("plain", epochs=8, batch_size=128, lr=0.05, width=1.0, label_smoothing=0.0, nesterov=False),
}


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast on this device (a GPU that supports it, or a CPU with native bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def pick_recipe(device: torch.device, name: str | None = None, *, announce: bool = True) -> Recipe:
    """The preset for ``device`` (``gpu`` on CUDA, else ``cpu``) or the one named; bf16 only where supported."""
    chosen = name or ("gpu" if device.type == "cuda" else "cpu")
    if chosen not in PRESETS:
        raise ValueError(f"Unknown preset {chosen!r}; expected one of {sorted(PRESETS)}.")
    recipe = PRESETS[chosen]
    if recipe.bf16 and not bf16_supported(device):
        recipe = replace(recipe, bf16=False)
    if announce:
        print(f"Recipe '{recipe.name}': {recipe.epochs} epochs (full profile), batch {recipe.batch_size}, "
              f"width ×{recipe.width}, bf16={'on' if recipe.bf16 else 'off'}, channels_last={recipe.channels_last}")
    return recipe


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (``step_loss``: one per step)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # training time so far, evaluation excluded
    step_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # one per step

    @property
    def train_seconds(self) -> float:
        return self.seconds[-1] if self.seconds else 0.0


def one_cycle(total_steps: int, warmup: float, start: float = 0.05, end: float = 0.0):
    """Learning-rate factor per step: rises linearly from ``start`` to 1 over the first ``warmup`` share of the
    steps, then falls linearly to ``end`` at the last step (the "one-cycle" shape of Smith & Topin, 2017)."""
    peak = max(1, round(total_steps * warmup))

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * step / peak
        return end + (1 - end) * max(0.0, (total_steps - step) / max(1, total_steps - peak))

    return factor


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _prepare(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def fit(
    model: nn.Module,
    train: Cifar10Split,
    test: Cifar10Split | None,
    recipe: Recipe,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    profile: Profile | None = None,
    epochs: int | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``train`` with ``recipe``; evaluate on ``test`` after each epoch. Returns a :class:`History`.

    The loop, step by step: draw a shuffled, augmented batch; forward under autocast; cross-entropy with label
    smoothing; backward; SGD step; advance the one-cycle schedule.
    """
    device = torch.device(device)
    profile = profile or active_profile(announce=False)
    epochs = epochs if epochs is not None else profile.epochs(recipe.epochs)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    model.to(device)
    if device.type != "cpu":  # keep the whole uint8 training set on the accelerator: no copy per step
        train = replace(train, images=train.images.to(device), labels=train.labels.to(device))
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)

    drop_last = len(train) > recipe.batch_size  # equal-sized steps, unless the data fit in one batch
    steps_per_epoch = num_batches(len(train), recipe.batch_size, drop_last=drop_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, one_cycle(epochs * steps_per_epoch, recipe.warmup))

    history = History()
    trained = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        total_loss = total_correct = seen = 0
        loop = tqdm(batches(train, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                            generator=generator, device=device, drop_last=drop_last),
                    total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        for x, y in loop:
            with _autocast(device, recipe.bf16):
                logits = model(_prepare(x, recipe.channels_last))
                loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.lr.append(schedule.get_last_lr()[0])
            schedule.step()
            history.step_loss.append(loss.item())
            total_loss += loss.item() * len(y)
            total_correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            loop.set_postfix(loss=f"{loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        trained += time.perf_counter() - start
        history.epoch.append(epoch)
        history.train_loss.append(total_loss / seen)
        history.train_acc.append(total_correct / seen)
        history.seconds.append(trained)
        if test is not None:
            result = evaluate(model, test, device=device, recipe=recipe)
            history.test_loss.append(result.loss)
            history.test_acc.append(result.accuracy)
        if progress:
            msg = (f"epoch {epoch}/{epochs}: train loss {history.train_loss[-1]:.3f}, "
                   f"train acc {history.train_acc[-1]:.1%}")
            if test is not None:
                msg += f", test acc {history.test_acc[-1]:.1%}"
            print(msg + f" ({trained:.0f} s training so far)")
    return history


@dataclass
class Evaluation:
    """Loss, accuracy and every prediction on one split."""

    loss: float
    accuracy: float
    predictions: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def per_class_accuracy(self) -> list[float]:
        return [float((self.predictions[self.labels == c] == c).float().mean()) for c in range(self.num_classes)]

    def confusion_matrix(self) -> torch.Tensor:
        """Rows: true class; columns: predicted class."""
        k = self.num_classes
        return torch.bincount(self.labels * k + self.predictions, minlength=k * k).view(k, k)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, device: torch.device | str = "cpu",
                   recipe: Recipe | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Logits for uint8 (or already normalised float) images, in batches, with the recipe's test-time settings."""
    device = torch.device(device)
    bf16 = bool(recipe and recipe.bf16)
    channels_last = bool(recipe and recipe.channels_last)
    tta = bool(recipe and recipe.tta_flip)
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        x = normalize(x) if x.dtype == torch.uint8 else x.float()
        x = _prepare(x, channels_last)
        with _autocast(device, bf16):
            logits = model(x).float()
            if tta:
                logits = 0.5 * (logits + model(x.flip(3)).float())
        out.append(logits.cpu())
    return torch.cat(out)


def evaluate(model: nn.Module, data: Cifar10Split, *, device: torch.device | str = "cpu",
             recipe: Recipe | None = None, batch_size: int = 1000) -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (no augmentation; mirror-averaged if the recipe
    says ``tta_flip``)."""
    logits = predict_logits(model, data.images, device=device, recipe=recipe, batch_size=batch_size)
    loss = F.cross_entropy(logits, data.labels).item()
    predictions = logits.argmax(1)
    accuracy = (predictions == data.labels).float().mean().item()
    return Evaluation(loss, accuracy, predictions, data.labels.clone(), len(data.classes))
