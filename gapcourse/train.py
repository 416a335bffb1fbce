"""The training loop. Introduced in notebook 03; reused by notebook 04 and the CLI.

One function trains (:func:`fit`), one measures (:func:`evaluate`). The recipe (:class:`~gapcourse.recipes.Recipe`)
names every choice that makes training fast, so none of them is hidden: batched augmentation (random shift + mirror),
SGD with Nesterov momentum, a one-cycle learning-rate schedule, label smoothing, no weight decay on batch-norm
parameters and biases, an exponential moving average of the weights, 16-bit arithmetic where the hardware has it
natively, channels-last memory layout, and test-time augmentation. Recipes, presets and the choice of precision live
in :mod:`gapcourse.recipes` (re-exported here); training to a time budget is planned by :mod:`gapcourse.budget`.

The step never waits for the device: losses and correct counts stay on the device and are read once per epoch (the
progress bar reads one loss every ``log_every`` steps), and the epoch's random draws reach the device in one copy.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
import time
import warnings
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import Profile
from .config import profile as active_profile
from .data import Cifar10Split, normalize
from .pipeline import batches, num_batches, shift_crop
from . import budget as _budget
from . import initialisation as _init
from . import resume as _resume
from .budget import Plan
from .recipes import PRECISIONS, PRESETS, TTA_MODES, _LATER_FIELDS, Precision, Recipe, choose_precision, cpu_has_native_bf16, native_precision, pick_recipe, resolve_precision

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
    plan: Plan | None = None  # how a run with a time budget was planned, and how long it took (gapcourse.budget)
    pieces: list[dict] = field(default_factory=list)  # a resumable run's stretches (gapcourse.resume), else empty

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


def _sgd(groups: list[dict], recipe: Recipe, device: torch.device, *, fused: bool | None = None) -> torch.optim.SGD:
    """SGD with the recipe's momentum. ``fused`` (default: on CUDA, where this torch has it) runs the whole step as
    one kernel, which also lets the fp16 gradient scaler skip its per-step host read of "was there an overflow?".

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


def _within_device_settings(train_fn):
    """Run :func:`fit` inside :func:`device_settings` for its device and recipe."""

    @functools.wraps(train_fn)
    def run(*args, **kwargs):
        bound = inspect.signature(train_fn).bind(*args, **kwargs)
        device = torch.device(bound.arguments.get("device", "cpu"))
        with device_settings(device, resolve_precision(bound.arguments["recipe"], device)):
            return train_fn(*args, **kwargs)

    return run


def _releasing_frozen_weights(train_fn):
    """Run :func:`fit` so that the weights it froze for the run (``whiten="frozen"``) train again afterwards, also
    when the run ends in an exception or an interrupt."""

    @functools.wraps(train_fn)
    def run(model, *args, **kwargs):
        try:
            return train_fn(model, *args, **kwargs)
        finally:
            for p in model.parameters():
                if getattr(p, "_frozen_by_fit", False):
                    p.requires_grad_(True)
                    del p._frozen_by_fit

    return run


def _holding_resume_file(train_fn):
    """Run :func:`fit` with its ``resume`` file claimed (:func:`gapcourse.resume.claim`): checked writable, and
    used by one run at a time."""

    @functools.wraps(train_fn)
    def run(*args, **kwargs):
        bound = inspect.signature(train_fn).bind(*args, **kwargs)
        resume = bound.arguments.get("resume")
        if resume is None:
            return train_fn(*args, **kwargs)
        bound.arguments["resume"] = path = _resume.resume_path(resume)
        with _resume.claim(path):
            return train_fn(*bound.args, **bound.kwargs)

    return run


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


@_within_device_settings
@_holding_resume_file
@_releasing_frozen_weights
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
    resume: str | os.PathLike | None = None,
) -> History:
    """Train ``model`` on ``train`` with ``recipe``; evaluate on ``test`` after each epoch. Returns a :class:`History`.

    The loop, step by step: draw a shuffled, augmented batch; forward under autocast; cross-entropy with label
    smoothing; backward; SGD step; update the weight average; advance the one-cycle schedule. ``epochs``, if given,
    is obeyed as it is (the profile's scaling applies only to the recipe's own number). With ``recipe.ema`` the
    model ends holding the averaged weights.

    A recipe with ``whiten`` or ``dirac`` first **replaces** some of the model's weights with its starting weights
    (:mod:`gapcourse.initialisation`): the first convolution's filters and bias (whitening filters measured on the
    training images) and the first ``in_channels`` filters of every other convolution (identity filters). A
    pretrained model passed in loses them, so fine-tune with a recipe without them. With ``whiten="frozen"`` the
    whitening filters stay fixed during the run and train again afterwards, as any other.

    A recipe with ``budget_s`` and no ``epochs`` trains to that time budget: fit first times a few steps on a copy
    of the network, then runs as many epochs as fit the budget (:mod:`gapcourse.budget`; ``history.plan`` records
    the plan, and ``fit(..., history.plan.fixed_recipe(recipe), epochs=history.plan.epochs)`` repeats the run).

    ``resume`` (a file path) makes the run resumable: its whole state is saved there after every epoch, and a run
    that finds the file goes on after the last epoch saved, ending with the weights an unbroken run would have
    (:mod:`gapcourse.resume`; a file from another run is refused). It needs a fixed number of epochs.
    """
    started = _budget.clock()  # a budget counts everything fit does, from here
    device = torch.device(device)
    profile = profile or active_profile(announce=False)
    if epochs is None and recipe.budget_s is None:
        epochs = profile.epochs(recipe.epochs)
    elif epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be a whole number ≥ 1, got {epochs!r}.")
    if len(train) == 0:
        raise ValueError("The training split is empty: nothing to train on.")
    if resume is not None and epochs is None:
        raise ValueError("fit(..., resume=...) needs a fixed number of epochs: a run to a time budget plans its "
                         "epochs by timing this machine, so it cannot go on elsewhere. Pass epochs=N, or a recipe "
                         "without budget_s.")
    precision = resolve_precision(recipe, device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    identity = None if resume is None else _resume.run_identity(
        model, generator, recipe.describe(), epochs, precision.mode, train, test)
    model.to(device)  # on CUDA, cuDNN autotuning (and for fp32, TF32 off) is set by device_settings around fit
    if device.type != "cpu":  # keep the uint8 training and test sets on the accelerator: no copy per step
        train = replace(train, images=train.images.to(device), labels=train.labels.to(device))
        if test is not None:
            test = replace(test, images=test.images.to(device))
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    starting_weights(model, train, recipe)

    drop_last = len(train) > recipe.batch_size  # equal-sized steps, unless the data fit in one batch
    steps_per_epoch = num_batches(len(train), recipe.batch_size, drop_last=drop_last)
    plan = None
    if epochs is None:  # a time budget: measure this machine, then plan the epochs that fit (gapcourse.budget)
        plan = _budget.make_plan(model, train, test, recipe, device=device, profile=profile, started=started,
                                 steps_per_epoch=steps_per_epoch,
                                 images_per_epoch=steps_per_epoch * recipe.batch_size if drop_last else len(train))
        if progress:
            print(plan.describe_plan())
        epochs, recipe = plan.epochs, plan.fixed_recipe(recipe)
        precision = resolve_precision(recipe, device)
    optimizer = _sgd(parameter_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias), recipe, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(epochs * steps_per_epoch, recipe.warmup))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
    average = WeightAverage(model, recipe.ema) if recipe.ema > 0 else None

    # The same share of the run at low resolution when the number of epochs is not the recipe's own.
    low_res_epochs = _budget.low_res_epochs_for(recipe, epochs)
    history = History()
    trained, first_epoch = 0.0, 1
    if resume is not None:
        state = _resume.load_state(resume, identity)
        if state is not None:
            done, history, trained, pieces = _resume.restore(
                state, model=model, average=average, optimizer=optimizer, schedule=schedule, scaler=scaler,
                generator=generator, history_type=History)
            history.pieces = pieces
            first_epoch = done + 1
            print(f"Resuming from {resume}: {done} of {epochs} epochs done ({trained:.0f} s of training).",
                  flush=True)  # even without progress bars: where a long run picks up is worth a line
        if first_epoch <= epochs:
            history.pieces.append(_resume.piece(first_epoch, device))
            changed = _resume.differences(history.pieces[-2], history.pieces[-1]) if len(history.pieces) > 1 else []
            if changed:
                warnings.warn(f"This stretch of the run differs from the one before ({'; '.join(changed)}): the run "
                              "goes on from the same state, but is no longer bit-identical to an unbroken run (the "
                              "stretches are recorded in history.pieces).", stacklevel=4)
    for epoch in range(first_epoch, epochs + 1):
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
            logits, loss = train_step(model, x, y, recipe, precision, optimizer, scaler, average, device)
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
        if resume is not None:
            history.pieces[-1]["to_epoch"] = epoch
            _resume.save_state(resume, identity, epoch=epoch, model=model, average=average, optimizer=optimizer,
                               schedule=schedule, scaler=scaler, generator=generator, history=history,
                               trained=trained, pieces=history.pieces)
    if plan is not None:
        history.plan = _budget.finish_plan(plan, started, trained)
    return history


def starting_weights(model: nn.Module, train: Cifar10Split, recipe: Recipe) -> None:
    """Apply the recipe's starting weights (``whiten``, ``dirac``: :mod:`gapcourse.initialisation`) before the first
    step, replacing what the model held there. The whitening filters of ``whiten="frozen"`` are left out of training
    for the run (:func:`_releasing_frozen_weights` gives them back their gradient afterwards)."""
    if recipe.whiten != "none":
        if train.images.is_meta:  # the meta device (shapes only, the sync audits) has no pixels to measure
            conv = next(iter(_init.convolutions(model)), None)
        else:
            conv = _init.whiten_first_conv(model, train.images)
        if recipe.whiten == "frozen" and conv is not None and conv.weight.requires_grad:  # (one the caller froze
            conv.weight.requires_grad_(False)  # stays frozen)
            conv.weight._frozen_by_fit = True
    if recipe.dirac:
        _init.dirac_init(model)


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
