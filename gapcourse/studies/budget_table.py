"""The budget table: what the cpu preset reaches when trained to a time budget, on this machine, under conditions
that stand for other machines. ``python -m gapcourse budget-table``; notebook 03 plots it
(:func:`gapcourse.viz.plot_budget_curve`) and docs/RESULTS.md shows it (section ``budget``).

For each condition and budget the cpu preset is trained with ``budget_s`` set (:mod:`gapcourse.budget` plans the
epochs), and one row records the budget, the planned epochs, predicted and actual seconds, the measured training
images/s and the test accuracy with the preset's test-time augmentation. Conditions:

* ``bf16``: bf16 forced (fast where the CPU's native bf16 is fast, e.g. the AMD EPYC; slow on an Intel Xeon without AMX);
* ``fp32``: fp32 forced (as a laptop without native bf16 trains);
* ``one-thread``: ``torch.set_num_threads(1)``, precision chosen as in notebook 03 (standing for a slower machine);
* ``auto``: exactly as notebook 03 runs it: precision ``auto`` (on a CPU with native bf16, bf16 and fp32 timed and
  the one whose plan fits more epochs kept), the learning curve after each epoch on 250 test images per class (:func:`curve_split`, counted
  in the budget), and the reported accuracy measured afterwards on the whole test split with the plan's precision.
  The other conditions evaluate the whole test split after each epoch (inside the budget).

Each row is written as it ends (by the study runner, :mod:`gapcourse.studies.runner`), and a rerun skips every row
already there (a row is identified by its condition, budget, seed, recipe and training data), so an interrupted run
resumes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import contextlib
import time

import torch

from ..config import Profile
from ..data import Cifar10Split
from ..device import seed_everything
from ..measured import BUDGET_TABLE_RESULTS
from ..measured import CONDITIONS
from ..budget import curve_split
from ..measured import width_of
from ..models import build_net
from ..outputs import ResultsError
from ..recipes import PRESETS, Recipe, measures_precision, native_precision
from ..budget import fit_to_budget
from ..train import evaluate
from .provenance import data_record, provenance
from .runner import Run, Shape, open_store, run_plan


RESULTS_FILE = BUDGET_TABLE_RESULTS

BUDGETS = (60.0, 120.0, 240.0, 480.0)  # 1, 2, 4 and 8 minutes

DEFAULT_CONDITIONS = ("bf16", "fp32", "one-thread")

# Each row names the invocation that made it (the file's own provenance is the latest invocation's): rows may be
# added by later runs, e.g. more seeds or budgets.
MADE_BY = ("command", "commit", "date", "device", "torch")

def check_conditions(conditions: list[str] | tuple[str, ...], budgets: list[float] | tuple[float, ...]) -> None:
    """One-line errors for unknown conditions or budgets that are not positive seconds (before any work)."""
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"Unknown condition(s) {unknown}; expected any of {list(CONDITIONS)}.")
    bad = [b for b in budgets if not b > 0]
    if bad:
        raise ValueError(f"Budgets must be seconds > 0 (e.g. 60 120 240 480), got {bad}.")

def condition_recipe(condition: str, budget_s: float, preset: Recipe | None = None) -> Recipe:
    """The cpu preset with ``budget_s``, its precision forced for ``bf16`` and ``fp32``; for ``auto`` and
    ``one-thread`` the precision notebook 03 gets on this CPU (:func:`gapcourse.recipes.pick_recipe`): ``auto`` (bf16
    and fp32 timed) where the CPU has native bf16, else the rule's choice (fp32)."""
    check_conditions([condition], [budget_s])
    recipe = replace(preset or PRESETS["cpu"], budget_s=float(budget_s))
    if condition in ("bf16", "fp32"):
        return replace(recipe, precision=condition)
    recipe = replace(recipe, precision="auto")
    return recipe if measures_precision(recipe, "cpu") else replace(recipe, precision=native_precision("cpu").mode)

@contextlib.contextmanager
def _threads(condition: str):
    """One thread for ``one-thread``, restored afterwards; the machine's setting otherwise."""
    saved = torch.get_num_threads()
    if condition == "one-thread":
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)

SHAPE = Shape("budget table", "the budget table", "a JSON object with 'rows' of budget runs and its 'provenance'",
              items="rows", own=lambda row: "condition" in row and "budget_s" in row)

def run_budget_table(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device | str = "cpu",
                     budgets: tuple[float, ...] = BUDGETS, conditions: tuple[str, ...] = DEFAULT_CONDITIONS,
                     seed: int = 0, output: Path = RESULTS_FILE, progress: bool = True,
                     command: str | None = None) -> dict:
    """Train the cpu preset to each budget under each condition; write each row to ``output`` as it ends and skip
    rows already there. ``command`` is recorded in the provenance (default: this process's command line).
    Rows are added by the study runner (:mod:`gapcourse.studies.runner`) under the file's lock: another process
    adding its own rows to the same file meanwhile keeps them, and a row that cannot be written is kept in a file
    beside. Returns the payload."""
    check_conditions(conditions, budgets)
    device = torch.device(device)
    data = data_record(profile.name, train)
    store = open_store(output, SHAPE, data, writer="budget-table")
    started = time.perf_counter()

    def plan():
        for condition in conditions:
            for budget_s in budgets:
                recipe = condition_recipe(condition, budget_s)
                curve = curve_split(test) if condition == "auto" else test
                ident = {"condition": condition, "budget_s": float(budget_s), "seed": seed,
                         "recipe": recipe.describe(), "train_sha256": data["train_sha256"]}
                if condition == "auto":  # rows made before the learning curve matched the notebook's are not reused
                    ident["curve_images"] = len(curve)
                yield Run(ident, f"{condition}, {budget_s:.0f} s, seed {seed}", spec=(recipe, curve))

    def made_by(_payload: dict | None = None) -> dict:
        return provenance(command, device=device, seconds=time.perf_counter() - started, n_test=len(test), seed=seed)

    def train_one(run: Run) -> dict:
        (recipe, curve), condition, budget_s = run.spec, run.identity["condition"], run.identity["budget_s"]
        print(f"== {condition}, budget {budget_s:.0f} s: {CONDITIONS[condition]}", flush=True)
        with _threads(condition) as threads:
            generator = seed_everything(seed)
            model = build_net(width=recipe.width)
            history = fit_to_budget(model, train, curve, recipe, device=device, generator=generator, profile=profile,
                                    progress=progress)
            plan = history.plan
            test_acc = history.test_acc[-1] if curve is test else \
                evaluate(model, test, device=device, recipe=plan.fixed_recipe(recipe)).accuracy
        row = {**run.identity, "threads": threads, "epochs": plan.epochs, "planned_epochs": plan.planned_epochs,
               "low_res_epochs": plan.low_res_epochs, "precision": plan.precision,
               "precision_reason": plan.precision_reason, "predicted_s": plan.predicted_s,
               "actual_s": plan.actual_s, "calibration_s": plan.calibration_s,
               "predicted_train_s": plan.predicted_train_s, "train_seconds": history.train_seconds,
               "train_img_per_s": plan.train_img_per_s, "eval_img_per_s": plan.eval_img_per_s,
               "over_budget": plan.over_budget, "note": plan.note, "test_acc": test_acc}
        epochs = f"{plan.epochs} epoch{'s' * (plan.epochs != 1)}"
        print(f"{condition}, {budget_s:.0f} s: {epochs}, {plan.actual_s:.0f} s "
              f"(predicted {plan.predicted_s:.0f} s), "
              f"test accuracy {row['test_acc']:.2%}", flush=True)
        record = made_by()
        row["made_by"] = {k: record.get(k) for k in MADE_BY}
        return row

    payload = run_plan(store, plan(), train_one, provenance=made_by)  # (with any rows another process added)
    if not payload["rows"]:
        raise ResultsError("No budget-table rows were asked for (give --budgets and --conditions).")
    return payload

def budget_findings(payload: dict) -> dict:
    """What the budget table's rows show, as data (:func:`budget_markdown` writes it out): its ``rows`` in the table's
    order (condition, budget, seed), ``n_test``, the noise of one run at the rows' mean accuracy (``halfwidth``: one
    accuracy's 95 % interval; ``difference_halfwidth``: a difference of two), the test images per class the ``auto``
    rows' learning curves used (``curve_images_per_class``), and ``means``: for each condition, budget and recipe run
    with several seeds, its ``seeds``, ``mean`` and ``spread`` of the test accuracy, its ``actual_s`` range, and
    what tells it from another recipe's rows of the same condition and budget (``told_by``: None, ``"width"`` or
    ``"recipe"``). Seeds are averaged only within one recipe: a row of an older recipe (a rerun after a preset
    change) is another experiment, not another seed."""
    from ..stats import binomial_halfwidth, difference_halfwidth, mean_and_spread

    order = list(CONDITIONS)
    rows = sorted(payload["rows"], key=lambda r: (order.index(r["condition"]), r["budget_s"], r["seed"]))
    n_test = int(payload.get("provenance", {}).get("n_test", 10_000))
    p = sum(r["test_acc"] for r in rows) / len(rows) if rows else None
    groups: dict[tuple[str, float, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["condition"], row["budget_s"], row.get("recipe", "")), []).append(row)
    recipes = {(c, b): [r for (c2, b2, r) in groups if (c2, b2) == (c, b)] for (c, b, _) in groups}
    means = []
    for (condition, budget_s, recipe), runs in groups.items():
        by_seed = {r["seed"]: r for r in runs}  # one row per seed (the latest, should a seed appear twice)
        if len(by_seed) > 1:
            mean, spread = mean_and_spread([r["test_acc"] for r in by_seed.values()])
            told_by = (None if len(recipes[(condition, budget_s)]) <= 1 else
                       "width" if len({width_of({"recipe": r}) for r in recipes[(condition, budget_s)]}) > 1 else
                       "recipe")
            means.append({"condition": condition, "budget_s": budget_s, "recipe": recipe, "width": width_of(runs[0]),
                          "seeds": list(by_seed), "mean": mean, "spread": spread,
                          "actual_s": (min(r["actual_s"] for r in by_seed.values()),
                                       max(r["actual_s"] for r in by_seed.values())), "told_by": told_by})
    return {"rows": rows, "n_test": n_test,
            "halfwidth": None if p is None else binomial_halfwidth(p, n_test),
            "difference_halfwidth": None if p is None else difference_halfwidth(p, p, n_test),
            "curve_images_per_class": [c // 10 for c in sorted({r["curve_images"] for r in rows
                                                                if r["condition"] == "auto" and "curve_images" in r})],
            "means": means}

def budget_markdown(payload: dict) -> str:
    """The results page's table: one row per run (condition, budget, seed), then, where a condition and budget were run
    with several seeds, their mean and spread (the numbers: :func:`budget_findings`)."""
    found = budget_findings(payload)
    rows, n_test = found["rows"], found["n_test"]
    if not rows:
        return "(no rows yet: `python -m gapcourse budget-table` trains them)"
    lines = ["| condition | budget | seed | width | epochs (of which at 24 px) | predicted | actual "
             "| training img/s at 32 px (calibration) | precision | test acc |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ips = next((v for k, v in row["train_img_per_s"].items() if k == f"{row['precision']}@32px"), None)
        flag = " (over)" if row["over_budget"] else ""
        lines.append(f"| {CONDITIONS[row['condition']]} | {row['budget_s']:.0f} s | {row['seed']} | "
                     f"{width_of(row)} | {row['epochs']} "
                     f"({row['low_res_epochs']}) | {row['predicted_s']:.0f} s | {row['actual_s']:.0f} s{flag} | "
                     + (f"{ips:,.0f}" if ips is not None else "–") + f" | {row['precision']} | "
                     f"{100 * row['test_acc']:.2f} % |")
    curves = found["curve_images_per_class"]
    auto_note = "" if not curves else (
        " The `auto` rows run as notebook 03 does: the evaluations inside the budget use "
        + " or ".join(f"{c:,}" for c in curves) + f" test images per class, and the accuracy shown is measured "
        f"afterwards on all {n_test:,}.")
    lines.append("")
    lines.append("Each budget covers the whole `fit_to_budget` call (calibration, training, the evaluation after each "
                 "epoch and the final test-time-augmented one)." + auto_note + f" One run per row: one accuracy on {n_test:,} "
                 f"test images is good to about "
                 f"±{100 * found['halfwidth']:.1f} points, a difference of two to about "
                 f"±{100 * found['difference_halfwidth']:.1f} (at their mean accuracy; the interval depends on "
                 "the accuracy). \"(over)\": more than 5 % over the budget.")
    for m in found["means"]:
        which = {None: "", "width": f", width {m['width']}", "recipe": f" (recipe `{m['recipe']}`)"}[m["told_by"]]
        lines.append("")
        lines.append(f"Mean over seeds {', '.join(map(str, m['seeds']))}, {CONDITIONS[m['condition']]}, "
                     f"{m['budget_s']:.0f} s{which}: **{100 * m['mean']:.2f} %** (spread {100 * m['spread']:.2f} "
                     f"points), actual {m['actual_s'][0]:.0f}–{m['actual_s'][1]:.0f} s.")
    return "\n".join(lines)
