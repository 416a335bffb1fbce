"""The budget table: what the cpu preset reaches when trained to a time budget, on this machine, under conditions
that stand for other machines. ``python -m gapcourse budget-table``; notebook 03 plots it
(:func:`gapcourse.viz.plot_budget_curve`) and the README shows it (section ``budget``).

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

Each row is written as it ends, and a rerun skips every row already there (a row is identified by its condition,
budget, seed, recipe and training data), so an interrupted run resumes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import contextlib
import json
import time

import torch

from ..config import Profile
from ..data import Cifar10Split
from ..device import seed_everything
from ..measured import BUDGET_TABLE_RESULTS
from ..measured import CONDITIONS
from ..measured import curve_split
from ..measured import width_of
from ..models import build_net
from ..outputs import ResultsError, read_object
from ..outputs import keep_after_failure, locked
from ..recipes import PRESETS, Recipe, measures_precision, native_precision
from ..train import evaluate, fit
from .provenance import check_output, data_record, provenance, write_results


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

def _read_table(path: Path) -> dict:
    """The budget table in ``path`` (``{"rows": []}`` when there is none yet); :class:`ResultsError` for a file that
    is not one."""
    payload = read_object(path, "budget table") or {}
    rows = payload.setdefault("rows", [])
    if set(payload) - {"rows", "provenance"} or not isinstance(rows, list) or \
            not all(isinstance(r, dict) and "condition" in r and "budget_s" in r for r in rows):
        raise ResultsError(f"{path} is not a budget table (expected a JSON object with 'rows' of budget runs and "
                           "its 'provenance'); give another --output, or move the file away to start afresh.")
    return payload

def _add_row(output: Path, row: dict, ident: dict, record: dict, data: dict) -> dict:
    """Add a trained ``row`` to the table in ``output`` under its lock (another process may be adding its own rows
    to the same file: both are kept). A write that fails keeps the row in a file beside and says where."""
    try:
        with locked(output):
            payload = _read_table(output)
            if not any(all(r.get(k) == v for k, v in ident.items()) for r in payload["rows"]):
                payload["rows"].append(row)
            payload["provenance"] = record
            write_results(output, payload, data, writer="budget-table")
            return payload
    except (OSError, ValueError) as err:  # the output became a folder, a full disk, another file...
        kept = {"rows": [row], "provenance": {**record, **data}}
        keep_after_failure(output, json.dumps(kept, indent=1) + "\n", what="budget table",
                           work=f"the trained row ({row['condition']}, {row['budget_s']:.0f} s, seed {row['seed']})",
                           error=err)
        raise  # (keep_after_failure always raises)

def run_budget_table(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device | str = "cpu",
                     budgets: tuple[float, ...] = BUDGETS, conditions: tuple[str, ...] = DEFAULT_CONDITIONS,
                     seed: int = 0, output: Path = RESULTS_FILE, progress: bool = True,
                     command: str | None = None) -> dict:
    """Train the cpu preset to each budget under each condition; write each row to ``output`` as it ends and skip
    rows already there. ``command`` is recorded in the provenance (default: this process's command line).
    Returns the payload."""
    check_conditions(conditions, budgets)
    device = torch.device(device)
    data = data_record(profile.name, train)
    output = check_output(output, data, writer="budget-table")  # (its shape: _read_table)
    payload = _read_table(output)
    started = time.perf_counter()
    for condition in conditions:
        for budget_s in budgets:
            recipe = condition_recipe(condition, budget_s)
            curve = curve_split(test) if condition == "auto" else test
            ident = {"condition": condition, "budget_s": float(budget_s), "seed": seed, "recipe": recipe.describe(),
                     "train_sha256": data["train_sha256"]}
            if condition == "auto":  # rows made before the learning curve matched the notebook's are not reused
                ident["curve_images"] = len(curve)
            if any(all(row.get(k) == v for k, v in ident.items()) for row in _read_table(output)["rows"]):
                print(f"{condition}, {budget_s:.0f} s: already in {output.name}, skipped")
                continue
            print(f"== {condition}, budget {budget_s:.0f} s: {CONDITIONS[condition]}", flush=True)
            with _threads(condition) as threads:
                generator = seed_everything(seed)
                model = build_net(width=recipe.width)
                history = fit(model, train, curve, recipe, device=device, generator=generator, profile=profile,
                              progress=progress)
                plan = history.plan
                test_acc = history.test_acc[-1] if curve is test else \
                    evaluate(model, test, device=device, recipe=plan.fixed_recipe(recipe)).accuracy
            row = {**ident, "threads": threads, "epochs": plan.epochs, "planned_epochs": plan.planned_epochs,
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
            record = provenance(command, device=device, seconds=time.perf_counter() - started, n_test=len(test),
                                seed=seed)
            row["made_by"] = {k: record.get(k) for k in MADE_BY}
            _add_row(output, row, ident, record, data)
    payload = _read_table(output)  # with any rows another process added meanwhile
    if not payload["rows"]:
        raise ResultsError("No budget-table rows were asked for (give --budgets and --conditions).")
    return payload

def budget_markdown(payload: dict) -> str:
    """The README's table: one row per run (condition, budget, seed), then, where a condition and budget were run
    with several seeds, their mean and spread."""
    from ..stats import binomial_halfwidth, difference_halfwidth, mean_and_spread

    order = list(CONDITIONS)
    rows = sorted(payload["rows"], key=lambda r: (order.index(r["condition"]), r["budget_s"], r["seed"]))
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
    prov = payload.get("provenance", {})
    n_test = int(prov.get("n_test", 10_000))
    p = sum(r["test_acc"] for r in rows) / len(rows)
    curves = sorted({r["curve_images"] for r in rows if r["condition"] == "auto" and "curve_images" in r})
    auto_note = "" if not curves else (
        " The `auto` rows run as notebook 03 does: the evaluations inside the budget use "
        + " or ".join(f"{c // 10:,}" for c in curves) + f" test images per class, and the accuracy shown is measured "
        f"afterwards on all {n_test:,}.")
    lines.append("")
    lines.append(f"Each budget covers the whole `fit` call (calibration, training, the evaluation after each epoch and "
                 f"the final test-time-augmented one)." + auto_note + f" One run per row: one accuracy on {n_test:,} "
                 f"test images is good to about "
                 f"±{100 * binomial_halfwidth(p, n_test):.1f} points, a difference of two to about "
                 f"±{100 * difference_halfwidth(p, p, n_test):.1f} (at their mean accuracy; the interval depends on "
                 "the accuracy). \"(over)\": more than 5 % over the budget.")
    # Seeds are averaged only within one recipe: a row of an older recipe (a rerun after a preset change) is
    # another experiment, not another seed.
    groups: dict[tuple[str, float, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["condition"], row["budget_s"], row.get("recipe", "")), []).append(row)
    recipes = {(c, b): [r for (c2, b2, r) in groups if (c2, b2) == (c, b)] for (c, b, _) in groups}
    for (condition, budget_s, recipe), runs in groups.items():
        by_seed = {r["seed"]: r for r in runs}  # one row per seed (the latest, should a seed appear twice)
        if len(by_seed) > 1:
            mean, spread = mean_and_spread([r["test_acc"] for r in by_seed.values()])
            seeds = ", ".join(str(s) for s in by_seed)
            if len(recipes[(condition, budget_s)]) <= 1:
                which = ""
            elif len({width_of({"recipe": r}) for r in recipes[(condition, budget_s)]}) > 1:
                which = f", width {width_of(runs[0])}"  # the recipes differ in their width
            else:
                which = f" (recipe `{recipe}`)"
            lines.append("")
            lines.append(f"Mean over seeds {seeds}, {CONDITIONS[condition]}, {budget_s:.0f} s{which}: "
                         f"**{100 * mean:.2f} %** (spread {100 * spread:.2f} points), actual "
                         f"{min(r['actual_s'] for r in by_seed.values()):.0f}–"
                         f"{max(r['actual_s'] for r in by_seed.values()):.0f} s.")
    return "\n".join(lines)
