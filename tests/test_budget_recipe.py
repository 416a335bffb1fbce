"""gapcourse.studies.budget_recipe: the study that searched notebook 03's four-minute recipe, and the paired
interval its verdicts use. Training runs use a few synthetic images in the fast profile; nothing here is timed."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import pytest
import torch

from gapcourse import stats
from gapcourse.config import profile
from gapcourse.data import synthetic_cifar10
from gapcourse.outputs import ResultsError
from gapcourse.recipes import CPU_HALF_WIDTH, CPU_WIDTH, PRESETS
from gapcourse.studies import budget_recipe as study

FAST = profile("fast", announce=False)


def test_paired_halfwidth_is_the_per_image_interval_and_narrower_when_networks_agree():
    n = 10_000
    a = torch.zeros(n)
    b = torch.zeros(n)
    a[:8_400] = 1  # 84 % right
    b[:8_000] = 1  # 80 % right; the two disagree on 4 % of the images (a right, b wrong)
    half = stats.paired_halfwidth(a, b)
    discordant = 0.04  # McNemar's discordant share: a right and b wrong on 4 % of the images, never the reverse
    assert half == pytest.approx(1.96 * math.sqrt((discordant - discordant ** 2) / (n - 1)), rel=1e-9)
    assert half < stats.difference_halfwidth(0.84, 0.80, n) / 2  # the unpaired interval is an upper bound here
    same = stats.paired_halfwidth(a, a)
    assert same == 0.0  # identical predictions: no noise in their difference


def test_paired_halfwidth_refuses_what_is_not_per_image_correctness():
    with pytest.raises(ValueError, match="equally long"):
        stats.paired_halfwidth([1, 0], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.paired_halfwidth([84.0, 80.0], [80.0, 84.0])  # percentages, not correctness


def test_per_image_records_round_trip_and_a_damaged_one_is_refused():
    correct = torch.rand(10_000, generator=torch.Generator().manual_seed(0)) < 0.85
    text = study.pack_correct(correct)
    assert len(text) < 1_700  # 10 000 bits, base64
    assert torch.equal(study.unpack_correct(text, 10_000), correct)
    with pytest.raises(ResultsError, match="damaged"):
        study.unpack_correct(text[:400], 10_000)


def test_every_candidate_is_the_cpu_preset_changed_in_the_named_way_at_the_budget():
    cpu = CPU_HALF_WIDTH  # the preset before the study
    for precision in ("fp32", "auto"):
        table = study.candidates(precision)
        assert list(table)[0] == "current"
        for key, (what, recipe) in table.items():
            assert recipe.budget_s == study.BUDGET_S and recipe.precision == precision
            changed = {k for k, v in asdict(recipe).items() if v != asdict(cpu)[k]} - {"name", "budget_s", "precision"}
            assert bool(changed) == (key != "current"), (key, changed)
            assert what  # every row says what it changed


def _run(candidate: str, seed: int, correct: torch.Tensor) -> dict:
    return {"candidate": candidate, "seed": seed, "test_acc": correct.float().mean().item(), "n_test": len(correct),
            "correct": study.pack_correct(correct)}


def test_the_paired_verdict_uses_the_larger_of_the_per_image_and_the_seed_intervals():
    g = torch.Generator().manual_seed(1)
    n = 10_000
    runs = []
    for seed, gain in ((0, 0.03), (1, 0.025), (2, 0.035)):
        base = torch.rand(n, generator=g) < 0.80
        better = base.clone()
        flip = torch.nonzero(~base).flatten()[: int(gain * n)]
        better[flip] = True  # the candidate gets right what the current preset got wrong
        runs += [_run("current", seed, base), _run("batch128", seed, better)]
    one = study.paired([r for r in runs if r["seed"] == 0], "batch128")
    assert one["t_half"] is None and one["half"] == one["image_half"] and one["verdict"] == "better"
    three = study.paired(runs, "batch128")
    assert three["seeds"] == [0, 1, 2] and three["mean_diff"] == pytest.approx(0.03, abs=1e-4)
    assert three["t_half"] == pytest.approx(stats.T95[2] * 0.005 / math.sqrt(3), rel=1e-3)
    assert three["half"] == max(three["t_half"], three["image_half"]) and three["verdict"] == "better"
    assert study.paired(runs, "lr0.4") is None  # no run of it: nothing to compare
    runs = [dict(r, recipe=f"r-{r['candidate']}", epochs=4, low_res_epochs=2, precision="fp32", condition="fp32",
                 train_img_per_s={"fp32@32px": 800.0}) for r in runs]
    plans = {f"{c} | r-{c}": {"epochs": 4, "low_res_epochs": 2} for c in ("current", "batch128")}
    table = study.study_markdown({"runs": runs, "plans": plans})
    assert "| `batch128` |" in table
    confirmed = study.confirmations(study.planned_runs({"runs": runs, "plans": plans}))
    assert list(confirmed) == ["batch128"] and confirmed["batch128"]["seeds"] == [0, 1, 2]  # three seeds: confirmed
    assert confirmed["batch128"] == study.paired(runs, "batch128") and confirmed["batch128"]["verdict"] == "better"
    assert study.confirmations([r for r in runs if r["seed"] == 0]) == {}  # one seed is the screen's, not confirmed
    stale = dict(runs[0], epochs=5, test_acc=0.99)  # a run under another plan than the recorded one
    assert stale not in study.planned_runs({"runs": runs + [stale], "plans": plans})
    with_stale = study.study_markdown({"runs": runs + [stale], "plans": plans})
    assert with_stale.split("\n\n")[0] == table.split("\n\n")[0]  # the table itself: the recorded plan's runs only
    assert "99.00 %" in with_stale and "99.00 %" not in table  # the left-out run is named, with its accuracy


def test_plans_keep_each_settings_fastest_calibration_and_cost_free_changes_share_one(monkeypatch):
    """A calibration disturbed by another program measures fewer images/s; the study keeps each setting's fastest of
    its tries, and candidates that differ only in what a step computes (learning rate, label smoothing) share the
    current preset's plan exactly."""
    from gapcourse.budget import Calibration

    speeds = iter([300.0, 900.0, 600.0] * 10)  # the second try was the quiet one
    calls = []

    def fake_calibrate(model, train, test, recipe, *, device, precisions):
        calls.append(recipe.name)
        ips = next(speeds)
        return Calibration({f"{p}@{s}px": ips * (32 / s) ** 2 for p in precisions for s in (24, 32)},
                           {p: 10 * ips for p in precisions}, 1.0)

    monkeypatch.setattr(study, "calibrate", fake_calibrate)
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=26)  # 260 images: one step of 256
        test = synthetic_cifar10("test", per_class=2)
    table = {k: study.CANDIDATES[k][1] for k in ("current", "lr0.4", "ls0.1", "width0.25")}
    plans = study.plan_quietly(table, train, test, device=torch.device("cpu"), profile=FAST, tries=3)
    assert len(calls) == 6  # two cost shapes (the preset's, and width 0.25), three tries each
    assert plans["current"] == plans["lr0.4"] == plans["ls0.1"]
    assert plans["current"].train_img_per_s["fp32@32px"] == 900.0
    assert study.cost_shape(table["width0.25"]) != study.cost_shape(table["current"])


@pytest.mark.slow
def test_a_study_run_is_written_with_its_record_and_a_rerun_skips_it(tmp_path, capsys):
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=4)
        test = synthetic_cifar10("test", per_class=3)
    out = tmp_path / "study.json"
    payload = study.run_study(train, test, FAST, device=torch.device("cpu"), plan=[("current", 0)], output=out,
                              progress=False)
    (run,) = payload["runs"]
    assert run["candidate"] == "current" and run["condition"] == "fp32" and run["n_test"] == 30
    assert run["epochs"] == 1  # the fast profile runs one epoch of the plan
    correct = study.unpack_correct(run["correct"], 30)
    assert correct.float().mean().item() == pytest.approx(run["test_acc"])
    assert payload["provenance"]["profile"] == "fast" and run["made_by"]["command"]
    capsys.readouterr()
    again = study.run_study(train, test, FAST, device=torch.device("cpu"), plan=[("current", 0)], output=out,
                            progress=False)
    assert "already in" in capsys.readouterr().out and again["runs"] == payload["runs"]


def test_a_file_of_another_kind_is_refused_before_any_training(tmp_path):
    with pytest.warns(Warning):
        train = synthetic_cifar10("train", per_class=4)
        test = synthetic_cifar10("test", per_class=3)
    other = tmp_path / "table.json"
    other.write_text(json.dumps({"rows": [], "provenance": {}}))
    with pytest.raises(ResultsError):
        study.run_study(train, test, FAST, device=torch.device("cpu"), plan=[("current", 0)], output=other,
                        progress=False)
    assert json.loads(other.read_text()) == {"rows": [], "provenance": {}}


def test_the_cpu_preset_is_the_candidate_the_study_adopted():
    """The preset notebook 03 trains is the screen's and the confirmation's ``width0.375``, without the study's
    budget and precision; the half-width preset before it stays frozen for the results measured with it."""
    _, adopted = study.CANDIDATES["width0.375"]
    assert PRESETS["cpu"] == replace(adopted, name="cpu", budget_s=None, precision="auto")
    assert PRESETS["cpu"].width == CPU_WIDTH == 0.375 and CPU_HALF_WIDTH.width == 0.5
    assert replace(PRESETS["cpu"], width=0.5) == CPU_HALF_WIDTH
    assert PRESETS["mps"].width == CPU_WIDTH
