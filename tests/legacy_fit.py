"""A frozen copy of ``gapcourse.train.fit``'s fixed-epoch loop as it was before ``fit`` became a plain loop (issue 31;
main f493e7a, where the same function also planned budgets and resumed runs). Written with the package's building
blocks (the step, the optimizer, the schedule, the weight average, the batches, the starting weights, evaluation) in
the old order of operations, so ``tests/test_train.py`` can check that the new ``fit`` gives bit-identical weights and
history: the refactor moved code, not arithmetic. Not a module of the package; nothing imports it but the tests.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from gapcourse.budget_plan import low_res_epochs_for
from gapcourse.pipeline import batches, num_batches
from gapcourse.recipes import resolve_precision
from gapcourse.train import (History, WeightAverage, device_settings, evaluate, make_optimizer, one_cycle,
                             parameter_groups, starting_weights, synchronize, train_step)


def legacy_fit(model, train, test, recipe, *, epochs: int, device="cpu", generator=None) -> History:
    """The old ``fit(model, train, test, recipe, epochs=epochs, progress=False)``, a recipe without a budget."""
    device = torch.device(device)
    precision = resolve_precision(recipe, device)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    frozen = []
    try:
        with device_settings(device, precision):
            model.to(device)
            if device.type != "cpu":
                train = replace(train, images=train.images.to(device), labels=train.labels.to(device))
                if test is not None:
                    test = replace(test, images=test.images.to(device))
            if recipe.channels_last:
                model.to(memory_format=torch.channels_last)
            frozen = starting_weights(model, train, recipe)

            drop_last = len(train) > recipe.batch_size
            steps_per_epoch = num_batches(len(train), recipe.batch_size, drop_last=drop_last)
            optimizer = make_optimizer(parameter_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias),
                                       recipe, device)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(epochs * steps_per_epoch, recipe.warmup))
            scaler = torch.amp.GradScaler(device.type, enabled=precision.needs_grad_scaler)
            average = WeightAverage(model, recipe.ema) if recipe.ema > 0 else None
            low_res_epochs = low_res_epochs_for(recipe, epochs)
            history = History()
            trained = 0.0
            for epoch in range(1, epochs + 1):
                model.train()
                synchronize(device)
                start = time.perf_counter()
                step_losses, loss_sum, correct, seen = [], None, None, 0
                shrink = epoch <= low_res_epochs and recipe.low_res != train.images.shape[-1]
                for x, y in batches(train, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                                    generator=generator, device=device, drop_last=drop_last, cutout=recipe.cutout):
                    if shrink:
                        x = F.interpolate(x, size=(recipe.low_res, recipe.low_res), mode="bilinear",
                                          antialias=True, align_corners=False)
                    logits, loss = train_step(model, x, y, recipe, precision, optimizer, scaler, average, device)
                    history.lr.append(schedule.get_last_lr()[0])
                    schedule.step()
                    loss = loss.detach()
                    step_losses.append(loss)
                    hits = (logits.argmax(1) == y).sum()
                    loss_sum = loss * len(y) if loss_sum is None else loss_sum + loss * len(y)
                    correct = hits if correct is None else correct + hits
                    seen += len(y)
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
                if test is not None:
                    evaluated = average.model if average is not None and epoch < epochs else model
                    result = evaluate(evaluated, test, device=device, recipe=recipe if epoch == epochs else
                                      replace(recipe, tta="none"))
                    history.test_loss.append(result.loss)
                    history.test_acc.append(result.accuracy)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return history
