"""A short, readable training loop and its recipes. Introduced in notebook 03; reused by notebook 04 and the CLI.

One function trains (:func:`fit`), one measures (:func:`evaluate`). A :class:`Recipe` names every choice that
makes training fast, so none of them is hidden: batched augmentation (random shift + mirror), SGD with Nesterov
momentum, a one-cycle learning-rate schedule, label smoothing, no weight decay on batch-norm parameters and biases,
an exponential moving average of the weights, 16-bit arithmetic where the hardware has it natively, channels-last
memory layout, and test-time augmentation. :data:`PRESETS` holds the tuned recipes; :func:`pick_recipe` chooses one
for the device, and :func:`choose_precision` the arithmetic.

The step never waits for the device: losses and correct counts stay on the device and are read once per epoch (the
progress bar reads one loss every ``log_every`` steps), and the epoch's random draws reach the device in one copy.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import Profile
from .config import profile as active_profile
from .data import Cifar10Split, normalize
from .pipeline import batches, num_batches, shift_crop

PRECISIONS = ("bf16", "fp16", "fp32")
TTA_MODES = ("none", "flip", "flip_shift")


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
    decay_norm_and_bias: bool = True  # False: no weight decay on BatchNorm weights/biases and on layer biases
    label_smoothing: float = 0.1
    augment_padding: int | None = 4  # random shift of up to ±4 px, plus a random mirror; None turns both off
    warmup: float = 0.25  # share of the steps spent raising the learning rate
    ema: float = 0.0  # decay per step of a moving average of the weights, which is what gets evaluated (0: off)
    precision: str = "auto"  # "auto": choose_precision() for the device; or "bf16", "fp16", "fp32"
    channels_last: bool = False
    tta: str = "none"  # test-time augmentation: "none", "flip" (image + mirror), "flip_shift" (+ 1 px shifts)
    low_res_epochs: int = 0  # progressive resizing: the first epochs (never all) train on images shrunk to low_res px
    low_res: int = 24  # ... which GAP makes possible (any input size) and which costs about (24/32)² of a step
    cutout: int = 0  # side of a square (px) blanked to the mean colour at a random place in each training image (0: off)

    def __post_init__(self):
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} (need at least 1)")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} (need at least 1)")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} (need > 0)")
        if not 0 <= self.ema < 1:
            problems.append(f"ema={self.ema} (a decay in [0, 1); 0 turns it off)")
        if self.precision not in ("auto", *PRECISIONS):
            problems.append(f"precision={self.precision!r} (expected 'auto' or one of {PRECISIONS})")
        if self.tta not in TTA_MODES:
            problems.append(f"tta={self.tta!r} (expected one of {TTA_MODES})")
        if self.low_res_epochs < 0:
            problems.append(f"low_res_epochs={self.low_res_epochs} (expected ≥ 0; at most epochs − 1 are used)")
        if not 8 <= self.low_res <= 64:
            problems.append(f"low_res={self.low_res} (expected 8..64 px)")
        if not 0 <= self.cutout <= 32:
            problems.append(f"cutout={self.cutout} (a square side in px, 0..32; 0 turns it off)")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing={self.label_smoothing} (expected 0 ≤ value < 1)")
        if problems:
            raise ValueError(f"Recipe {self.name!r} is not valid: " + "; ".join(problems) + ".")

    def describe(self) -> str:
        """Every field as ``name=value``. Fields added after the first results were recorded (from ``cutout`` on)
        appear only when they differ from their default, so a recorded recipe still names the same recipe."""
        later = _LATER_FIELDS
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items()
                         if k not in later or v != later[k])


# Fields added after results were first recorded, with their defaults (see Recipe.describe).
_LATER_FIELDS = {"cutout": 0}

PRESETS: dict[str, Recipe] = {
    # A 2-core CPU: the seed's layers at half width, about 4 minutes of training, so that notebook 03 stays within
    # its 6-minute budget (README: ablation and benchmark tables). The first half of the epochs trains on 24 px
    # images (progressive resizing, which only a GAP head allows).
    "cpu": Recipe("cpu", epochs=16, batch_size=256, lr=0.2, width=0.5, label_smoothing=0.2,
                  decay_norm_and_bias=False, ema=0.99, channels_last=True, tta="flip_shift", low_res_epochs=8),
    # Apple GPUs: as the cpu preset, but without channels_last (it has given wrong results and slow backward passes
    # on MPS in several torch releases) and in fp32. Not measured by the course: no Mac was available.
    "mps": Recipe("mps", epochs=16, batch_size=256, lr=0.2, width=0.5, label_smoothing=0.2,
                  decay_norm_and_bias=False, ema=0.99, precision="fp32", tta="flip_shift"),
    # One CUDA GPU: the seed network unchanged (width 1). Not measured by the course yet (see the README).
    "gpu": Recipe("gpu", epochs=24, batch_size=512, lr=0.4, width=1.0, label_smoothing=0.2,
                  decay_norm_and_bias=False, ema=0.99, channels_last=True, tta="flip_shift"),
    # Plain fp32, no tricks: the baseline the presets are measured against.
    "plain": Recipe("plain", epochs=8, batch_size=128, lr=0.05, width=1.0, label_smoothing=0.0, nesterov=False,
                    precision="fp32"),
}


# --------------------------------------------------------------------------------------------------------------------
# Arithmetic precision, chosen by what the hardware does natively


@dataclass(frozen=True)
class Precision:
    """The arithmetic a run uses, and why. ``mode`` is ``bf16``, ``fp16`` (with a gradient scaler) or ``fp32``."""

    mode: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients can underflow to 0; a scaler multiplies the loss before backward and divides after."""
        return self.mode == "fp16"


def choose_precision(device_type: str, cuda_capability: tuple[int, int] | None = None,
                     cpu_native_bf16: bool = False) -> Precision:
    """The fastest arithmetic that is native on the hardware. A pure function of what it is told, so every branch
    is tested without the hardware:

    * CUDA, compute capability ≥ 8.0 (A100, RTX 30xx/40xx, L4, H100): bf16 autocast; cuDNN has bf16 convolutions.
    * CUDA 7.x (V100 7.0, T4 and RTX 20xx 7.5): fp16 autocast with a gradient scaler; cuDNN refuses bf16
      convolutions below 8.0, so bf16 would fall back to a slow path (``torch.cuda.is_bf16_supported()`` says True on
      every CUDA GPU, because it counts emulation).
    * older CUDA GPUs: fp32 (no fast 16-bit units).
    * a CPU with native bf16 (AVX-512 BF16 or AMX): bf16 autocast; any other CPU: fp32 (emulated bf16 is slower).
    * Apple MPS and anything else: fp32.
    """
    if device_type == "cuda":
        if cuda_capability is None:
            return Precision("fp32", "CUDA device of unknown compute capability")
        cap = f"{cuda_capability[0]}.{cuda_capability[1]}"
        if tuple(cuda_capability) >= (8, 0):
            return Precision("bf16", f"CUDA compute capability {cap} ≥ 8.0: native bf16 (cuDNN bf16 convolutions)")
        if tuple(cuda_capability) >= (7, 0):
            return Precision("fp16", f"CUDA compute capability {cap}: tensor cores do fp16 but cuDNN has no bf16 "
                                     "convolutions below 8.0; fp16 autocast with a gradient scaler")
        return Precision("fp32", f"CUDA compute capability {cap} < 7.0: no fast 16-bit arithmetic")
    if device_type == "cpu":
        if cpu_native_bf16:
            return Precision("bf16", "CPU with native bf16 instructions (AVX-512 BF16 or AMX)")
        return Precision("fp32", "CPU without native bf16 (emulated bf16 is slower than fp32)")
    if device_type == "mps":
        return Precision("fp32", "Apple MPS: fp32 (the course has not measured 16-bit autocast there)")
    return Precision("fp32", f"device type {device_type!r}: fp32")


def cpu_has_native_bf16() -> bool:
    """True if this CPU has AVX-512 BF16 or AMX (read from /proc/cpuinfo on Linux; False where it cannot tell)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def native_precision(device: torch.device | str) -> Precision:
    """:func:`choose_precision` for a real device, reading its capability."""
    device = torch.device(device)
    capability = None
    if device.type == "cuda" and torch.cuda.is_available():
        capability = torch.cuda.get_device_capability(device)
    return choose_precision(device.type, capability, device.type == "cpu" and cpu_has_native_bf16())


def resolve_precision(recipe: Recipe | None, device: torch.device | str) -> Precision:
    """The precision a recipe asks for on ``device``: its own choice if it names one, else the native one."""
    device = torch.device(device)
    if recipe is None:
        return Precision("fp32", "no recipe: plain fp32")
    if recipe.precision == "auto":
        return native_precision(device)
    if device.type == "meta":
        return Precision("fp32", "meta device: shapes only")
    return Precision(recipe.precision, f"set by recipe '{recipe.name}'")


def pick_recipe(device: torch.device | str, name: str | None = None, *, announce: bool = True) -> Recipe:
    """The preset for ``device`` (``gpu`` on CUDA, ``mps`` on Apple GPUs, else ``cpu``) or the one named, with its
    precision resolved for the device (recorded in the recipe, so checkpoints say what was used)."""
    device = torch.device(device)
    chosen = name or {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
    if chosen not in PRESETS:
        raise ValueError(f"Unknown preset {chosen!r}; expected one of {sorted(PRESETS)}.")
    recipe = PRESETS[chosen]
    precision = resolve_precision(recipe, device)
    recipe = replace(recipe, precision=precision.mode)
    if announce:
        print(f"Recipe '{recipe.name}': {recipe.epochs} epochs (full profile), batch {recipe.batch_size}, "
              f"width ×{recipe.width}, {precision.mode} ({precision.reason}), channels_last={recipe.channels_last}")
    return recipe


# --------------------------------------------------------------------------------------------------------------------
# Training


@dataclass
class History:
    """What :func:`fit` measured, one entry per epoch (``step_loss``: one per step)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)  # one view; the last with the recipe's test-time augmentation
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


def autocast(device: torch.device, precision: Precision):
    """``torch.autocast`` for a 16-bit precision; a no-op context for fp32."""
    if precision.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast_dtype)


def _prepare(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def synchronize(device: torch.device) -> None:
    """Wait for the accelerator to finish queued work (for timing); nothing to do on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Weight decay for conv and linear weights; none for biases and BatchNorm parameters (1-D tensors) unless
    ``decay_norm_and_bias``. Pulling a BatchNorm scale towards 0 only fights the normalisation."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class WeightAverage:
    """An exponential moving average of a model's floating-point weights and buffers (BatchNorm statistics too):
    after each step ``avg ← decay·avg + (1 − decay)·weights``, all tensors in one fused call on the device (the
    decay is a Python number, so the update never waits for the device).

    Averaging the last few hundred steps smooths out the noise of SGD; it is the averaged network that
    :func:`fit` evaluates and returns. Used by the fast CIFAR-10 trainers (airbench, hlb-CIFAR10, Page's ResNet-9).
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._pairs = [(a, b) for a, b in zip(self.model.state_dict().values(), model.state_dict().values())
                       if a.dtype.is_floating_point]

    def current_decay(self) -> float:
        """The decay for the next update: ramps up as (1 + t) / (10 + t) to ``decay``, so that the average of a
        short run is not dominated by the untrained starting weights."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        averaged, current = zip(*self._pairs)
        torch._foreach_lerp_(list(averaged), list(current), 1.0 - self.current_decay())
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.model.state_dict())


def _sgd(groups: list[dict], recipe: Recipe, device: torch.device) -> torch.optim.SGD:
    kwargs = dict(lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if device.type == "cuda" and "fused" in inspect.signature(torch.optim.SGD).parameters:
        kwargs["fused"] = True  # one kernel per step; lets the fp16 gradient scaler skip its host sync
    return torch.optim.SGD(groups, **kwargs)


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
    log_every: int = 50,
) -> History:
    """Train ``model`` on ``train`` with ``recipe``; evaluate on ``test`` after each epoch. Returns a :class:`History`.

    The loop, step by step: draw a shuffled, augmented batch; forward under autocast; cross-entropy with label
    smoothing; backward; SGD step; update the weight average; advance the one-cycle schedule. ``epochs``, if given,
    is obeyed as it is (the profile's scaling applies only to the recipe's own number). With ``recipe.ema`` the
    model ends holding the averaged weights.
    """
    device = torch.device(device)
    profile = profile or active_profile(announce=False)
    if epochs is None:
        epochs = profile.epochs(recipe.epochs)
    elif not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number ≥ 1, got {epochs!r}.")
    if len(train) == 0:
        raise ValueError("The training split is empty: nothing to train on.")
    precision = resolve_precision(recipe, device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN time its kernels once and keep the best
    if device.type != "cpu":  # keep the uint8 training and test sets on the accelerator: no copy per step
        train = replace(train, images=train.images.to(device), labels=train.labels.to(device))
        if test is not None:
            test = replace(test, images=test.images.to(device))
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)

    drop_last = len(train) > recipe.batch_size  # equal-sized steps, unless the data fit in one batch
    steps_per_epoch = num_batches(len(train), recipe.batch_size, drop_last=drop_last)
    optimizer = _sgd(parameter_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias), recipe, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(epochs * steps_per_epoch, recipe.warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
    average = WeightAverage(model, recipe.ema) if recipe.ema > 0 else None

    # The same share of the run at low resolution when the number of epochs is not the recipe's own.
    low_res_epochs = min(epochs - 1, round(recipe.low_res_epochs * epochs / recipe.epochs)) if recipe.low_res_epochs \
        else 0
    history = History()
    trained = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        synchronize(device)
        start = time.perf_counter()
        step_losses, loss_sum, correct, seen = [], None, None, 0
        loop = tqdm(batches(train, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                            generator=generator, device=device, drop_last=drop_last, cutout=recipe.cutout),
                    total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        shrink = epoch <= low_res_epochs and recipe.low_res != train.images.shape[-1]
        for step, (x, y) in enumerate(loop, 1):
            if shrink:
                x = F.interpolate(x, size=(recipe.low_res, recipe.low_res), mode="bilinear", antialias=True,
                                  align_corners=False)
            with autocast(device, precision):
                logits = model(_prepare(x, recipe.channels_last))
                loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update()
            history.lr.append(schedule.get_last_lr()[0])
            schedule.step()
            # Everything below stays on the device: no step waits for the host.
            loss = loss.detach()
            step_losses.append(loss)
            hits = (logits.argmax(1) == y).sum()
            loss_sum = loss * len(y) if loss_sum is None else loss_sum + loss * len(y)
            correct = hits if correct is None else correct + hits
            seen += len(y)
            if progress and step % log_every == 0:
                loop.set_postfix(loss=f"{loss.item():.3f}")  # one read every log_every steps, for the eye only
        # One read per epoch: every step's loss and the epoch's sums together.
        numbers = torch.cat([torch.stack(step_losses), torch.stack([loss_sum, correct.to(loss_sum.dtype)])])
        numbers = numbers.tolist()
        synchronize(device)
        trained += time.perf_counter() - start
        history.step_loss += numbers[:-2]
        history.epoch.append(epoch)
        history.train_loss.append(numbers[-2] / seen)
        history.train_acc.append(numbers[-1] / seen)
        history.seconds.append(trained)
        if average is not None and epoch == epochs:
            average.copy_to(model)
        if test is not None:  # one view after each epoch (cheap); the recipe's test-time augmentation after the last
            evaluated = average.model if average is not None and epoch < epochs else model
            result = evaluate(evaluated, test, device=device, recipe=recipe if epoch == epochs else
                              replace(recipe, tta="none"))
            history.test_loss.append(result.loss)
            history.test_acc.append(result.accuracy)
        if progress:
            msg = (f"epoch {epoch}/{epochs}: train loss {history.train_loss[-1]:.3f}, "
                   f"train acc {history.train_acc[-1]:.1%}")
            if test is not None:
                msg += f", test acc {history.test_acc[-1]:.1%}"
            print(msg + f" ({trained:.0f} s training so far)")
    return history


# --------------------------------------------------------------------------------------------------------------------
# Evaluation


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


def tta_views(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, list[float]]:
    """The test-time views of a batch stacked into one batch, and the weight of each view.

    ``none``: the image. ``flip``: the image and its mirror, ½ each. ``flip_shift``: those two (½ together) and the
    image and its mirror shifted by one pixel up-left and down-right (½ together), as airbench does.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {mode!r}; expected one of {TTA_MODES}.")
    if mode == "none":
        return x, [1.0]
    views = [x, x.flip(3)]
    if mode == "flip":
        return torch.cat(views), [0.5, 0.5]
    n = x.shape[0]
    for offset in (0, 2):  # a window starting at 0 or 2 in the 1-px reflect-padded image: a shift of +1 or -1 px
        d = torch.full((n,), offset, dtype=torch.long, device=x.device)
        shifted = shift_crop(x, d, d, 1)
        views += [shifted, shifted.flip(3)]
    return torch.cat(views), [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, device: torch.device | str | None = None,
                   recipe: Recipe | None = None, batch_size: int = 256) -> torch.Tensor:
    """Logits for uint8 (or already normalised float) images, in batches, with the recipe's test-time settings
    (precision, memory layout, test-time augmentation: the views of a batch go through the network one view at a
    time, since one forward of all six views at once was 1.4× slower per image on the course's CPU).

    The logits stay on ``device`` until the end and come back in one copy. ``device=None`` uses the device the
    model's weights are on.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"predict_logits expects images N×3×H×W, got shape {tuple(images.shape)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}.")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    precision = resolve_precision(recipe, device)
    channels_last = bool(recipe and recipe.channels_last)
    mode = recipe.tta if recipe is not None else "none"
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True)
        x = normalize(x) if x.dtype == torch.uint8 else x.float()
        stacked, weights = tta_views(x, mode)
        total = None
        for view, w in zip(stacked.view(len(weights), *x.shape), weights):  # one forward per view
            with autocast(device, precision):
                logits = model(_prepare(view, channels_last)).float()
            total = w * logits if total is None else total + w * logits
        out.append(total)
    return torch.cat(out).cpu()


def evaluate(model: nn.Module, data: Cifar10Split, *, device: torch.device | str | None = None,
             recipe: Recipe | None = None, batch_size: int = 256) -> Evaluation:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (no augmentation, fp32, unless the recipe asks for
    test-time augmentation and a 16-bit precision)."""
    logits = predict_logits(model, data.images, device=device, recipe=recipe, batch_size=batch_size)
    labels = data.labels.cpu()  # the logits come back to the host; so do the labels, wherever the split lives
    loss = F.cross_entropy(logits, labels).item()
    predictions = logits.argmax(1)
    accuracy = (predictions == labels).float().mean().item()
    return Evaluation(loss, accuracy, predictions, labels.clone(), len(data.classes))
