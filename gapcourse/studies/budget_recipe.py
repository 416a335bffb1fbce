"""The budget-recipe study: which recipe trains the best network in notebook 03's four minutes on a CPU.

``python -m gapcourse budget-recipe``. Notebook 03 trains the cpu
preset to a budget of :data:`BUDGET_S` seconds; the preset was tuned for 16 fixed epochs, while four minutes buy 3–7
epochs on a 2-core CPU. Each candidate here changes the preset in one named way (or combines winners), and is trained
as notebook 03 trains it: the budget planner (:mod:`gapcourse.budget`) measures this machine and plans the epochs that
fit, ``fit`` trains them with the learning curve on 250 test images per class, and the whole test split is scored
afterwards with the recipe's test-time augmentation.

**Plans that do not depend on the load.** The planner times a few steps; on a machine that is also doing other work
it would plan fewer epochs, and a candidate would lose for a reason that is not its own. So every plan is made first
(:func:`plan_quietly`): candidates that cost the same per step share a plan, each cost shape is calibrated
:data:`PLAN_TRIES` times with the shapes taking turns, and each setting keeps its fastest (least disturbed)
measurement. The plans are recorded in the results file and every seed of a candidate trains its plan's epochs, fixed.
Accuracy is then independent of the load; each run records its plan (measured images/s, epochs, predicted seconds).

**Stages.** ``screen``: every candidate on seed 0, paired against the current preset on the same seed.
``confirm``: the adopted recipe and the current preset on seeds 0, 1, 2. Verdicts use the per-image paired interval
(:func:`gapcourse.stats.paired_halfwidth`: the two networks are scored on the same test images) and, over seeds, the
t-interval of the per-seed differences; the larger decides. Each run is written as it finishes, with the per-image
correctness bit-packed (by the study runner, :mod:`gapcourse.studies.runner`), and a rerun skips what is recorded
(identity: candidate, recipe, seed, budget, data).
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..budget import Calibration, calibrate, clock, make_plan
from ..budget_plan import Plan
from ..config import Profile
from ..data import Cifar10Split
from ..device import seed_everything
from ..models import build_net
from ..pipeline import num_batches
from ..config import RESULTS_DIR
from ..outputs import ResultsError
from .provenance import data_record, provenance
from .runner import ResultsStore, Run, Shape, open_store, run_plan
from ..recipes import CPU_HALF_WIDTH, DEFAULT_BUDGET_S, Recipe, measures_precision, resolve_precision
from ..budget import curve_split
from ..stats import paired_halfwidth, paired_halfwidths
from ..train import evaluate, fit, starting_weights

RESULTS_FILE = RESULTS_DIR / "budget_recipe.json"
BUDGET_S = DEFAULT_BUDGET_S  # notebook 03's default budget
ADOPTED = "width0.375"  # the candidate the confirmation adopted into the cpu preset (recipes.CPU_WIDTH)
PLAN_TRIES = 5


def candidates(precision: str = "fp32") -> dict[str, tuple[str, Recipe]]:
    """(what changed, recipe) per candidate, in the order the screen trains them; ``current`` is the cpu preset as
    notebook 03 runs it. ``precision``: ``fp32`` (forced: how a CPU without native bf16, most learners' laptops,
    trains) or ``auto`` (as notebook 03 chooses on this CPU)."""
    cpu = CPU_HALF_WIDTH
    out = {
        "current": ("the cpu preset before this study (half width)", cpu),
        "batch128": ("batch 128 instead of 256, lr 0.1 (twice the steps, the same lr per image)",
                     replace(cpu, batch_size=128, lr=0.1)),
        "whiten": ("first conv fixed patch-whitening filters, identity starts for the others",
                   replace(cpu, whiten="frozen", dirac=True)),
        "lowres20": ("low-resolution epochs at 20 px instead of 24 px", replace(cpu, low_res=20)),
        "width0.375": ("width ×0.375 instead of ×0.5 (cheaper steps, more epochs)", replace(cpu, width=0.375)),
        "lr0.4": ("peak learning rate 0.4 instead of 0.2", replace(cpu, lr=0.4)),
        "warmup0.1": ("warm-up 10 % of the steps instead of 25 %", replace(cpu, warmup=0.1)),
        "ls0.1": ("label smoothing 0.1 instead of 0.2", replace(cpu, label_smoothing=0.1)),
        "lowres3of4": ("three quarters of the epochs at 24 px instead of half", replace(cpu, low_res_epochs=12)),
        "width0.25": ("width ×0.25 instead of ×0.5", replace(cpu, width=0.25)),
        # Second round: the screen's winner (width) with the next best change.
        "width0.375+batch128": ("width ×0.375 and batch 128, lr 0.1", replace(cpu, width=0.375, batch_size=128,
                                                                             lr=0.1)),
    }
    return {k: (what, replace(r, name=f"cpu-{k}" if k != "current" else r.name, budget_s=BUDGET_S,
                              precision=precision))
            for k, (what, r) in out.items()}


CANDIDATES = candidates()


def pack_correct(correct: torch.Tensor) -> str:
    """Per-image correctness (a bool tensor) bit-packed and base64-encoded: 10 000 images in 1 668 characters."""
    return base64.b64encode(np.packbits(correct.cpu().numpy().astype(np.uint8)).tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> torch.Tensor:
    """The inverse of :func:`pack_correct` for ``n`` images."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n]
    if len(bits) != n:
        raise ResultsError(f"A run's per-image record holds {len(bits)} images, expected {n}: the file is damaged.")
    return torch.from_numpy(bits.astype(bool))


# Fields that change what a step computes but not what it costs: candidates differing only in these share a plan.
COST_FREE_FIELDS = ("name", "lr", "warmup", "label_smoothing", "momentum", "nesterov", "weight_decay",
                    "decay_norm_and_bias")


def cost_shape(recipe: Recipe) -> str:
    """The recipe with its cost-free fields set to the half-width preset's: equal for candidates that cost the same."""
    cpu = CPU_HALF_WIDTH
    return replace(recipe, **{k: getattr(cpu, k) for k in COST_FREE_FIELDS}).describe()


def _prepared(recipe: Recipe, train: Cifar10Split, device: torch.device) -> torch.nn.Module:
    """A fresh network as ``fit`` holds it before its calibration: on the device, in the recipe's layout, with the
    recipe's starting weights."""
    seed_everything(0)
    model = build_net(width=recipe.width).to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    starting_weights(model, train, recipe)
    return model


def _best(a: Calibration | None, b: Calibration) -> Calibration:
    """Each setting's fastest measurement of two calibrations, and the shorter calibration time."""
    if a is None:
        return b
    return Calibration({k: max(v, a.train_img_per_s.get(k, 0.0)) for k, v in b.train_img_per_s.items()},
                       {k: max(v, a.eval_img_per_s.get(k, 0.0)) for k, v in b.eval_img_per_s.items()},
                       min(a.seconds, b.seconds))


def plan_quietly(recipes: dict[str, Recipe], train: Cifar10Split, curve: Cifar10Split, *, device: torch.device,
                 profile: Profile, tries: int = PLAN_TRIES) -> dict[str, Plan]:
    """The budget plan ``fit`` would make for each recipe on this machine when nothing else runs. Recipes of one
    :func:`cost_shape` share one plan. Each shape is calibrated ``tries`` times, the shapes taking turns (so a busy
    moment of the machine falls on all of them alike), and each setting keeps its fastest measurement: the least
    disturbed one. The plan is then made from that calibration as ``fit_to_budget`` makes it (the starting weights and the
    calibration's time counted against the budget)."""
    shapes: dict[str, Recipe] = {}
    for recipe in recipes.values():
        shapes.setdefault(cost_shape(recipe), recipe)
    best: dict[str, Calibration | None] = dict.fromkeys(shapes)
    for _ in range(tries):
        for shape, recipe in shapes.items():
            modes = ("bf16", "fp32") if measures_precision(recipe, device) else \
                (resolve_precision(recipe, device).mode,)
            best[shape] = _best(best[shape], calibrate(_prepared(recipe, train, device), train, curve, recipe,
                                                       device=device, precisions=modes))
    plans = {}
    for shape, recipe in shapes.items():
        steps = num_batches(len(train), recipe.batch_size, drop_last=len(train) > recipe.batch_size)
        started = clock()
        model = _prepared(recipe, train, device)
        plans[shape] = make_plan(model, train, curve, recipe, device=device, profile=profile, started=started,
                                 steps_per_epoch=steps, calibration=best[shape],
                                 images_per_epoch=steps * recipe.batch_size if len(train) > recipe.batch_size
                                 else len(train))
    return {key: plans[cost_shape(recipe)] for key, recipe in recipes.items()}


def _plan_key(key: str, recipe: Recipe) -> str:
    return f"{key} | {recipe.describe()}"


def _plans_for(table: dict[str, tuple[str, Recipe]], keys: list[str], train: Cifar10Split, curve: Cifar10Split, *,
               device: torch.device, profile: Profile, store: ResultsStore, command: str | None) -> None:
    """Make (:func:`plan_quietly`) and record in the results file the plans of ``keys`` not recorded yet, so every
    seed of a candidate trains the same epochs, as notebook 03 would on one machine."""
    recorded = store.read()["plans"]
    missing = {k: table[k][1] for k in keys if _plan_key(k, table[k][1]) not in recorded}
    if not missing:
        return
    made = plan_quietly(missing, train, curve, device=device, profile=profile)
    for key, plan in made.items():
        print(f"plan for {key} (fastest of {PLAN_TRIES} calibrations): {plan.describe_plan()}", flush=True)
    store.update(lambda payload: payload["plans"].update({_plan_key(k, missing[k]): p.to_dict()
                                                          for k, p in made.items()}),
                 provenance=lambda payload: provenance(command, device=device, seconds=0.0, n_test=len(curve)))


def run_identity(key: str, recipe: Recipe, seed: int, data: dict, plan: Plan) -> dict:
    """What makes two runs the same run: candidate, recipe, seed, budget, training data and the epochs planned."""
    return {"candidate": key, "condition": recipe.precision, "recipe": recipe.describe(), "seed": seed,
            "epochs": plan.epochs, "low_res_epochs": plan.low_res_epochs, "budget_s": recipe.budget_s,
            "train_sha256": data["train_sha256"]}


# The study's file (read and written by gapcourse.studies.runner): its runs, each with its per-image record, and the
# plans every seed of a candidate shares.
SHAPE = Shape("budget-recipe study file", "the budget-recipe study",
              "'runs' with candidates and per-image records, and the 'plans' they trained",
              own=lambda run: "candidate" in run and "correct" in run, extra=("plans",))


def run_study(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
              plan: list[tuple[str, int]], output: Path, command: str | None = None, progress: bool = True,
              precision: str = "fp32") -> dict:
    """Train each ``(candidate, seed)`` of ``plan`` as notebook 03 does (see the module's docstring), skipping runs
    already recorded in ``output``; write each run as it ends. One run of the study writes ``output`` at a time
    (another is refused: the plans are made once for every seed). Returns the payload."""
    data = data_record(profile.name, train)
    store = open_store(output, SHAPE, data, writer="budget-recipe", exclusive=True)
    curve = curve_split(test)  # notebook 03's learning-curve images
    table = candidates(precision)

    def runs():
        for key, seed in plan:
            what, recipe = table[key]
            chosen = Plan.from_dict(store.read()["plans"][_plan_key(key, recipe)])
            yield Run(run_identity(key, recipe, seed, data, chosen), f"{key}, seed {seed}", spec=(what, recipe, chosen))

    def train_one(run: Run) -> dict:
        (what, recipe, chosen), key, seed = run.spec, run.identity["candidate"], run.identity["seed"]
        print(f"== {key}, seed {seed}: {what}", flush=True)
        started = time.perf_counter()
        generator = seed_everything(seed)
        model = build_net(width=recipe.width)
        fixed = chosen.fixed_recipe(recipe)
        history = fit(model, train, curve, fixed, device=device, generator=generator, profile=profile,
                      epochs=chosen.epochs, progress=progress)
        result = evaluate(model, test, device=device, recipe=fixed)
        correct = result.predictions == result.labels
        record = {**run.identity, "what": what, "profile": profile.name, "precision": chosen.precision,
                  "train_img_per_s": chosen.train_img_per_s, "calibration_s": chosen.calibration_s,
                  "predicted_s": chosen.predicted_s, "train_seconds": round(history.train_seconds, 1),
                  "train_acc": history.train_acc[-1], "test_acc": result.accuracy, "n_test": len(test),
                  "correct": pack_correct(correct), "seconds": round(time.perf_counter() - started, 1)}
        made = provenance(command, device=device, n_test=len(test), seconds=0.0)
        record["made_by"] = {k: made.get(k) for k in ("command", "commit", "date", "device", "torch")}
        print(f"{key}, seed {seed}: {chosen.epochs} epochs, test accuracy {result.accuracy:.2%} "
              f"({record['seconds']:.0f} s with planning)", flush=True)
        return record

    with store.session():  # (refused at once when another run of the study holds the file)
        _plans_for(table, list(dict.fromkeys(k for k, _ in plan)), train, curve, device=device, profile=profile,
                   store=store, command=command)  # every plan first, the calibrations taking turns
        return run_plan(store, runs(), train_one,
                        provenance=lambda payload: provenance(command, device=device, n_test=len(test),
                                                              seconds=sum(r["seconds"] for r in payload["runs"])))


def planned_runs(payload: dict) -> list[dict]:
    """The runs that trained their candidate's recorded plan (a run made before its plan was recorded, or under
    another plan, is left out of the tables: it is not the run this study describes)."""
    plans = payload.get("plans", {})
    out = []
    for run in payload["runs"]:
        plan = plans.get(f"{run['candidate']} | {run['recipe']}")
        if plan is not None and (plan["epochs"], plan["low_res_epochs"]) == (run["epochs"], run["low_res_epochs"]):
            out.append(run)
    return out


def paired(runs: list[dict], a: str, b: str = "current") -> dict | None:
    """``a`` against ``b`` on the seeds both have: per-seed accuracies and differences, the per-image paired 95 %
    half-width of the mean difference (correctness averaged over the seeds image by image), the t half-width over
    seeds (two or more), and the verdict by the larger. None when they share no seed."""
    by = {(r["candidate"], r["seed"]): r for r in runs}
    seeds = sorted(s for (c, s) in by if c == a and (b, s) in by)
    if not seeds:
        return None
    n = by[(a, seeds[0])]["n_test"]
    ca = torch.stack([unpack_correct(by[(a, s)]["correct"], n).double() for s in seeds]).mean(0)
    cb = torch.stack([unpack_correct(by[(b, s)]["correct"], n).double() for s in seeds]).mean(0)
    diffs = [by[(a, s)]["test_acc"] - by[(b, s)]["test_acc"] for s in seeds]
    mean = sum(diffs) / len(diffs)
    image_half = paired_halfwidth(ca, cb)
    t_half = paired_halfwidths([by[(a, s)]["test_acc"] for s in seeds], [by[(b, s)]["test_acc"] for s in seeds],
                               n)[0] if len(seeds) > 1 else None
    half = max(image_half, t_half or 0.0)
    return {"seeds": seeds, "a": [by[(a, s)]["test_acc"] for s in seeds], "b": [by[(b, s)]["test_acc"] for s in seeds],
            "diffs": diffs, "mean_diff": mean, "image_half": image_half, "t_half": t_half, "half": half,
            "verdict": "better" if mean > half else "worse" if mean < -half else "within the noise"}


def confirmations(runs: list[dict]) -> dict[str, dict]:
    """The candidates trained with two or more seeds, each with :func:`paired` against the current preset on those
    seeds (the confirmation :func:`study_markdown` writes out), in the order of :data:`CANDIDATES`."""
    found = {key: paired(runs, key) for key in CANDIDATES if key != "current"}
    return {key: cmp for key, cmp in found.items() if cmp is not None and len(cmp["seeds"]) >= 2}


def study_markdown(payload: dict) -> str:
    """The screen (one row per candidate on seed 0, paired against the current preset) and, where a candidate has
    several seeds, the confirmation. One-seed verdicts say only whether the difference exceeds the test set's noise."""
    runs = planned_runs(payload)
    lines = ["| candidate | what changed | epochs (at low res) | img/s at 32 px (plan) | test acc, seed 0 | "
             "vs current (paired 95 %) | one seed: beyond the test noise? |", "|---|---|---|---|---|---|---|"]
    not_run = []
    for key in CANDIDATES:
        run = next((r for r in runs if r["candidate"] == key and r["seed"] == 0), None)
        if run is None:
            if any(k.startswith(f"{key} | ") for k in payload.get("plans", {})):
                not_run.append(key)
            continue
        ips = run["train_img_per_s"].get(f"{run['precision']}@32px")
        cmp = paired([r for r in runs if r["seed"] == 0], key) if key != "current" else None
        vs = "–" if cmp is None else f"{100 * cmp['mean_diff']:+.2f} ± {100 * cmp['half']:.2f}"
        verdict = "–" if cmp is None else {"better": "yes, higher", "worse": "yes, lower"}.get(cmp["verdict"], "no")
        lines.append(f"| `{key}` | {CANDIDATES[key][0]} | {run['epochs']} ({run['low_res_epochs']}) | "
                     f"{ips:,.0f} | {100 * run['test_acc']:.2f} % | {vs} | {verdict} |")
    current = next((r for r in runs if r["candidate"] == "current" and r["seed"] == 0), None)
    if current is not None:
        ips = current["train_img_per_s"].get(f"{current['precision']}@32px")
        lines += ["", f"Seed 0 of every candidate, trained as notebook 03 trains at a {BUDGET_S:.0f} s budget in "
                      f"{current['condition']}. Each candidate's epochs were planned once, from the fastest of "
                      f"{PLAN_TRIES} calibrations (the candidates taking turns), then fixed for every seed: the "
                      "accuracy does not depend on the load while training, but the plan reflects this machine's "
                      f"speed while planning, {ips:,.0f} training images/s at 32 px for the preset before the study, "
                      f"which fit {current['epochs']} epochs in {BUDGET_S:.0f} s (a machine that measures faster plans "
                      "more epochs for every candidate). \"vs current\": the difference from the preset before the "
                      f"study on the same seed and the same {current['n_test']:,} test images, with the per-image "
                      "paired 95 % interval; with one seed it holds the test set's noise only, not the seeds', so a "
                      "screen's \"yes\" is a candidate for the confirmation, not a result."]
        if not_run:
            lines[-1] += (" Planned but not trained (the session's time went to the confirmation): "
                          + ", ".join(f"`{k}`" for k in not_run) + ".")
    left_out = [r for r in payload["runs"] if r not in runs]
    if left_out:
        lines[-1] += " Left out of the table: " + "; ".join(
            f"`{r['candidate']}` seed {r['seed']}, {r['epochs']} epochs, {100 * r['test_acc']:.2f} %, trained under "
            "an earlier single calibration that measured "
            f"{r['train_img_per_s'].get(r['precision'] + '@32px', 0):,.0f} img/s at 32 px (before the plans were made "
            "once and recorded)" for r in left_out) + "."
    for key, cmp in confirmations(runs).items():
        lines += ["", f"**Confirmation, `{key}` against `current`, seeds {', '.join(map(str, cmp['seeds']))}:** "
                      f"{' / '.join(f'{100 * x:.2f}' for x in cmp['a'])} % against "
                      f"{' / '.join(f'{100 * x:.2f}' for x in cmp['b'])} %; mean difference "
                      f"{100 * cmp['mean_diff']:+.2f} points (per-image paired ±{100 * cmp['image_half']:.2f}, "
                      f"t over seeds ±{100 * cmp['t_half']:.2f}; the larger decides): {cmp['verdict']}."]
    return "\n".join(lines)
