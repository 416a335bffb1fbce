"""gapcourse.train: the loop learns on real images, is repeatable on CPU, and its measurements add up."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import real_copy

from gapcourse import build_net, load_cifar10, profile
from gapcourse.train import PRESETS, evaluate, fit, one_cycle, pick_recipe

FAST = profile("fast", announce=False)
TINY = replace(PRESETS["cpu"], batch_size=100, precision="fp32", ema=0.0)


def small_real_data():
    if real_copy() is None:
        pytest.skip("no local CIFAR-10 copy (set GAPCOURSE_DATA)")
    return load_cifar10("train", source=real_copy(), profile=FAST), \
        load_cifar10("test", source=real_copy(), profile=FAST)


def test_training_on_real_images_lowers_the_loss_and_beats_chance():
    train, test = small_real_data()
    torch.manual_seed(0)
    history = fit(build_net(width=0.5), train, test, replace(TINY, lr=0.1), epochs=4,
                  generator=torch.Generator().manual_seed(0), progress=False)
    steps = len(history.step_loss)
    assert steps == 4 * 20
    first = sum(history.step_loss[:10]) / 10
    last = sum(history.step_loss[-10:]) / 10
    assert last < first - 0.2, (first, last)
    assert history.train_acc[-1] > 0.2  # chance is 0.1
    assert len(history.test_acc) == 4 and history.seconds == sorted(history.seconds)


def test_same_seed_gives_the_same_loss_history_on_cpu():
    train, _ = small_real_data()
    train = train.subset(30)

    def run():
        torch.manual_seed(0)
        return fit(build_net(width=0.25), train, None, TINY, epochs=2, generator=torch.Generator().manual_seed(0),
                   progress=False).step_loss

    assert run() == run()


def test_evaluation_counts_add_up():
    train, test = small_real_data()
    result = evaluate(build_net(width=0.25), test)
    matrix = result.confusion_matrix()
    assert int(matrix.sum()) == len(test)
    assert matrix.sum(1).tolist() == test.class_counts()
    assert abs(matrix.diag().sum().item() / len(test) - result.accuracy) < 1e-6
    per_class = torch.tensor(result.per_class_accuracy())
    assert abs(per_class.mean().item() - result.accuracy) < 1e-6  # balanced test set


def test_one_cycle_rises_then_falls_to_zero():
    f = one_cycle(100, 0.25)
    values = [f(s) for s in range(100)]
    assert values[0] == pytest.approx(0.05)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 25
    assert all(a <= b for a, b in zip(values[:25], values[1:26]))
    assert all(a >= b for a, b in zip(values[25:], values[26:]))
    assert 0 < values[-1] < 0.05


def test_presets_pick_by_device_and_keep_the_seed_structure():
    cpu = pick_recipe(torch.device("cpu"), announce=False)
    assert cpu.name == "cpu"
    assert pick_recipe(torch.device("cpu"), "gpu", announce=False).width == 1.0  # the unchanged seed network
    with pytest.raises(ValueError, match="Unknown preset"):
        pick_recipe(torch.device("cpu"), "turbo")
    ref = [type(m) for m in build_net().body]
    for recipe in PRESETS.values():
        assert [type(m) for m in build_net(width=recipe.width).body] == ref


def test_fast_profile_runs_one_epoch_full_runs_all():
    assert FAST.epochs(8) == 1 and profile("full", announce=False).epochs(8) == 8
