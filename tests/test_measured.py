"""gapcourse.measured: the readers notebook 03 sets the learner's run beside (the budget table's rows)."""

from __future__ import annotations

from gapcourse.measured import budget_steps, course_runs, load_table
from gapcourse.stats import difference_halfwidth


def row(condition: str, budget_s: float, epochs: int, acc: float, width: float = 0.5, seed: int = 0) -> dict:
    return {"condition": condition, "budget_s": budget_s, "epochs": epochs, "test_acc": acc, "seed": seed,
            "recipe": f"name=cpu, epochs=16, width={width}, precision=auto"}


TABLE = {"provenance": {"n_test": 10_000}, "rows": [
    row("fp32", 120.0, 2, 0.70), row("fp32", 60.0, 1, 0.60), row("fp32", 240.0, 5, 0.705),
    row("fp32", 240.0, 4, 0.99, seed=1),  # another seed: not a step of the one-seed series
    row("auto", 240.0, 7, 0.83, width=0.375), row("auto", 240.0, 6, 0.82, width=0.375, seed=1),
    row("fp32", 240.0, 4, 0.79, width=0.375), row("auto", 120.0, 3, 0.75, width=0.375)]}


def test_course_runs_are_the_rows_of_one_width_and_budget_fewest_epochs_first():
    runs = course_runs(TABLE, 0.375, 240.0)
    assert [(r["condition"], r["epochs"]) for r in runs] == [("fp32", 4), ("auto", 6), ("auto", 7)]
    assert course_runs(TABLE, 1.0, 240.0) == []


def test_budget_steps_pair_consecutive_budgets_of_one_seed_with_the_interval_of_a_difference():
    steps = budget_steps(TABLE)
    assert [(s.shorter["budget_s"], s.longer["budget_s"]) for s in steps] == [(60.0, 120.0), (120.0, 240.0)]
    first, second = steps
    assert abs(first.gain - 0.10) < 1e-9 and first.noise == difference_halfwidth(0.70, 0.60, 10_000)
    assert first.gain > first.noise and not second.gain > second.noise  # +0.5 points is within the noise
    assert "1 → 2 min: 1 → 2 epochs" in str(first) and f"±{100 * first.noise:.1f}" in str(first)


def test_the_committed_tables_half_width_fp32_rows_gain_beyond_the_noise_at_every_step():
    steps = budget_steps(load_table())  # what notebook 03 asserts on the committed table
    assert len(steps) >= 3 and all(s.gain > s.noise for s in steps)
