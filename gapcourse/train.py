"""The training loop. Introduced in notebook 03; reused by notebooks 04 (training), 05 (:func:`predict_logits`) and 06
(:class:`WeightAverage`, :func:`parameter_groups`, :func:`tta_views`), and by the command line.

One function trains (:func:`fit`: a fixed number of epochs), one measures (:func:`evaluate`). The recipe
(:class:`~gapcourse.recipes.Recipe`) names every choice that makes training fast, so none of them is hidden: batched
augmentation (random shift + mirror), SGD with Nesterov momentum, a one-cycle learning-rate schedule, label
smoothing, no weight decay on batch-norm parameters and biases, an exponential moving average of the weights, 16-bit
arithmetic where the hardware has it natively, channels-last memory layout, and test-time augmentation. Recipes,
presets and the choice of precision live in :mod:`gapcourse.recipes`. Two wrappers run ``fit`` for longer jobs:
:func:`gapcourse.budget.fit_to_budget` (as many epochs as fit a time budget) and
:func:`gapcourse.studies.resume.fit_resumable` (saved after every epoch, goes on after an interruption).

The step never waits for the device: losses and correct counts stay on the device and are read once per epoch (the
progress bar reads one loss every ``log_every`` steps), and the epoch's random draws reach the device in one copy.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import initialisation
from .budget_plan import Plan, low_res_epochs_for
from .config import Profile
from .config import profile as active_profile
from .data import Cifar10Split, normalize
from .pipeline import batches, num_batches, shift_crop
from .recipes import TTA_MODES, Precision, Recipe, resolve_precision

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
    plan: Plan | None = None  # how a run to a time budget was planned, and how long it took (gapcourse.budget)
    pieces: list[dict] = field(default_factory=list)  # a resumable run's stretches (gapcourse.studies.resume), else empty

    def __post_init__(self):
        if isinstance(self.plan, dict):  # read back from a checkpoint's metadata
            self.plan = Plan.from_dict(self.plan)

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


def _has_fused_sgd() -> bool:
    """Whether this torch has the fused SGD optimizer (one kernel per step; CUDA, and CPU in recent releases)."""
    return "fused" in inspect.signature(torch.optim.SGD).parameters


_said_unfused = False  # the warning below is given once per process


def make_optimizer(groups: list[dict], recipe: Recipe, device: torch.device, *,
                   fused: bool | None = None) -> torch.optim.SGD:
    """SGD with the recipe's momentum. ``fused`` (default: on CUDA, where this torch has it) runs the whole step as
    one kernel, which also lets the fp16 gradient scaler skip its per-step host read of "was there an overflow?".
    ``fused=True`` elsewhere gives a CPU the same optimizer (the dry run of ``bench --verify-gpu``).

    A fused optimizer starts from zero momentum buffers. Fused SGD would otherwise create them with ``empty_like``
    in its first step and rely on that step to fill them; when the fp16 gradient scaler skips that step (an
    overflow), the buffers stay uninitialised memory and the next step uses them. Zeros give the same first step
    as PyTorch's own (dampening 0: buffer = momentum·0 + gradient = gradient), whether or not it is skipped.
    """
    global _said_unfused
    kwargs = dict(lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if fused is None:
        fused = device.type == "cuda" and _has_fused_sgd()
        if device.type == "cuda" and not fused and not _said_unfused:
            _said_unfused = True
            warnings.warn(f"torch {torch.__version__} has no fused SGD: training on CUDA uses the unfused optimizer, "
                          "and in fp16 its gradient scaler then waits for the GPU once per step (it reads whether "
                          "the step overflowed). A newer torch removes that wait.", stacklevel=2)
    if fused:
        kwargs["fused"] = True
    optimizer = torch.optim.SGD(groups, **kwargs)
    if fused and recipe.momentum:
        for group in optimizer.param_groups:
            for p in group["params"]:
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return optimizer


@contextlib.contextmanager
def device_settings(device: torch.device | str, precision: Precision):
    """The global switches a run on ``device`` needs, restored on exit however the run ends. On CUDA: cuDNN
    autotuning on (the input shapes are fixed, so cuDNN times its kernels once and keeps the fastest), and for an
    fp32 run TF32 off for convolutions and matrix products, since on compute capability ≥ 8.0 cuDNN would otherwise
    run "fp32" convolutions in TF32 (a 10-bit mantissa). Elsewhere: nothing to set."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.benchmark = True
        if precision.mode == "fp32":
            cudnn.allow_tf32 = matmul.allow_tf32 = False
        yield
    finally:
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = saved


def on_device(train: Cifar10Split, test: Cifar10Split | None, device: torch.device
              ) -> tuple[Cifar10Split, Cifar10Split | None]:
    """The splits as :func:`fit` keeps them: on an accelerator, the uint8 training images and labels and the test
    images live there for the whole run (no copy per step); on a CPU they stay as they are."""
    if device.type == "cpu":
        return train, test
    train = replace(train, images=train.images.to(device), labels=train.labels.to(device))
    return train, None if test is None else replace(test, images=test.images.to(device))


def starting_weights(model: nn.Module, train: Cifar10Split, recipe: Recipe) -> list[nn.Parameter]:
    """Apply the recipe's starting weights (``whiten``, ``dirac``: :mod:`gapcourse.initialisation`) before the first
    step, replacing what the model held there. Returns the weights it froze for the run (the whitening filters of
    ``whiten="frozen"``; :func:`fit` lets them train again afterwards), else an empty list."""
    frozen = []
    if recipe.whiten != "none":
        if train.images.is_meta:  # the meta device (shapes only, the sync audits) has no pixels to measure
            conv = next(iter(initialisation.convolutions(model)), None)
        else:
            conv = initialisation.whiten_first_conv(model, train.images)
        if recipe.whiten == "frozen" and conv is not None and conv.weight.requires_grad:  # (one the caller froze
            conv.weight.requires_grad_(False)  # stays frozen)
            frozen.append(conv.weight)
    if recipe.dirac:
        initialisation.dirac_init(model)
    return frozen


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, precision: Precision,
               optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, average: WeightAverage | None,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of :func:`fit` (and of the budget planner's calibration): forward under autocast, label-smoothed
    loss, backward through the gradient scaler, SGD step, weight-average update. Returns ``(logits, loss)``, both
    still on the device."""
    with autocast(device, precision):
        logits = model(_prepare(x, recipe.channels_last))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if average is not None:
        average.update()
    return logits, loss


@dataclass
class TrainingState:
    """Everything a run changes as it trains. :func:`fit` passes it to its ``on_start`` and ``on_epoch_end``
    callbacks (a resumable run puts a saved state back into it and saves it after every epoch: gapcourse.studies.resume)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    average: WeightAverage | None
    generator: torch.Generator
    history: History = field(default_factory=History)


def epoch_numbers(step_losses: list[torch.Tensor], loss_sum: torch.Tensor, correct: torch.Tensor) -> list[float]:
    """The epoch's one read from the device (:func:`train_epoch`): every step's loss, then the loss sum and the number
    of correct predictions, copied to the host together."""
    return torch.cat([torch.stack(step_losses), torch.stack([loss_sum, correct.to(loss_sum.dtype)])]).tolist()


def train_epoch(state: TrainingState, train: Cifar10Split, recipe: Recipe, precision: Precision,
                device: torch.device, *, low_res: bool = False, progress: bool = True, log_every: int = 50,
                desc: str = "") -> None:
    """One epoch of :func:`fit`: :func:`train_step` on every shuffled, augmented batch (shrunk to ``recipe.low_res``
    px when ``low_res``), the one-cycle schedule advanced after each; the epoch's losses, accuracy and training
    time are added to ``state.history``. Nothing is read from the device until the epoch ends."""
    state.model.train()
    synchronize(device)
    start = time.perf_counter()
    drop_last = len(train) > recipe.batch_size  # equal-sized steps, unless the data fit in one batch
    step_losses, loss_sum, correct, seen = [], None, None, 0
    loop = tqdm(batches(train, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                        generator=state.generator, device=device, drop_last=drop_last, cutout=recipe.cutout),
                total=num_batches(len(train), recipe.batch_size, drop_last=drop_last), desc=desc, leave=False,
                disable=not progress)
    for step, (x, y) in enumerate(loop, 1):
        if low_res and recipe.low_res != x.shape[-1]:
            x = F.interpolate(x, size=(recipe.low_res, recipe.low_res), mode="bilinear", antialias=True,
                              align_corners=False)
        logits, loss = train_step(state.model, x, y, recipe, precision, state.optimizer, state.scaler, state.average,
                                  device)
        state.history.lr.append(state.schedule.get_last_lr()[0])
        state.schedule.step()
        loss = loss.detach()  # everything below stays on the device: no step waits for the host
        step_losses.append(loss)
        hits = (logits.argmax(1) == y).sum()
        loss_sum = loss * len(y) if loss_sum is None else loss_sum + loss * len(y)
        correct = hits if correct is None else correct + hits
        seen += len(y)
        if progress and step % log_every == 0:
            loop.set_postfix(loss=f"{loss.item():.3f}")  # one read every log_every steps, for the eye only
    numbers = epoch_numbers(step_losses, loss_sum, correct)  # the epoch's one read from the device
    synchronize(device)
    history = state.history
    history.seconds.append(history.train_seconds + (time.perf_counter() - start))
    history.step_loss += numbers[:-2]
    history.epoch.append(len(history.epoch) + 1)
    history.train_loss.append(numbers[-2] / seen)
    history.train_acc.append(numbers[-1] / seen)


def fit(model: nn.Module, train: Cifar10Split, test: Cifar10Split | None, recipe: Recipe, *,
        device: torch.device | str = "cpu", generator: torch.Generator | None = None, epochs: int | None = None,
        profile: Profile | None = None, progress: bool = True, log_every: int = 50, fused: bool | None = None,
        on_start: Callable[[TrainingState], None] | None = None,
        on_epoch_end: Callable[[TrainingState], None] | None = None) -> History:
    """Train ``model`` on ``train`` with ``recipe`` for ``epochs`` epochs (default: the recipe's, as the profile
    scales them), evaluating on ``test`` after each. Returns a :class:`History`; with ``recipe.ema`` the model ends
    holding the averaged weights.

    A recipe with ``whiten`` or ``dirac`` first **replaces** some of the model's weights with its starting weights
    (:func:`starting_weights`), so fine-tune a pretrained model with a recipe without them; ``whiten="frozen"``
    keeps the whitening filters fixed during the run. ``fused`` chooses the optimizer (:func:`make_optimizer`);
    ``on_start`` and ``on_epoch_end`` are called with the :class:`TrainingState` after the setup and after each
    epoch (:func:`gapcourse.studies.resume.fit_resumable` uses them). To train to a time budget instead of a number of
    epochs, use :func:`gapcourse.budget.fit_to_budget`.
    """
    if recipe.budget_s is not None:
        raise ValueError(f"Recipe {recipe.name!r} has a time budget (budget_s={recipe.budget_s:g}), and fit trains a "
                         "fixed number of epochs. Train to the budget with gapcourse.budget.fit_to_budget(model, "
                         "train, test, recipe, ...), or drop it: dataclasses.replace(recipe, budget_s=None).")
    device = torch.device(device)
    epochs = (profile or active_profile(announce=False)).epochs(recipe.epochs) if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number ≥ 1, got {epochs!r}.")
    if len(train) == 0:
        raise ValueError("The training split is empty: nothing to train on.")
    precision = resolve_precision(recipe, device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    frozen = []
    try:
        with device_settings(device, precision):  # on CUDA: cuDNN autotuning, and no TF32 in an fp32 run
            model.to(device)
            if recipe.channels_last:
                model.to(memory_format=torch.channels_last)
            train, test = on_device(train, test, device)
            frozen = starting_weights(model, train, recipe)
            steps = num_batches(len(train), recipe.batch_size, drop_last=len(train) > recipe.batch_size)
            optimizer = make_optimizer(parameter_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias),
                                       recipe, device, fused=fused)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(epochs * steps, recipe.warmup))
            scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
            average = WeightAverage(model, recipe.ema) if recipe.ema > 0 else None
            state = TrainingState(model, optimizer, schedule, scaler, average, generator)
            if on_start is not None:
                on_start(state)  # e.g. a resumable run puts its saved state back
            history = state.history
            low_res_epochs = low_res_epochs_for(recipe, epochs)  # the recipe's share of epochs, at any length
            for epoch in range(len(history.epoch) + 1, epochs + 1):
                train_epoch(state, train, recipe, precision, device, low_res=epoch <= low_res_epochs,
                            progress=progress, log_every=log_every, desc=f"epoch {epoch}/{epochs}")
                if average is not None and epoch == epochs:
                    average.copy_to(model)
                if test is not None:  # one view after each epoch; the recipe's test-time augmentation after the last
                    result = evaluate(average.model if average is not None and epoch < epochs else model, test,
                                      device=device, recipe=recipe if epoch == epochs else replace(recipe, tta="none"))
                    history.test_loss.append(result.loss)
                    history.test_acc.append(result.accuracy)
                if progress:
                    print(f"epoch {epoch}/{epochs}: train loss {history.train_loss[-1]:.3f}, train acc "
                          f"{history.train_acc[-1]:.1%}" + ("" if test is None else f", test acc {result.accuracy:.1%}")
                          + f" ({history.train_seconds:.0f} s training so far)")
                if on_epoch_end is not None:
                    on_epoch_end(state)
    finally:
        for p in frozen:  # the weights frozen for this run train again afterwards, however the run ended
            p.requires_grad_(True)
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
