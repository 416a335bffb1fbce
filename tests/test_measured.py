"""gapcourse.measured: the readers notebook 03 sets the learner's run beside (the budget table's rows), and the
verdicts of the head comparison (notebook 04), each naming the interval of a difference it used."""

from __future__ import annotations

import pytest

from gapcourse.measured import budget_steps, course_runs, load_table
from gapcourse.stats import UNPAIRED_WORDS, difference_halfwidth


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
    assert f"beyond the interval of a difference (±{100 * first.noise:.1f}, {UNPAIRED_WORDS})" in str(first)
    assert str(second).startswith("2 → 4 min") and "within the interval of a difference" in str(second)
    assert str(first).endswith("one seed each (another seed moves each accuracy too)")


def test_the_committed_tables_half_width_fp32_rows_gain_beyond_the_noise_at_every_step():
    steps = budget_steps(load_table())  # what notebook 03 asserts on the committed table
    assert len(steps) >= 3 and all(s.gain > s.noise for s in steps)


# --------------------------------------------------------------------------------------------------------------------
# The head comparison's verdicts: which interval of a difference each one used

def _runs_with_correctness(head: str, rights: list[list[int]], sha: str = "split") -> list[dict]:
    from gapcourse.stats import pack_correctness

    return [{"head": head, "regime": "augmented", "seed": s, "profile": "full", "head_params": 1_290,
             "test_acc": sum(r) / len(r), "train_acc": 0.9, "train_minus_test": 0.9 - sum(r) / len(r),
             "test_correct": pack_correctness([bool(x) for x in r]), "test_sha256": sha}
            for s, r in enumerate(rights)]


# 10 000 test images: A right on 8 450, B on 8 350, the two disagree on 1 000 (10 %)
A = [1] * 7_900 + [0] * 1_100 + [1] * 550 + [0] * 450
B = [1] * 7_900 + [0] * 1_100 + [0] * 550 + [1] * 450


def test_per_image_results_give_the_paired_interval_and_only_when_both_heads_kept_them():
    from gapcourse.measured import paired_interval, per_image
    from gapcourse.stats import paired_halfwidth

    a, b = _runs_with_correctness("gmp_linear", [A]), _runs_with_correctness("nin", [B])
    assert per_image(a, 10_000) == [float(x) for x in A]
    assert paired_interval(a, b, 10_000) == pytest.approx(paired_halfwidth(A, B))
    assert paired_interval(a, b, 10_000) < difference_halfwidth(0.845, 0.835, 10_000)
    # over seeds: each image's share of the seeds that got it right
    two = _runs_with_correctness("gmp_linear", [A, B])
    assert per_image(two, 10_000)[9_000] == 0.5
    # a run without per-image results, or another test split: no paired interval
    bare = [{k: v for k, v in b[0].items() if k != "test_correct"}]
    assert per_image(bare, 10_000) is None and paired_interval(a, bare, 10_000) is None
    assert paired_interval(a, _runs_with_correctness("nin", [B], sha="other"), 10_000) is None


def test_a_verdict_names_the_interval_that_decided_it():
    from gapcourse.measured import UNPAIRED_WORDS, accuracy_verdict, verdict
    from gapcourse.stats import differs

    a, b = _runs_with_correctness("gmp_linear", [A]), _runs_with_correctness("nin", [B])
    paired = accuracy_verdict(a, b, 10_000)  # 1.0 point: beyond the paired ±0.6, within the unpaired ±1.0
    assert paired.paired and paired.real and paired.difference == pytest.approx(0.01)
    assert str(paired) == "beyond the paired interval (±0.6, per image, same test images)"
    bare = [{k: v for k, v in r.items() if k != "test_correct"} for r in b]
    unpaired = accuracy_verdict(a, bare, 10_000)
    assert not unpaired.paired and not unpaired.real
    # a difference of 1.0 point against ±1.02: one decimal would print both as 1.0, so the verdict shows two
    assert str(unpaired) == f"within the interval of a difference (±1.02, {UNPAIRED_WORDS})"
    assert "upper bound" in UNPAIRED_WORDS
    # unpaired, a verdict is the course's difference rule; where the seeds spread more, it says so
    for x, y in (((0.870, 0.004, 3), (0.862, 0.004, 3)), ((0.870, 0.030, 3), (0.855, 0.030, 3)),
                 ((0.870, 0.004, 3), (0.850, 0.004, 3))):
        assert verdict(x, y, 10_000).real == differs(x, y, 10_000)
    assert str(verdict((0.870, 0.030, 3), (0.855, 0.030, 3), 10_000)) == (
        "within the seeds' spread (±3.0, wider than the unpaired interval of a difference, ±1.0)")
    from gapcourse.stats import Verdict

    edge = Verdict(0.0054, 0.00552, True)  # notebook 04's concat_linear − flatten_fc at seed 0
    assert str(edge) == "within the paired interval (±0.55, per image, same test images)"
    assert str(Verdict(0.02, 0.0296, False, 0.0304)).startswith("within the seeds' spread (±3.04, wider than")


def test_the_tables_footnotes_name_their_intervals():
    from gapcourse.measured import UNPAIRED_WORDS, results_markdown

    bare = lambda runs: [{k: v for k, v in r.items() if k != "test_correct"} for r in runs]  # noqa: E731
    payload = {"provenance": {"n_test": 10_000, "profile": "full"},
               "runs": bare(_runs_with_correctness("gmp_linear", [A])) + bare(_runs_with_correctness("nin", [B]))}
    note = results_markdown(payload, part="accuracy").split("\n\n")[-1]
    assert '"±" in the table: half the spread (max − min) over 1 seeds' in note
    assert "±0.7 points (95 %)" in note and f"±1.0 by the interval of a difference ({UNPAIRED_WORDS}" in note
    assert "no run here recorded them" in note
    payload["runs"] = _runs_with_correctness("gmp_linear", [A]) + _runs_with_correctness("nin", [B])
    note = results_markdown(payload, part="accuracy").split("\n\n")[-1]
    assert "Between nin, gmp_linear, whose runs recorded each image's result, the paired interval" in note
    assert note.endswith("applies instead: ±0.6 points.")
    # per-image results on two different test splits: nothing to pair, and said so (no crash)
    payload["runs"] = _runs_with_correctness("gmp_linear", [A]) + _runs_with_correctness("nin", [B], sha="other")
    note = results_markdown(payload, part="accuracy").split("\n\n")[-1]
    assert note.endswith("nin, gmp_linear recorded their per-image results on different ones.")


def test_the_ablation_judges_a_gain_by_the_interval_of_a_difference():
    from gapcourse.measured import UNPAIRED_WORDS, ablation_markdown, load_ablation

    text = ablation_markdown(load_ablation())
    assert "A gain is a difference of two: ±0.9" in text and UNPAIRED_WORDS in text


@pytest.mark.parametrize("damage", ["gIA=", 12345])
def test_a_damaged_per_image_result_names_its_run_and_the_fix(damage):
    from gapcourse.measured import per_image

    runs = _runs_with_correctness("nin", [B])
    runs[0]["test_correct"] = damage
    damaged = r"augmented run of nin \(seed 0\) holds a damaged per-image result.*git checkout"
    with pytest.raises(ValueError, match=damaged):
        per_image(runs, 10_000)
