"""gapcourse.train: the loop learns on real images, is repeatable on CPU, and its measurements add up; it is the
loop it was before it became a plain function (a frozen copy, tests/legacy_fit.py), and its two wrappers (a time
budget, a resumable run) train exactly what fit trains."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import real_copy

from gapcourse import build_net, load_cifar10, profile
from gapcourse.data import synthetic_cifar10
from gapcourse.recipes import PRESETS, pick_recipe
from gapcourse.train import evaluate, fit, one_cycle

FAST = profile("fast", announce=False)
TINY = replace(PRESETS["cpu"], batch_size=100, precision="fp32", ema=0.0)


def small_real_data():
    if real_copy() is None:
        pytest.skip("no local CIFAR-10 copy (set GAPCOURSE_DATA)")
    return load_cifar10("train", source=real_copy(), profile=FAST), \
        load_cifar10("test", source=real_copy(), profile=FAST)


@pytest.mark.slow
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


@pytest.mark.slow
def test_same_seed_gives_the_same_loss_history_on_cpu():
    train, _ = small_real_data()
    train = train.subset(30)

    def run():
        torch.manual_seed(0)
        return fit(build_net(width=0.25), train, None, TINY, epochs=2, generator=torch.Generator().manual_seed(0),
                   progress=False).step_loss

    assert run() == run()


@pytest.mark.slow
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


# ---- the refactored loop against the old one, and its wrappers against fit (synthetic data, bit for bit) -----------

# The cpu preset's shape (EMA, 24 px epochs, flip + shift TTA) with cutout and the gpu candidate's starting weights.
SHAPE = replace(PRESETS["cpu"], batch_size=25, width=0.25, precision="fp32", epochs=4, low_res_epochs=2, cutout=8,
                whiten="frozen", dirac=True)


@pytest.fixture(scope="module")
def synthetic():
    with pytest.warns(Warning):
        return synthetic_cifar10("train", per_class=5), synthetic_cifar10("test", per_class=2)  # 2 steps an epoch


def _trained(train_with, data, recipe, **kwargs):
    torch.manual_seed(0)
    model = build_net(width=recipe.width)
    history = train_with(model, *data, recipe, generator=torch.Generator().manual_seed(0), **kwargs)
    return model, history


def _same(a, b) -> None:
    """Bit-identical weights and buffers, and the same history (all but the measured seconds)."""
    (model_a, history_a), (model_b, history_b) = a, b
    for (name, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(x, y), f"{name} differs"
    assert all(p.requires_grad for p in model_a.parameters()) and all(p.requires_grad for p in model_b.parameters())
    for name in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "step_loss", "lr"):
        assert getattr(history_a, name) == getattr(history_b, name), name


@pytest.mark.parametrize("recipe", [SHAPE, replace(SHAPE, ema=0.0, whiten="none", dirac=False, tta="none")],
                         ids=["ema-low-res-cutout-frozen-whiten-dirac", "plain"])
def test_fit_trains_bit_for_bit_as_the_loop_before_the_refactor(synthetic, recipe):
    from legacy_fit import legacy_fit

    new = _trained(fit, synthetic, recipe, epochs=3, progress=False)
    assert new[1].epoch == [1, 2, 3] and len(new[1].step_loss) == 6 and new[1].plan is None
    _same(new, _trained(legacy_fit, synthetic, recipe, epochs=3))


def test_fit_is_a_plain_function_and_refuses_a_budget_naming_the_wrapper(synthetic):
    assert not hasattr(fit, "__wrapped__")  # no decorator between the learner and the loop
    with pytest.raises(ValueError, match=r"time budget.*gapcourse\.budget\.fit_to_budget"):
        fit(build_net(width=0.25), *synthetic, replace(SHAPE, budget_s=60.0), progress=False)


def test_a_budget_run_is_fit_with_the_plans_epochs_and_fixed_recipe(synthetic, monkeypatch):
    from test_budget import FakeMachine

    from gapcourse.budget import fit_to_budget

    def on(machine, train_with, recipe, **kwargs):
        model = machine.net(monkeypatch)  # seeded as _trained seeds
        history = train_with(model, *synthetic, recipe, generator=torch.Generator().manual_seed(0), progress=False,
                             profile=profile("full", announce=False), **kwargs)
        return model, history

    recipe = replace(SHAPE, epochs=16, low_res_epochs=8, whiten="none", dirac=False, budget_s=4.0)
    budgeted = on(FakeMachine(8e-3), fit_to_budget, recipe)
    plan = budgeted[1].plan
    assert plan.epochs >= 3 and plan.low_res_epochs >= 1 and plan.actual_s <= plan.budget_s  # a real plan
    again = on(FakeMachine(8e-3), fit, plan.fixed_recipe(recipe), epochs=plan.epochs)
    assert again[1].plan is None
    _same(budgeted, again)


def test_a_run_interrupted_after_epoch_2_and_resumed_ends_as_an_unbroken_one(synthetic, tmp_path, monkeypatch):
    from gapcourse.studies import resume

    unbroken = _trained(fit, synthetic, SHAPE, epochs=4, progress=False)
    real_save = resume.save_state

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt  # as a run stopped by hand after its second epoch

    path = tmp_path / "run.pt"
    with monkeypatch.context() as m:
        m.setattr(resume, "save_state", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            _trained(resume.fit_resumable, synthetic, SHAPE, path=path, epochs=4, progress=False)
    resumed = _trained(resume.fit_resumable, synthetic, SHAPE, path=path, epochs=4, progress=False)
    assert [(p["from_epoch"], p["to_epoch"]) for p in resumed[1].pieces] == [(1, 2), (3, 4)]
    _same(unbroken, resumed)
