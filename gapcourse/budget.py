"""Training to a time budget: measure this machine, plan the epochs that fit, train them. Introduced in notebook 03.

:func:`fit_to_budget` (a recipe with ``budget_s``, in seconds) does this, and counts all of it against the budget:

1. **Calibrate** (:func:`calibrate`): a few timed training steps at each resolution the run will use (the recipe's
   ``low_res`` and full size) and a timed evaluation batch, on a *copy* of the network (prepared as
   :func:`gapcourse.train.fit` prepares it) with its own optimizer and its own random generator, so the network, its
   optimizer and the training generator are exactly as before (the global random state is restored too).
2. **Choose the arithmetic**: on a CPU with native bf16 and a recipe that says ``precision="auto"``, bf16 and fp32
   are both timed and the one whose plan fits more epochs (or the same sooner) is kept, because native bf16 is not
   always faster (measured by hand: 2.2× faster than fp32 on the course's AMD EPYC, 0.7× as fast on an Intel Xeon
   with AVX-512 BF16 but no AMX). Elsewhere the rule of :func:`gapcourse.recipes.choose_precision` holds.
3. **Plan** (:func:`gapcourse.budget_plan.plan_epochs`, a pure function): the largest number of epochs whose
   predicted time (training at the measured images/s, with the recipe's share of low-resolution epochs, plus the
   test evaluation after each epoch and the final test-time-augmented one) fits in what the calibration left of the
   budget. The profile's rule applies to the planned number as it does to a recipe's own (the fast profile runs one
   epoch), so the fast profile runs the same code.
4. **Train** with :func:`gapcourse.train.fit` for exactly those epochs (the one-cycle schedule runs over their steps)
   and ``plan.fixed_recipe(recipe)``.
5. **Record** (:class:`~gapcourse.budget_plan.Plan`, ``history.plan``): the measurements, the epochs, the precision
   and why, predicted and actual seconds. ``fit(..., plan.fixed_recipe(recipe), epochs=plan.epochs)`` repeats the
   run exactly (same seed and threads: same losses). If the run took more than
   :data:`~gapcourse.budget_plan.OVERSHOOT_TOLERANCE` longer than the budget (the machine slowed down, or one epoch
   was already too long), it prints by how much.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .budget_plan import OVERSHOOT_TOLERANCE, Costs, Plan, plan_epochs
from .config import Profile
from .config import profile as active_profile
from .data import Cifar10Split
from .pipeline import batches, num_batches
from .recipes import Precision, Recipe, measures_precision, resolve_precision
from .train import (History, WeightAverage, device_settings, fit, make_optimizer, on_device, parameter_groups,
                    predict_logits, starting_weights, synchronize, train_step)

# The clock every budget measurement reads (seconds). Tests replace it with a fake one.
clock = time.perf_counter

WARMUP_STEPS = 1  # untimed steps per calibrated setting (first-call costs: kernel selection, memory allocation)
TIMED_STEPS = 3  # timed training steps per resolution and precision
EVAL_IMAGES = 512  # test images in the timed evaluation
TTA_VIEWS = {"none": 1, "flip": 2, "flip_shift": 6}  # forward passes per test image (gapcourse.train.tta_views)


@dataclass
class Calibration:
    """Measured throughput: training images/s keyed ``"<precision>@<size>px"`` and evaluation images/s (one view)
    keyed by precision; ``seconds``: what the calibration took."""

    train_img_per_s: dict[str, float]
    eval_img_per_s: dict[str, float]
    seconds: float


def _sizes(recipe: Recipe, full: int) -> tuple[int, int]:
    """(full size, size of the low-resolution epochs); the same twice when the recipe has none."""
    low = recipe.low_res if recipe.low_res_epochs and recipe.low_res != full else full
    return full, low


def calibrate(model: nn.Module, train: Cifar10Split, test: Cifar10Split | None, recipe: Recipe, *,
              device: torch.device | str, precisions: tuple[str, ...]) -> Calibration:
    """Time :data:`TIMED_STEPS` training steps (after :data:`WARMUP_STEPS` untimed ones) at each resolution the
    recipe uses, for each of ``precisions``, and one evaluation of up to :data:`EVAL_IMAGES` test images.

    The steps are those of :func:`gapcourse.train.fit` (augmented batches, the resize of low-resolution epochs,
    forward under autocast, label-smoothed loss, backward, SGD, weight average), run on a deep copy of ``model``
    with a fresh optimizer and a private generator; the global random state is restored afterwards. ``model``
    should already be on ``device`` in the recipe's memory layout."""
    device = torch.device(device)
    started = clock()
    full, low = _sizes(recipe, train.images.shape[-1])
    drop_last = len(train) > recipe.batch_size
    train_ips: dict[str, float] = {}
    eval_ips: dict[str, float] = {}
    rng_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        for mode in precisions:
            precision = Precision(mode, "calibration")
            probe = copy.deepcopy(model).train()
            optimizer = make_optimizer(parameter_groups(probe, recipe.weight_decay, recipe.decay_norm_and_bias), recipe,
                                       device)
            scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
            average = WeightAverage(probe, recipe.ema) if recipe.ema > 0 else None
            for size in dict.fromkeys((low, full)):  # low first: both sizes, each once
                draws = None
                images, timer = 0, 0.0
                for i in range(WARMUP_STEPS + TIMED_STEPS):
                    if i == WARMUP_STEPS:
                        synchronize(device)
                        timer = clock()
                    batch = next(draws, None) if draws is not None else None
                    if batch is None:  # a private generator: the training generator is never touched
                        draws = batches(train, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                                        generator=torch.Generator().manual_seed(i), device=device,
                                        drop_last=drop_last, cutout=recipe.cutout)
                        batch = next(draws)
                    x, y = batch
                    if size != full:
                        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                    train_step(probe, x, y, recipe, precision, optimizer, scaler, average, device)
                    if i >= WARMUP_STEPS:
                        images += len(y)
                synchronize(device)
                train_ips[f"{mode}@{size}px"] = images / max(clock() - timer, 1e-9)
            if test is not None and len(test):
                n = min(len(test), EVAL_IMAGES)
                eval_recipe = replace(recipe, precision=mode, tta="none", budget_s=None)
                predict_logits(probe, test.images[:min(n, 64)], device=device, recipe=eval_recipe)  # warm-up
                synchronize(device)
                timer = clock()
                predict_logits(probe, test.images[:n], device=device, recipe=eval_recipe)
                synchronize(device)
                eval_ips[mode] = n / max(clock() - timer, 1e-9)
    return Calibration(train_ips, eval_ips, clock() - started)


def costs_for(calibration: Calibration, mode: str, recipe: Recipe, *, images_per_epoch: int, full: int,
              eval_images: int) -> Costs:
    """The :class:`Costs` of running ``recipe`` in precision ``mode``, from a calibration."""
    full, low = _sizes(recipe, full)
    return Costs(images_per_epoch=images_per_epoch,
                 full_img_per_s=calibration.train_img_per_s[f"{mode}@{full}px"],
                 low_img_per_s=calibration.train_img_per_s[f"{mode}@{low}px"],
                 shape_epochs=recipe.epochs, shape_low_res_epochs=recipe.low_res_epochs,
                 eval_images=eval_images, eval_img_per_s=calibration.eval_img_per_s.get(mode, math.inf),
                 tta_views=TTA_VIEWS[recipe.tta])


def faster_precision(calibration: Calibration, recipe: Recipe, full: int,
                     candidates: tuple[str, ...] = ("bf16", "fp32")) -> Precision:
    """The candidate that trains the recipe's mix of resolutions in the least time per image, with the measured
    figures as its reason."""
    full, low = _sizes(recipe, full)
    share = recipe.low_res_epochs / recipe.epochs if low != full else 0.0
    ips = calibration.train_img_per_s

    def per_image(mode: str) -> float:
        return share / ips[f"{mode}@{low}px"] + (1 - share) / ips[f"{mode}@{full}px"]

    best = min(candidates, key=per_image)
    other = max(candidates, key=per_image)
    ratio = per_image(other) / per_image(best)
    return Precision(best, f"timed on this CPU (native bf16): {best} is {ratio:.2f}× as fast as {other} here")


def better_plan(calibration: Calibration, options: dict[str, tuple[Costs, int]], recipe: Recipe,
                full: int) -> Precision:
    """Of the timed precisions, the one whose plan fits more epochs in the budget, or the same epochs in less
    predicted time; the measured figures and both plans are its reason. (The faster per image over the recipe's mix
    of resolutions, :func:`faster_precision`, can lose on a short plan that trains no epoch at low resolution.)"""
    best = max(options, key=lambda m: (options[m][1], -options[m][0].seconds(options[m][1])))
    other = next(m for m in options if m != best)
    (b_costs, b_n), (o_costs, o_n) = options[best], options[other]
    epochs = lambda n: f"{n} epoch{'s' * (n != 1)}"  # noqa: E731
    if b_n > o_n:
        verdict = f"{best} fits {epochs(b_n)} in the budget, {other} {o_n}"
    else:
        verdict = (f"both fit {epochs(b_n)}; {best} in a predicted {b_costs.seconds(b_n):.0f} s, {other} in "
                   f"{o_costs.seconds(o_n):.0f} s")
    return Precision(best, f"timed on this CPU (native bf16): {verdict}")  # the measured figures: Plan.describe_plan


def make_plan(model: nn.Module, train: Cifar10Split, test: Cifar10Split | None, recipe: Recipe, *,
              device: torch.device, profile: Profile, started: float, steps_per_epoch: int,
              images_per_epoch: int, calibration: Calibration | None = None) -> Plan:
    """Calibrate, choose the precision, and plan the epochs of a budgeted run that began at ``clock() == started``
    (what :func:`fit_to_budget` calls before it trains).
    A ``calibration`` made beforehand (a study's, taken when the machine was quiet) is used instead of a new one;
    its seconds count against the budget as a new one's would."""
    if recipe.budget_s is None:
        raise ValueError(f"Recipe {recipe.name!r} has no budget_s: nothing to plan (give it budget_s=seconds).")
    device = torch.device(device)
    if measures_precision(recipe, device):
        candidates = ("bf16", "fp32")
    else:
        candidates = (resolve_precision(recipe, device).mode,)
    if calibration is None:
        calibration = calibrate(model, train, test, recipe, device=device, precisions=candidates)
        spent = clock() - started
    else:
        spent = clock() - started + calibration.seconds
    full = train.images.shape[-1]
    eval_images = len(test) if test is not None else 0
    # At most the recipe's own epochs: its schedule was tuned for that many, and a fast machine (a GPU given a CPU's
    # budget) should train the full recipe and stop early rather than run hundreds of epochs.
    options = {}  # precision -> (its costs, the epochs it fits in the budget)
    for mode in candidates:
        mode_costs = costs_for(calibration, mode, recipe, images_per_epoch=images_per_epoch, full=full,
                               eval_images=eval_images)
        options[mode] = (mode_costs, plan_epochs(recipe.budget_s - spent, mode_costs, max_epochs=recipe.epochs))
    if len(candidates) > 1:
        precision = better_plan(calibration, options, recipe, full)
    else:
        precision = resolve_precision(recipe, device)
    costs, planned = options[precision.mode]
    epochs = profile.epochs(planned)  # the profile's rule, as for a recipe's own number (fast: one epoch)
    note = ""
    if planned == recipe.epochs and spent + costs.seconds(planned + 1) <= recipe.budget_s:
        note = (f"The recipe's full {recipe.epochs} epochs fit the budget with time to spare: they are what runs "
                f"(predicted {spent + costs.seconds(planned):.0f} s of {recipe.budget_s:.0f} s).")
    if spent + costs.seconds(planned) > recipe.budget_s:
        note = (f"The budget is too short for one epoch on this machine (one needs about "
                f"{costs.seconds(1):.0f} s after {spent:.0f} s of calibration): one epoch anyway.")
    elif epochs != planned:
        note = f"The {profile.name} profile runs {epochs} epoch{'s' * (epochs != 1)} of the {planned} planned."
    return Plan(budget_s=float(recipe.budget_s), epochs=epochs, planned_epochs=planned,
                low_res_epochs=costs.low_res_epochs(epochs), low_res=_sizes(recipe, full)[1],
                steps_per_epoch=steps_per_epoch, batch_size=recipe.batch_size, threads=torch.get_num_threads(),
                precision=precision.mode, precision_reason=precision.reason,
                train_img_per_s={k: round(v, 1) for k, v in calibration.train_img_per_s.items()},
                eval_img_per_s={k: round(v, 1) for k, v in calibration.eval_img_per_s.items()},
                calibration_s=round(calibration.seconds, 3), predicted_s=round(spent + costs.seconds(epochs), 3),
                predicted_train_s=round(costs.train_seconds(epochs), 3), note=note)


def finish_plan(plan: Plan, started: float, train_seconds: float) -> Plan:
    """Record the actual seconds of a run that began at ``clock() == started``; print how far it went over its
    budget if it took more than :data:`~gapcourse.budget_plan.OVERSHOOT_TOLERANCE` longer (never silently)."""
    plan.actual_s = round(clock() - started, 3)
    plan.actual_train_s = round(train_seconds, 3)
    if plan.over_budget:
        too_short = plan.predicted_s > plan.budget_s * (1 + OVERSHOOT_TOLERANCE)
        why = ("the budget was too short for one epoch here" if too_short
               else "this machine ran slower than its calibration measured (another program running?)")
        print(f"Over budget: fit took {plan.actual_s:.0f} s for a budget of {plan.budget_s:.0f} s "
              f"(+{plan.overshoot_s:.0f} s, {plan.overshoot_s / plan.budget_s:.0%} over; the plan predicted "
              f"{plan.predicted_s:.0f} s): {why}.")
    return plan


def curve_split(test: Cifar10Split) -> Cifar10Split:
    """The test images notebook 03 checks after each epoch of its budgeted run (the learning curve): 250 per class,
    fewer when the split is small (the fast profile). The budget studies use the same images."""
    return test.subset(min(250, len(test) // 10))


def fit_to_budget(model: nn.Module, train: Cifar10Split, test: Cifar10Split | None, recipe: Recipe, *,
                  device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                  profile: Profile | None = None, progress: bool = True, log_every: int = 50) -> History:
    """Train ``model`` for as many epochs as fit ``recipe.budget_s`` seconds on this machine, calibration and
    evaluation included (the steps are in the module's docstring). Returns :func:`gapcourse.train.fit`'s
    :class:`~gapcourse.train.History` with ``history.plan`` set: the plan, and afterwards how long the run took.
    ``fit(model, train, test, history.plan.fixed_recipe(recipe), epochs=history.plan.epochs)`` repeats the run."""
    started = clock()  # the budget counts everything from here
    if recipe.budget_s is None:
        raise ValueError(f"Recipe {recipe.name!r} has no budget_s: nothing to plan. Give it one "
                         "(dataclasses.replace(recipe, budget_s=240) for 4 minutes), or train a fixed number of "
                         "epochs with gapcourse.train.fit.")
    if len(train) == 0:
        raise ValueError("The training split is empty: nothing to train on.")
    device = torch.device(device)
    profile = profile or active_profile(announce=False)
    with device_settings(device, resolve_precision(recipe, device)):
        train, test = on_device(train, test, device)  # once: fit finds them there
        probe = copy.deepcopy(model).to(device)  # the network as fit will train it, for the calibration only
        if recipe.channels_last:
            probe.to(memory_format=torch.channels_last)
        starting_weights(probe, train, recipe)
        drop_last = len(train) > recipe.batch_size
        steps = num_batches(len(train), recipe.batch_size, drop_last=drop_last)
        plan = make_plan(probe, train, test, recipe, device=device, profile=profile, started=started,
                         steps_per_epoch=steps, images_per_epoch=steps * recipe.batch_size if drop_last else len(train))
        del probe
    if progress:
        print(plan.describe_plan())
    history = fit(model, train, test, plan.fixed_recipe(recipe), device=device, generator=generator,
                  epochs=plan.epochs, profile=profile, progress=progress, log_every=log_every)
    history.plan = finish_plan(plan, started, history.train_seconds)
    return history
