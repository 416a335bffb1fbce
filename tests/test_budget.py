"""gapcourse.budget: training to a time budget, planned on a fake machine whose clock the tests control.

The fake machine charges a fixed number of seconds per image for every forward pass of the network (scaled by the
image area, so 24 px images cost (24/32)² of a 32 px one, and optionally more under bf16 autocast); its clock is the
only clock the planner reads. So a plan can be checked exactly, on any machine, however loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from gapcourse import budget, recipes
from gapcourse.budget import calibrate, fit_to_budget
from gapcourse.budget_plan import Costs, low_res_share, plan_epochs
from gapcourse.config import profile
from gapcourse.data import synthetic_cifar10
from gapcourse.device import seed_everything
from gapcourse.models import build_net
from gapcourse.recipes import PRESETS, Recipe, pick_recipe
from gapcourse.train import History, fit, one_cycle

FULL = profile("full", announce=False)
FAST = profile("fast", announce=False)
# The cpu preset's shape (16 epochs, 8 at 24 px, EMA, flip + shift TTA) on a tiny network and batch.
TINY = replace(PRESETS["cpu"], batch_size=25, width=0.25, precision="fp32")
BUDGET = 8.0  # fake seconds


@pytest.fixture(scope="module")
def data():
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=10)  # 100 images: 4 steps of 25
        test = synthetic_cifar10("test", per_class=2)  # 20 images
    return train, test


class FakeMachine:
    """A clock that advances only when the network computes: ``per_image`` seconds per 32 px image per forward
    pass (``bf16_factor`` times that under bf16 autocast; ``slow_factor`` times that for the one network object
    named ``slow_model``, i.e. the run after the calibration's copies)."""

    def __init__(self, per_image: float, bf16_factor: float = 1.0, slow_factor: float = 1.0):
        self.now = 0.0
        self.per_image, self.bf16_factor, self.slow_factor = per_image, bf16_factor, slow_factor
        self.slow_model = None

    def clock(self) -> float:
        return self.now

    def hook(self, module, args, output):
        x = args[0]
        cost = self.per_image * x.shape[0] * (x.shape[-1] / 32) ** 2
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            cost *= self.bf16_factor
        if module is self.slow_model:
            cost *= self.slow_factor
        self.now += cost

    def net(self, monkeypatch) -> torch.nn.Module:
        monkeypatch.setattr(budget, "clock", self.clock)
        torch.manual_seed(0)
        model = build_net(width=0.25)
        # a plain function (copied by reference with the network: calibration probe, weight average); a bound
        # method would be deep-copied with its FakeMachine, and the copies' time would not count
        model.register_forward_hook(lambda module, args, output: self.hook(module, args, output))
        return model


def run(machine, monkeypatch, data, recipe, **kwargs):
    """Train on the fake machine: to the recipe's budget (fit_to_budget), or with fit when it has none."""
    train, test = data
    model = machine.net(monkeypatch)
    train_with = fit if recipe.budget_s is None else fit_to_budget
    history = train_with(model, train, test, recipe, generator=torch.Generator().manual_seed(0), progress=False,
                         **{"profile": FULL, **kwargs})
    return model, history


# ---- the pure planner ------------------------------------------------------------------------------------------


def costs(img_per_s: float) -> Costs:
    """The cpu preset on the full training set at ``img_per_s`` (24 px images 1.7× as fast; evaluation 3×)."""
    return Costs(images_per_epoch=49_920, full_img_per_s=img_per_s, low_img_per_s=1.7 * img_per_s,
                 shape_epochs=16, shape_low_res_epochs=8, eval_images=10_000, eval_img_per_s=3 * img_per_s,
                 tta_views=6)


@pytest.mark.parametrize("img_per_s", [250.0, 1_050.0, 2_461.0, 40_000.0])
def test_planned_epochs_are_the_most_that_fit_the_budget(img_per_s):
    c = costs(img_per_s)
    epochs = plan_epochs(240.0, c)
    assert c.seconds(epochs) <= 240.0 or epochs == 1
    assert c.seconds(epochs + 1) > 240.0
    assert c.low_res_epochs(epochs) == min(epochs - 1, round(epochs * 8 / 16))


def test_a_slower_machine_gets_fewer_epochs_and_one_at_least():
    fast, slow = plan_epochs(240.0, costs(2_461.0)), plan_epochs(240.0, costs(1_050.0))
    assert fast > slow >= 1
    assert plan_epochs(240.0, costs(100.0)) == 1  # one epoch needs ~370 s: one anyway (and reported, see below)
    assert plan_epochs(-5.0, costs(2_461.0)) == 1  # the calibration used up the budget


def test_low_resolution_share_is_the_recipes():
    for epochs in range(1, 50):
        low = low_res_share(8, 16, epochs)
        assert low == min(epochs - 1, round(epochs / 2))
        assert 0 <= low < epochs
    assert low_res_share(0, 16, 10) == 0
    assert low_res_share(3, 12, 24) == 6


# ---- fit with a budget on the fake machine -----------------------------------------------------------------------


@pytest.mark.parametrize("per_image", [8e-3, 1.2e-2])
def test_budgeted_fit_runs_exactly_the_planned_steps_within_the_budget(per_image, data, monkeypatch):
    machine = FakeMachine(per_image)
    _, history = run(machine, monkeypatch, data, replace(TINY, budget_s=BUDGET))
    plan = history.plan
    assert len(history.epoch) == plan.epochs == plan.planned_epochs
    assert len(history.step_loss) == len(history.lr) == plan.epochs * plan.steps_per_epoch == plan.epochs * 4
    schedule = one_cycle(plan.epochs * 4, TINY.warmup)  # one cycle over exactly the planned steps
    assert history.lr == pytest.approx([TINY.lr * schedule(step) for step in range(plan.epochs * 4)])
    assert plan.low_res_epochs == low_res_share(8, 16, plan.epochs)
    assert math.isclose(plan.actual_s, plan.predicted_s, rel_tol=1e-6)  # the fake machine is perfectly steady
    assert plan.actual_s <= BUDGET and not plan.over_budget
    one_more_epoch = 100 * per_image + 20 * per_image  # 100 training images at 32 px, one test view
    assert plan.actual_s + one_more_epoch > BUDGET  # no whole epoch left unused
    assert plan.calibration_s > 0 and plan.train_img_per_s["fp32@32px"] == pytest.approx(1 / per_image, rel=1e-3)
    assert plan.train_img_per_s["fp32@24px"] == pytest.approx(1 / per_image / (24 / 32) ** 2, rel=1e-3)


def test_slow_machine_plans_fewer_epochs_than_fast(data, monkeypatch):
    fast = run(FakeMachine(8e-3), monkeypatch, data, replace(TINY, budget_s=BUDGET))[1].plan
    slow = run(FakeMachine(1.2e-2), monkeypatch, data, replace(TINY, budget_s=BUDGET))[1].plan
    assert fast.epochs > slow.epochs >= 1


def test_fit_refuses_a_budget_and_runs_its_epochs_without_planning(data, monkeypatch):
    machine = FakeMachine(2e-3)
    with pytest.raises(ValueError, match=r"has a time budget.*fit_to_budget"):
        fit(machine.net(monkeypatch), *data, replace(TINY, budget_s=1.0), epochs=3, progress=False)
    assert machine.now == 0.0  # refused before any work
    _, history = run(machine, monkeypatch, data, TINY, epochs=3)
    assert history.plan is None and len(history.epoch) == 3 and len(history.step_loss) == 12
    # no calibration ran: only the 3 epochs' training and evaluation forwards advanced the clock
    expected = 100 * 2e-3 * (2 * (24 / 32) ** 2 + 1) + 20 * 2e-3 * (2 + 6)  # 2 of 3 epochs at 24 px
    assert machine.now == pytest.approx(expected, rel=1e-6)


def test_overshoot_is_reported_not_silent(data, monkeypatch, capsys):
    machine = FakeMachine(8e-3, slow_factor=3.0)  # the machine slows down 3× once the real run starts
    train, test = data
    model = machine.net(monkeypatch)
    machine.slow_model = model
    history = fit_to_budget(model, train, test, replace(TINY, budget_s=BUDGET),
                            generator=torch.Generator().manual_seed(0), profile=FULL, progress=False)
    plan = history.plan
    assert plan.over_budget and plan.overshoot_s > 0.05 * BUDGET and plan.predicted_s <= BUDGET
    out = capsys.readouterr().out
    assert "Over budget" in out and f"+{plan.overshoot_s:.0f} s" in out and "slower than its calibration" in out


def test_a_budget_too_short_for_one_epoch_says_so(data, monkeypatch, capsys):
    _, history = run(FakeMachine(2e-2), monkeypatch, data, replace(TINY, budget_s=2.0))
    assert history.plan.epochs == 1 and "too short for one epoch" in history.plan.note
    assert "Over budget" in capsys.readouterr().out


def test_fast_profile_plans_but_runs_one_epoch(data, monkeypatch):
    _, history = run(FakeMachine(8e-3), monkeypatch, data, replace(TINY, budget_s=BUDGET), profile=FAST)
    plan = history.plan
    assert plan.epochs == len(history.epoch) == 1 < plan.planned_epochs
    assert "fast profile" in plan.note and plan.low_res_epochs == 0
    assert History(**asdict(history)).plan == plan  # as a checkpoint's metadata stores and returns it


def test_calibration_changes_neither_model_nor_random_state(data):
    train, test = data
    torch.manual_seed(0)
    model = build_net(width=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    calibration = calibrate(model, train, test, replace(TINY, ema=0.99), device="cpu", precisions=("fp32",))
    assert set(calibration.train_img_per_s) == {"fp32@24px", "fp32@32px"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert torch.equal(rng, torch.get_rng_state())


def test_rerun_with_the_recorded_epochs_is_identical(data, monkeypatch):
    monkeypatch.setattr(recipes, "cpu_has_native_bf16", lambda: True)  # the precision is chosen by measurement
    recipe = replace(TINY, precision="auto", budget_s=BUDGET)
    _, planned = run(FakeMachine(8e-3, bf16_factor=2.0), monkeypatch, data, recipe)
    plan = planned.plan
    assert plan.epochs >= 3 and plan.precision == "fp32"  # not the static rule's bf16: the rerun must be told
    _, again = run(FakeMachine(8e-3), monkeypatch, data, plan.fixed_recipe(recipe), epochs=plan.epochs)
    assert again.plan is None
    assert again.step_loss == planned.step_loss and again.test_acc == planned.test_acc


@pytest.mark.parametrize("bf16_factor, chosen", [(1.4, "fp32"), (0.45, "bf16")])
def test_cpu_precision_is_chosen_by_measurement(bf16_factor, chosen, data, monkeypatch):
    monkeypatch.setattr(recipes, "cpu_has_native_bf16", lambda: True)
    recipe = pick_recipe("cpu", budget_s=4.0, announce=False)
    assert recipe.precision == "auto"  # left to the measurement
    tiny = replace(recipe, batch_size=25, width=0.25)
    _, history = run(FakeMachine(4e-3, bf16_factor=bf16_factor), monkeypatch, data, tiny)
    plan = history.plan
    assert plan.precision == chosen
    assert {"bf16@32px", "fp32@32px", "bf16@24px", "fp32@24px"} <= set(plan.train_img_per_s)
    other = {"bf16": "fp32", "fp32": "bf16"}[chosen]
    assert f"{chosen} fits" in plan.precision_reason or f"; {chosen} in a predicted" in plan.precision_reason
    assert f"{other} fits" not in plan.precision_reason
    line = plan.describe_plan()  # every measured figure once, in the one line the learner reads
    assert all(line.count(f"{v:,.0f} img/s {k.split('@')[0]} at") == 1 for k, v in plan.train_img_per_s.items())
    assert plan.fixed_recipe(tiny).precision == chosen and plan.fixed_recipe(tiny).budget_s is None


def test_without_native_bf16_the_rule_decides_and_only_it_is_timed(data, monkeypatch):
    monkeypatch.setattr(recipes, "cpu_has_native_bf16", lambda: False)
    recipe = pick_recipe("cpu", budget_s=4.0, announce=False)
    assert recipe.precision == "fp32"
    _, history = run(FakeMachine(8e-3), monkeypatch, data, replace(recipe, batch_size=25, width=0.25))
    assert set(history.plan.train_img_per_s) == {"fp32@24px", "fp32@32px"}


# ---- the recipe field ----------------------------------------------------------------------------------------------


def test_budget_field_is_checked_and_named_only_when_set():
    cpu = PRESETS["cpu"]
    assert cpu.budget_s is None and "budget_s" not in cpu.describe()
    assert replace(cpu, budget_s=240).describe() == cpu.describe() + ", budget_s=240"
    for bad in (0, -1.0, float("nan"), "4 min"):
        with pytest.raises(ValueError, match="budget_s"):
            Recipe("x", epochs=1, batch_size=1, lr=0.1, budget_s=bad)


# ---- the budget table: command, results file, README table, plot --------------------------------------------------


@pytest.mark.slow
def test_budget_table_command_writes_rows_with_provenance_and_resumes(tmp_path, capsys):
    import json

    from conftest import real_copy

    from gapcourse.__main__ import main
    from gapcourse.studies.budget_table import budget_markdown
    from gapcourse.viz import plot_budget_curve

    if real_copy() is None:
        pytest.skip("no local CIFAR-10 copy (set GAPCOURSE_DATA)")
    out = tmp_path / "budget.json"
    args = ["budget-table", "--profile", "fast", "--budgets", "3", "--conditions", "fp32", "one-thread",
            "--output", str(out)]
    assert main(args) == 0
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert [(r["condition"], r["budget_s"]) for r in rows] == [("fp32", 3.0), ("one-thread", 3.0)]
    fp32, one = rows
    assert fp32["precision"] == "fp32" and one["threads"] == 1 and fp32["threads"] == torch.get_num_threads()
    for r in rows:
        assert r["epochs"] == 1 <= r["planned_epochs"]  # the fast profile's one epoch
        assert r["predicted_s"] > 0 and r["actual_s"] > 0 and 0 <= r["test_acc"] <= 1
        assert r["recipe"] == condition_recipe_string(r["condition"], 3.0)
    prov = payload["provenance"]
    assert prov["profile"] == "fast" and prov["n_train"] == 2000 and len(prov["train_sha256"]) == 64
    assert "budget-table" in prov["command"]
    capsys.readouterr()
    assert main(args) == 0  # a rerun trains nothing
    assert "already in" in capsys.readouterr().out and json.loads(out.read_text())["rows"] == rows
    table = budget_markdown(payload)
    budgets = [line.split(" | ")[1] for line in table.splitlines() if line.startswith(("| fp32", "| one thread"))]
    assert budgets == ["3 s", "3 s"]  # (the predicted and actual columns may read "3 s" too: counted by column)
    fig = plot_budget_curve(payload, highlight=3.0)
    assert len(fig.axes[0].get_legend().get_texts()) == 3  # two conditions and the highlighted budget
    assert all(r["made_by"]["command"] == prov["command"] for r in rows)


def _row(condition: str, budget_s: float, seed: int, acc: float, actual_s: float) -> dict:
    return {"condition": condition, "budget_s": budget_s, "seed": seed, "epochs": 5, "planned_epochs": 5,
            "low_res_epochs": 2, "predicted_s": budget_s, "actual_s": actual_s, "precision": "fp32",
            "train_img_per_s": {"fp32@32px": 1000.0}, "over_budget": False, "test_acc": acc}


def test_budget_markdown_gives_each_seed_a_row_and_the_mean_over_seeds():
    from gapcourse.stats import binomial_halfwidth
    from gapcourse.studies.budget_table import budget_findings, budget_markdown
    from gapcourse.viz import plot_budget_curve

    rows = [_row("auto", 240.0, s, a, t) for s, a, t in [(2, 0.82, 236.0), (0, 0.80, 241.0), (1, 0.84, 239.0)]]
    rows.append(_row("fp32", 60.0, 0, 0.6, 70.0))
    table = budget_markdown({"rows": rows, "provenance": {"n_test": 10_000}})
    body = [line for line in table.splitlines() if line.startswith("| as notebook 03")]
    assert [line.split(" | ")[2] for line in body] == ["0", "1", "2"]  # one row per seed, in seed order
    found = budget_findings({"rows": rows, "provenance": {"n_test": 10_000}})
    (mean,) = found["means"]  # fp32 at 60 s ran one seed: no mean
    assert (mean["condition"], mean["budget_s"], mean["seeds"], mean["told_by"]) == ("auto", 240.0, [0, 1, 2], None)
    assert mean["mean"] == pytest.approx(0.82) and mean["spread"] == pytest.approx(0.04)
    assert mean["actual_s"] == (236.0, 241.0)
    assert table.count("Mean over seeds") == 1  # its one line
    assert found["curve_images_per_class"] == []  # these rows record no learning-curve split
    rows_with_curve = [dict(r, curve_images=2500) if r["condition"] == "auto" else r for r in rows]
    assert budget_findings({"rows": rows_with_curve, "provenance": {"n_test": 10_000}})[
        "curve_images_per_class"] == [250]
    # one accuracy near the rows' mean (76.5 %) on 10 000 images: ±0.8 points; on 500: ±3.7 (the noise follows n)
    assert found["halfwidth"] == pytest.approx(binomial_halfwidth(0.765, 10_000)) == pytest.approx(0.0083, abs=5e-5)
    assert budget_findings({"rows": rows, "provenance": {"n_test": 500}})["halfwidth"] == pytest.approx(
        binomial_halfwidth(0.765, 500))
    from gapcourse.measured import CONDITIONS

    fig = plot_budget_curve({"rows": rows})
    auto = next(c for c in fig.axes[0].containers if c.get_label() == CONDITIONS["auto"])
    assert list(auto.lines[0].get_ydata()) == pytest.approx([82.0])  # the point is the mean of the three seeds
    assert [list(seg[:, 1]) for seg in auto.lines[2][0].get_segments()] == [pytest.approx([80.0, 84.0])]  # range


def test_rows_added_by_a_later_run_keep_who_made_the_earlier_ones(tmp_path):
    import json

    from gapcourse.studies.budget_table import run_budget_table

    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=2)
    out = tmp_path / "rows.json"
    for seed, command in [(0, "first run"), (1, "second run")]:
        run_budget_table(train, train, FAST, budgets=(1.0,), conditions=("fp32",), seed=seed, output=out,
                         progress=False, command=command)
    payload = json.loads(out.read_text())
    assert [r["made_by"]["command"] for r in payload["rows"]] == ["first run", "second run"]
    assert payload["provenance"]["command"] == "second run"


@pytest.mark.slow
@pytest.mark.parametrize("native_bf16", [True, False], ids=["cpu-with-native-bf16", "cpu-without"])
def test_the_auto_condition_runs_as_notebook_03_does(tmp_path, monkeypatch, native_bf16):
    """On a CPU with native bf16 and on one without (the capability injected, so the test does not depend on the
    machine): its recipe is the one notebook 03 picks for its budget, its learning curve uses the notebook's 250 test
    images per class, and its accuracy is measured afterwards on the whole test split."""
    import json

    from gapcourse import recipes
    from gapcourse.studies.budget_table import condition_recipe, run_budget_table
    from gapcourse.budget import curve_split
    from gapcourse.recipes import pick_recipe
    from gapcourse.train import evaluate

    monkeypatch.setattr(recipes, "cpu_has_native_bf16", lambda: native_bf16)
    assert condition_recipe("auto", 240.0).describe() == pick_recipe("cpu", budget_s=240.0, announce=False).describe()
    assert condition_recipe("auto", 240.0).precision == ("auto" if native_bf16 else "fp32")
    assert condition_recipe("one-thread", 60.0).precision == ("auto" if native_bf16 else "fp32")
    assert condition_recipe("fp32", 60.0).precision == "fp32" and condition_recipe("bf16", 60.0).precision == "bf16"
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=4)
        test = synthetic_cifar10("test", per_class=260)
    assert curve_split(test).class_counts() == [250] * 10  # as the notebook: 250 per class
    out = tmp_path / "auto.json"
    payload = run_budget_table(train, test, FAST, budgets=(2.0,), conditions=("auto",), output=out, progress=False)
    row = payload["rows"][0]
    assert row["curve_images"] == 2500 and len(test) == 2600
    generator = seed_everything(0)  # the same run again, by hand, as the notebook would do it
    model = build_net(width=PRESETS["cpu"].width)
    recipe = replace(condition_recipe("auto", 2.0), precision=row["precision"], budget_s=None)
    again = fit(model, train, curve_split(test), recipe, generator=generator, profile=FAST, progress=False,
                epochs=row["epochs"])
    assert len(again.test_acc) == row["epochs"]
    assert row["test_acc"] == evaluate(model, test, recipe=recipe).accuracy  # the whole split, after fit
    assert json.loads(out.read_text())["rows"] == payload["rows"]


def condition_recipe_string(condition: str, budget_s: float) -> str:
    from gapcourse.studies.budget_table import condition_recipe

    return condition_recipe(condition, budget_s).describe()


def test_budget_table_refuses_unknown_conditions_and_bad_budgets(capsys):
    from gapcourse.__main__ import main

    assert main(["budget-table", "--conditions", "bf17"]) == 2
    assert "Unknown condition" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["budget-table", "--budgets", "0"])
    assert "number of seconds from 1" in capsys.readouterr().err


def test_plot_budget_curve_refuses_a_payload_without_rows():
    from gapcourse.viz import plot_budget_curve

    with pytest.raises(ValueError, match="rows"):
        plot_budget_curve({"rows": []})


def test_a_machine_with_time_to_spare_trains_the_recipes_epochs_and_stops(data, monkeypatch):
    # e.g. a GPU given a CPU's budget: the full recipe, not hundreds of epochs of a schedule tuned for 16
    _, history = run(FakeMachine(1e-5), monkeypatch, data, replace(TINY, budget_s=BUDGET))
    plan = history.plan
    assert plan.epochs == plan.planned_epochs == TINY.epochs
    assert "fit the budget with time to spare" in plan.note and plan.actual_s < BUDGET / 10


@pytest.mark.parametrize("content", ['{"rows": [1, 2]}', '{"foo": 1}'])
def test_budget_table_refuses_a_file_that_is_not_a_budget_table(tmp_path, content):
    from gapcourse.studies.budget_table import run_budget_table
    from gapcourse.outputs import ResultsError

    out = tmp_path / "rows.json"
    out.write_text(content)
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=2)
    with pytest.raises(ResultsError, match="is not a budget table"):
        run_budget_table(train, train, FAST, budgets=(1.0,), conditions=("fp32",), output=out, progress=False)
    assert out.read_text() == content


def test_train_budget_outside_its_range_says_what_is_allowed(capsys):
    from gapcourse.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "--budget", "1e9"])
    assert stop.value.code == 2 and "from 1 to 9,999,999" in capsys.readouterr().err


@pytest.mark.parametrize("yours, hint", [((240, 84), "divide by 100"), ((0, 0.8), "budget"), (("a", "b"), "e.g."),
                                         ((240, float("nan")), "between 0 and 1"), (None, None)])
def test_the_learners_point_on_the_budget_plot_is_checked(yours, hint):
    from gapcourse.viz import plot_budget_curve

    rows = [_row("auto", 240.0, 0, 0.84, 230.0)]
    if yours is None:
        assert len(plot_budget_curve({"rows": rows}, yours=(240, 0.84)).axes[0].get_legend().get_texts()) == 2
        return
    with pytest.raises(ValueError, match=hint):
        plot_budget_curve({"rows": rows}, yours=yours)


def test_the_precision_is_the_one_whose_plan_fits_more_or_ends_sooner():
    """On a short plan (one epoch, none at 24 px) the precision that is faster per image over the recipe's mix of
    resolutions can be the slower one for the plan itself: the plan decides."""
    from gapcourse.budget import Calibration, better_plan, costs_for, faster_precision

    recipe = pick_recipe("cpu", budget_s=60.0, announce=False)
    cal = Calibration(train_img_per_s={"bf16@24px": 3000.0, "bf16@32px": 900.0, "fp32@24px": 1500.0,
                                       "fp32@32px": 1000.0}, eval_img_per_s={"bf16": 4000.0, "fp32": 4000.0},
                      seconds=1.0)
    assert faster_precision(cal, recipe, 32).mode == "bf16"  # per image over half 24 px, half 32 px

    def options(budget_s: float) -> dict:
        out = {}
        for mode in ("bf16", "fp32"):
            c = costs_for(cal, mode, recipe, images_per_epoch=49_920, full=32, eval_images=2_500)
            out[mode] = (c, plan_epochs(budget_s, c, max_epochs=recipe.epochs))
        return out

    short = options(60.0)
    assert short["bf16"][1] == short["fp32"][1] == 1  # one epoch at 32 px either way
    chosen = better_plan(cal, short, recipe, 32)
    assert chosen.mode == "fp32" and "both fit 1 epoch; fp32 in a predicted" in chosen.reason
    assert "img/s" not in chosen.reason  # the measured figures are said once, in the plan line (Plan.describe_plan)
    long = options(600.0)
    assert long["bf16"][1] > long["fp32"][1]
    assert better_plan(cal, long, recipe, 32).mode == "bf16"
    assert f"bf16 fits {long['bf16'][1]} epochs in the budget, fp32 {long['fp32'][1]}" in \
        better_plan(cal, long, recipe, 32).reason


# ---- the budget table's file: shared by two processes, lost mid-run (the output guard, gapcourse.outputs) --------

def _budget_run_with(monkeypatch, tmp_path, during_training):
    """Run one fp32 row of the budget table on a tiny split, calling ``during_training(output)`` while it trains
    (as another process, or the user, would act on the file meanwhile)."""
    from gapcourse.studies import budget_table

    real_fit = budget_table.fit_to_budget
    out = tmp_path / "table.json"

    def fit_and_meanwhile(*a, **k):
        history = real_fit(*a, **k)
        during_training(out)
        return history

    monkeypatch.setattr(budget_table, "fit_to_budget", fit_and_meanwhile)
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=2)
    return out, lambda: budget_table.run_budget_table(train, train, FAST, budgets=(1.0,), conditions=("fp32",),
                                                      output=out, progress=False, command="this run")


def test_two_budget_table_runs_on_one_output_keep_both_rows(tmp_path, monkeypatch):
    import json

    from gapcourse.studies.budget_table import SHAPE
    from gapcourse.studies.provenance import data_record
    from gapcourse.studies.runner import Run, open_store

    other = {"condition": "one-thread", "budget_s": 1.0, "seed": 0, "recipe": "r", "train_sha256": "?",
             "test_acc": 0.5}

    def another_process_adds_its_row(out):  # (through the same locked read-add-write the other process runs)
        with pytest.warns(Warning):
            train = synthetic_cifar10("train", per_class=2)
        store = open_store(out, SHAPE, data_record("fast", train), writer="budget-table")
        store.add(Run({"condition": "one-thread"}, "one-thread, 1 s, seed 0"),
                  dict(other, train_sha256=train.fingerprint()), lambda payload: {"command": "the other run"})

    out, run = _budget_run_with(monkeypatch, tmp_path, another_process_adds_its_row)
    payload = run()
    rows = json.loads(out.read_text())["rows"]
    assert sorted(r["condition"] for r in rows) == ["fp32", "one-thread"]
    assert [r["condition"] for r in payload["rows"]] == [r["condition"] for r in rows]


def test_a_trained_row_is_kept_and_said_when_the_output_became_a_folder(tmp_path, monkeypatch, isolated_cache):
    import json
    import re

    from gapcourse.outputs import ResultsError

    out, run = _budget_run_with(monkeypatch, tmp_path, lambda out: out.mkdir())
    with pytest.raises(ResultsError, match=r"is a folder.*the trained row \(fp32, 1 s, seed 0\) is kept in") as err:
        run()
    kept = json.loads(Path(re.search(r"is kept in (\S+)\. ", str(err.value)).group(1)).read_text())
    assert [r["condition"] for r in kept["rows"]] == ["fp32"] and 0 <= kept["rows"][0]["test_acc"] <= 1
    assert kept["provenance"]["profile"] == "fast" and kept["provenance"]["command"] == "this run"


def test_rows_of_different_recipes_are_not_averaged_as_seeds():
    from gapcourse.studies.budget_table import budget_findings, budget_markdown

    old, new = (dict(_row("auto", 240.0, s, a, 240.0), recipe=r) for s, a, r in [(0, 0.10, "old"), (0, 0.50, "new")])
    assert budget_findings({"rows": [old, new], "provenance": {"n_test": 10_000}})["means"] == []  # one seed each
    newer = dict(_row("auto", 240.0, 1, 0.70, 240.0), recipe="new")
    payload = {"rows": [old, new, newer], "provenance": {"n_test": 10_000}}
    (mean,) = budget_findings(payload)["means"]  # the new recipe's two seeds, not the old row
    assert (mean["recipe"], mean["seeds"], mean["mean"]) == ("new", [0, 1], pytest.approx(0.60))
    assert mean["told_by"] == "recipe"  # the line names its recipe: the same condition and budget ran another
    assert budget_markdown(payload).count("Mean over seeds") == 1


def test_the_budget_curve_keeps_networks_of_two_widths_apart_and_rows_of_width_selects_one():
    """The table holds the half-width preset's rows and the 3/8-width preset's: the plot draws one line per width and
    condition (never a mean across widths), and notebook 03 compares the learner's run with its own width's rows."""
    from gapcourse.measured import rows_of_width
    from gapcourse.viz import plot_budget_curve

    half = dict(_row("auto", 240.0, 0, 0.84, 230.0), recipe="name=cpu, epochs=16, width=0.5, lr=0.2")
    narrow = dict(_row("auto", 240.0, 0, 0.80, 230.0), recipe="name=cpu, epochs=16, width=0.375, lr=0.2")
    fig = plot_budget_curve({"rows": [half, narrow]})
    labels = sorted(c.get_label() for c in fig.axes[0].containers)
    assert [label.rsplit(", width ", 1)[1] for label in labels] == ["0.375", "0.5"]
    ys = sorted(float(c.lines[0].get_ydata()[0]) for c in fig.axes[0].containers)
    assert ys == pytest.approx([80.0, 84.0])  # two points, not their mean
    assert rows_of_width({"rows": [half, narrow]}, 0.375)["rows"] == [narrow]
    assert rows_of_width({"rows": [half, narrow]}, 0.5)["rows"] == [half]
    assert rows_of_width({"rows": [half, narrow]}, 0.25)["rows"] == []
