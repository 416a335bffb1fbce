"""The training-recipe ablation (a table of docs/RESULTS.md): ``python -m gapcourse ablate``. Notebook 06 reads its
results (``gapcourse/results/recipe_ablation.json``, through :func:`gapcourse.measured.load_ablation`).

Starting from the course's first cpu preset, one trick is added at a time, each run with the same seed, so each
row's gain is that trick's (within the noise: one accuracy on 10 000 test images is good to about ±0.6 points, see
:func:`gapcourse.stats.binomial_halfwidth`). Test-time augmentation changes no training, so every network is
evaluated with each test-time mode. The final recipe is then trained with two more seeds, and so is a longer variant
(20 epochs, the preset before notebook 03 had a 6-minute budget). Every finished network is written to the results
file at once (by the study runner, :mod:`gapcourse.studies.runner`), so an interrupted run resumes where it stopped
(a run is identified by its recipe, seed and data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import hashlib
import json
import time

import torch

from ..budget_plan import low_res_epochs_for
from ..config import Profile, cache_dir
from ..config import RESULTS_DIR
from ..data import Cifar10Split
from ..device import seed_everything
from ..measured import ABLATION_RESULTS
from ..measured import LONGER_WHAT
from ..measured import described_at_any_precision
from ..measured import longer_recipe
from ..measured import steps
from ..models import build_net
from ..recipes import CPU_HALF_WIDTH, TTA_MODES, Recipe, resolve_precision
from ..stats import T95, binomial_halfwidth, difference_halfwidth, mean_and_spread, noise_of_difference, paired_halfwidths
from .resume import fit_resumable
from ..train import evaluate, fit
from .provenance import data_record, provenance
from .runner import Run, Shape, open_store, run_plan


RESULTS_FILE = ABLATION_RESULTS

SAME_RUN = ("seed", "recipe", "profile", "n_train", "train_sha256")  # a step's label changes no network

def _train_and_measure(key: str, what: str, recipe: Recipe, seed: int, train: Cifar10Split, test: Cifar10Split,
                       profile: Profile, device: torch.device, progress: bool, resume: Path | None = None):
    """Train one run of a study (seeded as notebook 03 does) and evaluate it with every test-time mode. With
    ``resume`` (a file), the run saves its state after every epoch and goes on from it (:mod:`gapcourse.studies.resume`)."""
    print(f"== {key} (seed {seed}): {what}", flush=True)
    if resume is not None and not resume.exists():
        print(f"   state saved after every epoch in {resume}: if the run is cut off, the same command goes on "
              "from there", flush=True)
    generator = seed_everything(seed)
    model = build_net(width=recipe.width)
    options = dict(device=device, generator=generator, profile=profile, progress=progress,
                   epochs=profile.epochs(recipe.epochs))
    history = fit(model, train, test, recipe, **options) if resume is None else \
        fit_resumable(model, train, test, recipe, resume, **options)
    tta_acc = {mode: evaluate(model, test, device=device, recipe=replace(recipe, tta=mode)).accuracy
               for mode in TTA_MODES}
    return history, tta_acc

def _step_runs(plan: list[tuple[str, str, Recipe, int]], train: Cifar10Split, profile: Profile, device: torch.device,
               data_id: dict, *, resumable: bool = False):
    """The runs of a study of steps ((key, what changed, recipe, seed) each), as the study runner takes them: each
    recipe at the precision this device trains it in, identified by its step, seed, recipe, profile and training
    data (size and SHA-256 fingerprint); a step's label is left out of what makes two runs the same (:data:`SAME_RUN`).
    ``resumable``: each run keeps its state between epochs in its :func:`resume_file`."""
    for key, what, recipe, seed in plan:
        recipe = replace(recipe, precision=resolve_precision(recipe, device).mode)
        ident = {"step": key, "seed": seed, "recipe": recipe.describe(), "profile": profile.name,
                 "n_train": len(train), "train_sha256": data_id["train_sha256"]}
        yield Run(ident, f"{key} (seed {seed})", same=SAME_RUN, resume=resume_file(ident) if resumable else None,
                  spec=(what, recipe))

def run_ablation(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                 output: Path = RESULTS_FILE, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> dict:
    """Train every step (seed 0), then the final recipe and the longer variant with ``seeds``; write each run to
    ``output`` as it ends, and skip every run already there (a run is identified by its seed, recipe, profile and
    training data: size and SHA-256 fingerprint). ``output`` is checked before any training and written by the study
    runner (:mod:`gapcourse.studies.runner`: never the committed file from a fast or synthetic run)."""
    data_id = data_record(profile.name, train)
    store = open_store(output, ABLATION, data_id, writer="ablate")
    plan = [(key, what, recipe, 0) for key, what, recipe in steps()]
    plan += [("final", "cpu preset, another seed", steps()[-1][2], s) for s in seeds if s != 0]
    plan += [("longer", LONGER_WHAT, longer_recipe(), s) for s in seeds]
    started = time.perf_counter()

    def train_one(run: Run) -> dict:
        (what, recipe), ident = run.spec, run.identity
        history, tta_acc = _train_and_measure(ident["step"], what, recipe, ident["seed"], train, test, profile,
                                              device, progress)
        return {**ident, "what": what, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
                "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc}

    return run_plan(store, _step_runs(plan, train, profile, device, data_id), train_one,
                    provenance=lambda payload: provenance(device=device, seconds=time.perf_counter() - started,
                                                          profile=profile.name, n_train=len(train),
                                                          n_test=len(test)))

GPU_RESULTS_FILE = RESULTS_DIR / "gpu_preset_study.json"

def _is_gpu_study_run(run: dict) -> bool:
    """A run of the gpu study (its recipes are all named gpu…), not of the cpu ablation (also keyed by step) or the
    cpu-cutout check (keyed by arm): the studies never share a results file."""
    return "step" in run and "arm" not in run and str(run.get("recipe", "")).startswith("name=gpu")

# The files of the cpu ablation and of the gpu study (read and written by gapcourse.studies.runner): a list of runs
# each, never shared (both key their runs by step; the gpu study's recipes are all named gpu…).
ABLATION = Shape("ablation results file", "the cpu recipe's ablation",
                 "a JSON object with a 'runs' list of the cpu ablation's runs",
                 own=lambda run: "step" in run and not _is_gpu_study_run(run))
GPU_STUDY = Shape("gpu study results file", "the gpu study", "a JSON object with a 'runs' list of the gpu study's runs",
                  own=_is_gpu_study_run)

# The study's first candidate (step "cutout"; its recipe keeps its recorded name): why: docs/studies/gpu-preset.md.
GPU_CUTOUT_STEP = {"name": "gpu-candidate", "cutout": 12, "epochs": 36, "low_res_epochs": 18}

# The candidate (step "candidate"): the cutout step from data-aware weights; why: docs/studies/gpu-preset.md.
GPU_CANDIDATE = {**GPU_CUTOUT_STEP, "name": "gpu-candidate2", "whiten": "frozen", "dirac": True}

# The gpu preset as it was when the study began (its starting point, frozen here so that the preset may change
# without changing what the study's recorded runs were).
GPU_BASELINE = Recipe("gpu", epochs=24, batch_size=512, lr=0.4, width=1.0, label_smoothing=0.2,
                      decay_norm_and_bias=False, ema=0.99, channels_last=True, tta="flip_shift")

def gpu_steps() -> list[tuple[str, str, Recipe]]:
    """(key, what changed, recipe) for the gpu study: the gpu preset as it was; the first candidate (cutout: three
    changes at once); then the candidate, which adds the data-aware start (whitening and identity filters) to the
    cutout step. The candidate becomes the preset only when the study's numbers say so."""
    preset = GPU_BASELINE
    out = [("baseline", f"gpu preset before the study: {preset.epochs} epochs, shift + mirror augmentation", preset)]
    r = replace(preset, **GPU_CUTOUT_STEP)
    out.append(("cutout", f"+ cutout {r.cutout} px and {r.epochs} epochs, the first {r.low_res_epochs} on "
                          f"{r.low_res} px images", r))
    r = replace(preset, **GPU_CANDIDATE)
    out.append(("candidate", "as the cutout step, + patch-whitening filters (fixed) for the first conv and identity "
                             "filters for the others at the start", r))
    return out

def run_gpu_study(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                  output: Path = GPU_RESULTS_FILE, seeds: tuple[int, ...] | None = None, only: tuple[str, ...] = (),
                  progress: bool = True) -> dict:
    """Train each step of :func:`gpu_steps` (seed 0; the last step, the candidate, with every seed in ``seeds``,
    default 0 and 1), or only the steps named in ``only``: with ``seeds`` given, each of them with every one of those
    seeds (e.g. the baseline's seed 1, which gives the preset as it ships a mean over two seeds); without, the runs
    the whole study would train for them. Each run is written as it ends (under a lock: several processes may share
    the file)."""
    data_id = data_record(profile.name, train)
    store = open_store(output, GPU_STUDY, data_id, writer="ablate")
    steps_ = gpu_steps()
    if only and seeds is not None:  # the named steps, each with every seed given
        plan = [(key, what, recipe, s) for key, what, recipe in steps_ if key in only for s in seeds]
    else:  # the steps before the candidate with seed 0, the candidate with every seed (default 0 and 1) ...
        plan = [(key, what, recipe, 0) for key, what, recipe in steps_[:-1]]
        plan += [(steps_[-1][0], steps_[-1][1], steps_[-1][2], s) for s in (seeds or (0, 1))]
        plan = [p for p in plan if not only or p[0] in only]  # ... or those of the named steps
    started = time.perf_counter()

    def train_one(run: Run) -> dict:
        """Train one run of the gpu study, resumable (its state is saved after every epoch in ``run.resume``)."""
        (what, recipe), ident, resume = run.spec, run.identity, run.resume
        key, seed = ident["step"], ident["seed"]
        for other in sorted(resume.parent.glob(f"gpu-study-{key}-seed{seed}-*.pt")):
            if other != resume:
                print(f"   note: {other} holds a saved state of this step and seed from another recipe, precision "
                      "or data (e.g. started on a machine that picks another precision); it is left as it is, and "
                      "this run starts from epoch 1")
        run_started = time.perf_counter()
        history, tta_acc = _train_and_measure(key, what, recipe, seed, train, test, profile, device, progress,
                                              resume=resume)
        made_by = provenance(device=device, seconds=time.perf_counter() - run_started)
        return {**ident, "what": what, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
                "threads": torch.get_num_threads(), "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc,
                "train_acc_curve": history.train_acc,
                "made_by": {k: made_by[k] for k in ("command", "commit", "device", "torch", "date", "seconds")},
                "pieces": history.pieces}

    def made_by(payload: dict) -> dict:
        return provenance(device=device, seconds=time.perf_counter() - started, profile=profile.name,
                          n_train=len(train), n_test=len(test),
                          note="accuracy measured on a CPU with the same code and arithmetic as on a GPU; time not "
                               "measured on a GPU")

    # (a run is claimed while it trains and until it is in the results file, and removed from the resume folder then:
    # several processes may share the file and no run is recorded twice; see gapcourse.studies.runner.run_plan)
    return run_plan(store, _step_runs(plan, train, profile, device, data_id, resumable=True), train_one,
                    provenance=made_by)

def resume_file(ident: dict) -> Path:
    """Where a gpu-study run keeps its state between epochs (``<cache>/resume``), named by its step, seed and a
    digest of its identity (recipe, profile, training data), so that an interrupted run goes on where it stopped."""
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "resume" / f"gpu-study-{ident['step']}-seed{ident['seed']}-{digest}.pt"

GPU_STUDY_LABEL = "accuracy measured on a CPU with the same code and arithmetic; time not measured on a GPU"

def gpu_step_of(run: dict) -> str:
    """The step of :func:`gpu_steps` a recorded run trained: the one whose recipe it is (at any precision), else its
    recorded ``step``. Files written before the steps were renamed (the cutout step was called ``candidate``) are
    then still read right."""
    for key, _, recipe in gpu_steps():
        if run.get("recipe") in described_at_any_precision(recipe):
            return key
    return run["step"]

def gpu_study_markdown(payload: dict) -> str:
    """The gpu study's table in docs/RESULTS.md: one row per run (step, seed) with its precision, epochs and test
    accuracy per test-time mode, then each step's mean over seeds where it ran with several. Every row is labelled
    with :data:`GPU_STUDY_LABEL`: the accuracy is the GPU route's, the seconds are the measuring machine's."""
    runs = [{**r, "step": gpu_step_of(r)} for r in payload.get("runs", [])]
    runs.sort(key=lambda r: (([k for k, _, _ in gpu_steps()] + [r["step"]]).index(r["step"]), r["seed"]))
    if not runs:
        raise ValueError("gpu_study_markdown expects the gpu study's results (a dict with a non-empty 'runs' list), "
                         "e.g. from `python -m gapcourse ablate --preset gpu`.")
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    lines = [f"*{GPU_STUDY_LABEL[0].upper() + GPU_STUDY_LABEL[1:]}.*", "",
             "| step | seed | precision | epochs | test acc, flip + shift TTA | flip TTA | single view "
             "| training time on the run's machine (evaluation excluded) |", "|---|---|---|---|---|---|---|---|"]
    labels = {key: what for key, what, _ in gpu_steps()}  # today's labels: a recorded run keeps its step, not its words
    for r in runs:
        acc = r["test_acc_by_tta"]
        precision = next((part.split("=", 1)[1] for part in r["recipe"].split(", ")
                          if part.startswith("precision=")), "?")
        machines = {(p.get("device"), p.get("threads")) for p in r.get("pieces") or []}
        took = f"{r['train_seconds'] / 60:.0f} min" + (" (several machines)" if len(machines) > 1 else "")
        lines.append(f"| {labels.get(r['step'], r['what'])} | {r['seed']} | {precision} | {r['epochs']} | "
                     f"{100 * acc['flip_shift']:.2f} % | {100 * acc['flip']:.2f} % | {100 * acc['none']:.2f} % | "
                     f"{took} |")
    steps = gpu_study_findings(runs, n_test)["steps"]
    for key, what, _ in gpu_steps():
        accs = list(steps[key]["by_seed"].values()) if key in steps else []
        if len(accs) > 1:  # a step's mean over its seeds (one seed: its row says it all)
            lines.append(f"\n{what}, {len(accs)} seeds: mean **{mean_percent(accs, n_test)} %** "
                         f"(spread {100 * steps[key]['spread']:.2f} "
                         "points).")
    p = runs[-1]["test_acc_by_tta"]["flip_shift"]
    lines.append(f"\nOne accuracy on {n_test:,} test images is good to ±{100 * binomial_halfwidth(p, n_test):.1f} "
                 "points (95 %).")
    lines += gpu_study_verdict(runs, n_test)
    lines.append("\nMade by (the command that finished each run; a resumed run lists its stretches):")
    for r in runs:
        lines.append(f"- {labels.get(r['step'], r['what'])}, seed {r['seed']}: {_made_by_text(r)}")
    return "\n".join(lines)

GPU_PRESET_BAR = 0.92  # a candidate step (not the baseline) becomes the gpu preset when its mean over at least two

def accuracies_by_seed(runs: list[dict], key: str) -> dict[int, float]:
    """One step's flip + shift TTA accuracy per seed (``runs`` carry their step, see :func:`gpu_step_of`). A seed
    recorded twice (e.g. trained again on a machine that picks another precision) counts once, at its runs' mean."""
    per_seed: dict[int, list[float]] = {}
    for run in runs:
        if run["step"] == key:
            per_seed.setdefault(run["seed"], []).append(run["test_acc_by_tta"]["flip_shift"])
    return {seed: sum(v) / len(v) for seed, v in sorted(per_seed.items())}

def meets_gpu_bar(accs: list[float], n_test: int) -> bool:
    """At least two seeds whose mean reaches :data:`GPU_PRESET_BAR`, compared in whole test images: an accuracy is a
    count over ``n_test`` stored as a rounded float, so 18 400 right of 2 × 10 000 must count as 92 %."""
    return len(accs) >= 2 and round(sum(accs) * n_test) >= round(GPU_PRESET_BAR * n_test * len(accs))

def mean_percent(accs: list[float], n_test: int) -> str:
    """The mean of a few accuracies on ``n_test`` images, in percent, counted in whole images and shown with a third
    decimal where two would round it (two seeds' 91.995 % must not read as the bar's 92.00 %)."""
    mean = 100 * round(sum(accs) * n_test) / (n_test * len(accs))
    text = f"{mean:.2f}"
    return text if abs(float(text) - mean) < 1e-9 else f"{mean:.3f}"

def gpu_study_findings(runs: list[dict], n_test: int) -> dict:
    """What the gpu study's runs show, as data (:func:`gpu_study_verdict` writes it out; ``runs`` carry their step,
    see :func:`gpu_step_of`):

    * ``steps``: each step that ran, with its flip + shift accuracy per seed (``by_seed``), their ``mean`` counted in
      whole test images and their ``spread``;
    * ``comparisons``: each step against the step above it and against the baseline, on the seeds both ran: the mean
      per-seed ``difference``, the ``interval`` that decides it (``"difference"``: the 95 % interval of a difference
      of two accuracies, test-set noise only, for one seed; ``"paired"``: the larger of the seeds' t-interval
      ``t_half`` and that interval ``d_half``, for several; ``"half-spreads"``: the seeds' half-spreads and that
      interval, for more seeds than :data:`gapcourse.stats.T95` holds), its half-width ``half``, and ``real`` when
      the difference is outside it;
    * ``candidates``: each candidate step that ran (never the baseline), whether it ``meets_bar``
      (:func:`meets_gpu_bar`), and with one seed the accuracy a second seed needs to lift the mean to the bar
      (``second_seed_needs``; above 1 when none can);
    * ``met``: the candidates that meet :data:`GPU_PRESET_BAR`."""
    keys = [key for key, _, _ in gpu_steps()]
    acc = {key: accuracies_by_seed(runs, key) for key in keys}
    steps = {key: {"by_seed": acc[key],
                   "mean": round(sum(acc[key].values()) * n_test) / (n_test * len(acc[key])),
                   "spread": mean_and_spread(list(acc[key].values()))[1]} for key in keys if acc[key]}
    comparisons = []
    pairs = [(key, ref) for i, key in enumerate(keys[1:], 1)
             for ref in dict.fromkeys((keys[i - 1], "baseline"))]  # the step above it, and the baseline
    for key, ref in pairs:
        seeds = sorted(set(acc[key]) & set(acc[ref]))
        if not seeds:
            continue
        a, b = [acc[key][s] for s in seeds], [acc[ref][s] for s in seeds]
        diff = sum(x - y for x, y in zip(a, b)) / len(seeds)
        t_half = d_half = None
        if len(seeds) == 1:
            interval, half = "difference", difference_halfwidth(a[0], b[0], n_test)
        elif len(seeds) - 1 in T95:
            t_half, d_half = paired_halfwidths(a, b, n_test)
            interval, half = "paired", max(t_half, d_half)
        else:  # more seeds than the t table holds: the seeds' half-spreads and the interval of a difference
            interval = "half-spreads"
            half = noise_of_difference((sum(a) / len(a), max(a) - min(a), len(a)),
                                       (sum(b) / len(b), max(b) - min(b), len(b)), n_test)
        comparisons.append({"step": key, "against": ref, "seeds": seeds, "difference": diff, "interval": interval,
                            "half": half, "t_half": t_half, "d_half": d_half, "real": abs(diff) > half})
    candidates = {key: {"meets_bar": meets_gpu_bar(list(acc[key].values()), n_test),
                        "second_seed_needs": (2 * GPU_PRESET_BAR - next(iter(acc[key].values()))
                                              if len(acc[key]) == 1 else None)}
                  for key in keys[1:] if acc[key]}
    return {"steps": steps, "comparisons": comparisons, "candidates": candidates,
            "met": [key for key, c in candidates.items() if c["meets_bar"]]}

def gpu_study_verdict(runs: list[dict], n_test: int) -> list[str]:
    """What the gpu study's runs show, as docs/RESULTS.md lines (part of :func:`gpu_study_markdown`; ``runs`` carry
    their step), written from :func:`gpu_study_findings`: each step against the step above it and against the
    baseline, on the seeds both ran (one seed: the 95 % interval of a difference of two accuracies, which holds the
    test set's noise only; several: the paired test of :mod:`gapcourse.stats`); then the preset's mean over its seeds,
    and whether a candidate step has met :data:`GPU_PRESET_BAR`, or what a second seed of each would need."""
    found = gpu_study_findings(runs, n_test)
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    lines = ["", "What these runs show (flip + shift TTA; generated from the runs above):"]
    for c in found["comparisons"]:
        seeds, diff, half = c["seeds"], c["difference"], c["half"]
        head = f"- `{c['step']}` against `{c['against']}`, seed{'s' if len(seeds) > 1 else ''} " \
               f"{', '.join(map(str, seeds))}: {100 * diff:+.2f} points"
        if c["interval"] == "difference":
            lines.append(f"{head}, {'outside' if c['real'] else 'inside'} the 95 % interval of a difference "
                         f"of two accuracies on {n_test:,} images (±{100 * half:.2f})" + (
                "; one seed leaves out how much seeds differ, so another seed must confirm it." if c["real"] else
                ": too small to tell from the noise (which shows neither a gain nor its absence; one seed leaves out "
                "how much seeds differ)."))
            continue
        if c["interval"] == "paired":
            how = (f"the larger of the seeds' 95 % t-interval (±{100 * c['t_half']:.2f}; paired by seed number, "
                   f"though the steps draw different random numbers) and the interval of a difference of two "
                   f"accuracies (±{100 * c['d_half']:.2f})")
        else:
            how = f"the larger of the seeds' half-spreads added and the interval of a difference (±{100 * half:.2f})"
        lines.append(f"{head} (mean per-seed difference), " + (
            f"outside {how}: a real difference." if c["real"] else
            f"inside {how}: too small to tell from the noise."))
    values_of = {key: list(step["by_seed"].values()) for key, step in found["steps"].items()}
    if "baseline" in found["steps"]:
        values = values_of["baseline"]
        lines.append(f"- The gpu preset as it ships (`baseline`): {mean_percent(values, n_test)} % over {len(values)} "
                     + (f"seeds (spread {100 * found['steps']['baseline']['spread']:.2f} points)." if len(values) > 1
                        else "seed."))
    bar = (f"The bar for a candidate to become the preset (a mean of at least {pct(GPU_PRESET_BAR)} % over at least "
           "two seeds, set before the runs)")
    if found["met"]:
        lines.append(f"- {bar} is met by " + ", ".join(
            f"`{key}` ({mean_percent(values_of[key], n_test)} % over {len(values_of[key])} seeds)"
            for key in found["met"]) + ".")
    elif found["candidates"]:
        parts = []
        for key, candidate in found["candidates"].items():
            values = values_of[key]
            part = f"`{key}` {mean_percent(values, n_test)} % over {len(values)} seed{'s' if len(values) > 1 else ''}"
            need = candidate["second_seed_needs"]
            if need is not None:
                part += (" (no second seed can lift the mean to the bar)" if need > 1 else
                         f" (a second seed of at least {pct(need)} % would do)" if need <= values[0] else
                         f" (a second seed would need at least {pct(need)} %, {100 * (need - values[0]):.2f} points "
                         "above the first)")
            parts.append(part)
        lines.append(f"- {bar} is met by no candidate: " + "; ".join(parts) + ".")
    return lines

def _made_by_text(run: dict) -> str:
    """One run's provenance in a line: command, device, torch, commit, date, and the stretches of a resumed run."""
    made = run.get("made_by")
    if not made:
        return "(not recorded for this run)"
    pieces = run.get("pieces") or []
    took = (f", {made['seconds'] / 60:.0f} min in all" if len(pieces) <= 1 else
            f", its last stretch {made['seconds'] / 60:.0f} min") if "seconds" in made else ""
    text = (f"`{made['command']}` on {made['device']}, torch {made['torch']}, commit `{_short(made['commit'])}`, "
            f"{made['date']}{took}")
    if run.get("made_by_source"):
        text += f" (record {run['made_by_source']})"
    if len(pieces) > 1:
        text += "; resumed, in " + str(len(pieces)) + " stretches: " + "; ".join(
            f"epochs {p['from_epoch']}–{p['to_epoch']} ({p.get('device', '?')}, torch {p.get('torch', '?')}, "
            f"commit `{_short(p['commit'])}`, {p['started'][:10]})"
            for p in pieces)
    return text

def _short(commit: str) -> str:
    """A short commit id that keeps the mark of uncommitted changes (``+changes``)."""
    return commit[:10] + ("+changes" if commit.endswith("+changes") else "")

CUTOUT_RESULTS_FILE = RESULTS_DIR / "cpu_cutout_check.json"

CPU_CUTOUT = 8  # px: a quarter of the image side, milder than the gpu candidate's 12 for a run of a few epochs

# The run notebook 03 made when the check ran: the half-width cpu preset (recipes.CPU_HALF_WIDTH) trained to its
# 4-minute budget. On the machine that measured the budget table (budget_table.json, condition "auto", 240 s, seeds
# 0-2) the plan was 7 epochs (the first 4 at 24 px) in fp32
# for every seed; the check trains exactly that plan (fixed, so that every machine checks the same runs).
CPU_CUTOUT_PLAN = {"epochs": 7, "precision": "fp32"}

CUTOUT_ARMS = ("without", "with")

CUTOUT_CHECK = Shape("cpu-cutout check results file", "the cpu-cutout check",
                     "a JSON object with a 'runs' list of the check's runs, each with its arm",
                     own=lambda run: "arm" in run)

def cutout_check_recipe(arm: str) -> Recipe:
    """The cpu preset as notebook 03's budget plan trains it, without cutout or with :data:`CPU_CUTOUT`."""
    if arm not in CUTOUT_ARMS:
        raise ValueError(f"arm must be one of {CUTOUT_ARMS}, got {arm!r}.")
    return replace(CPU_HALF_WIDTH, epochs=CPU_CUTOUT_PLAN["epochs"], precision=CPU_CUTOUT_PLAN["precision"],
                   low_res_epochs=low_res_epochs_for(CPU_HALF_WIDTH, CPU_CUTOUT_PLAN["epochs"]),
                   cutout=CPU_CUTOUT if arm == "with" else 0)

def run_cutout_check(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                     output: Path = CUTOUT_RESULTS_FILE, seeds: tuple[int, ...] = (0, 1, 2),
                     progress: bool = True) -> dict:
    """Train the cpu preset's budget plan without and with cutout, each seed both ways (the same initialisation and
    first epoch; the cutout draws then shift the random stream: a paired comparison, looser after epoch 1); write each
    run as it ends and skip the runs already in ``output``."""
    data_id = data_record(profile.name, train)
    store = open_store(output, CUTOUT_CHECK, data_id, writer="ablate")
    started = time.perf_counter()

    def plan():
        for seed in seeds:
            for arm in CUTOUT_ARMS:
                recipe = cutout_check_recipe(arm)
                ident = {"arm": arm, "seed": seed, "recipe": recipe.describe(), "profile": profile.name,
                         "n_train": len(train), "train_sha256": data_id["train_sha256"]}
                yield Run(ident, f"{arm} cutout (seed {seed})", spec=recipe)

    def train_one(run: Run) -> dict:
        recipe, arm, seed = run.spec, run.identity["arm"], run.identity["seed"]
        what = f"cpu preset, {recipe.epochs} epochs" + (f", cutout {recipe.cutout} px" if recipe.cutout else "")
        run_started = time.perf_counter()
        history, tta_acc = _train_and_measure(arm, what, recipe, seed, train, test, profile, device, progress)
        made_by = provenance(device=device, seconds=time.perf_counter() - run_started)
        return {**run.identity, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
                "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc, "train_acc_curve": history.train_acc,
                "made_by": {k: made_by[k] for k in ("command", "commit", "device", "torch", "date", "seconds")}}

    return run_plan(store, plan(), train_one,
                    provenance=lambda payload: provenance(device=device, seconds=time.perf_counter() - started,
                                                          profile=profile.name, n_train=len(train),
                                                          n_test=len(test)))

def cutout_check_findings(payload: dict) -> dict:
    """What the cpu-cutout check's runs show, as data (:func:`cutout_check_markdown` writes it out): the ``seeds``
    trained both ways, each arm's flip + shift accuracy per seed (``without``, ``with``), the per-seed
    ``differences`` (with − without) and their ``mean_difference``; the ``interval`` that judges it (two or more
    seeds: ``"paired"``, the larger ``half`` of the seeds' t-interval ``t_half`` and the interval of a difference of
    two accuracies ``d_half``, as :func:`gapcourse.stats.paired_differs` decides; one seed: ``"difference"``, the
    test set's noise only) and the ``verdict`` (``"helps"``, ``"hurts"``, ``"noise"``; None for one seed, which
    gives none); the epochs the runs trained (``trained_epochs``), ``n_test``, and each arm's last-epoch training
    accuracy over the seeds (``train_acc``; None unless every run recorded its curve)."""
    runs = payload.get("runs", [])
    by = {(r["arm"], r["seed"]): r["test_acc_by_tta"]["flip_shift"] for r in runs}
    seeds = sorted(s for (arm, s) in by if arm == "without" and ("with", s) in by)
    if not seeds:
        raise ValueError("cutout_check_markdown needs at least one seed trained both without and with cutout, e.g. "
                         "from `python -m gapcourse ablate --preset cpu-cutout`.")
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    without, with_ = [by[("without", s)] for s in seeds], [by[("with", s)] for s in seeds]
    diffs = [b - a for a, b in zip(without, with_)]
    mean = sum(diffs) / len(diffs)
    t_half = d_half = verdict = None
    if len(seeds) >= 2:
        t_half, d_half = paired_halfwidths(with_, without, n_test)
        interval, half = "paired", max(t_half, d_half)
        verdict = "noise" if abs(mean) <= half else "helps" if mean > 0 else "hurts"
    else:
        p = (without[0] + with_[0]) / 2
        interval, half = "difference", difference_halfwidth(p, p, n_test)
    curves = {arm: [r["train_acc_curve"][-1] for r in runs if r["arm"] == arm and r["seed"] in seeds
                    and r.get("train_acc_curve")] for arm in CUTOUT_ARMS}
    train_acc = ({arm: sum(v) / len(v) for arm, v in curves.items()}
                 if all(len(v) == len(seeds) for v in curves.values()) else None)
    return {"seeds": seeds, "without": without, "with": with_, "differences": diffs, "mean_difference": mean,
            "interval": interval, "half": half, "t_half": t_half, "d_half": d_half, "verdict": verdict,
            "trained_epochs": sorted({r.get("epochs", cutout_check_recipe("with").epochs) for r in runs
                                      if r["seed"] in seeds}),
            "n_test": n_test, "train_acc": train_acc}

def cutout_check_markdown(payload: dict, reference: dict[int, float] | None = None) -> str:
    """The results page's table: per seed, the cpu preset's budget plan without and with cutout (flip + shift TTA, the
    preset's test-time mode) and their difference, then the paired verdict over the seeds with the smallest mean
    difference it could have told from noise. ``reference`` (seed → accuracy): the budget table's runs of the same
    plan, shown beside the "without" arm, which repeats them. The numbers come from :func:`cutout_check_findings`."""
    runs = payload.get("runs", [])
    found = cutout_check_findings(payload)
    seeds, n_test, trained = found["seeds"], found["n_test"], found["trained_epochs"]
    plan = cutout_check_recipe("with")
    ref = reference or {}
    length = (f"{plan.epochs} epochs, the first {plan.low_res_epochs} at {plan.low_res} px" if trained == [plan.epochs]
              else f"its plan of {plan.epochs} epochs, of which these runs trained "
                   f"{' or '.join(map(str, trained))} (a shortened run, e.g. the fast profile)")
    lines = [f"The cpu preset as notebook 03's 4-minute budget trains it on the measuring machine ({length}, "
             f"{plan.precision}), without and with "
             f"cutout {plan.cutout} px; flip + shift TTA. Each seed gives both arms the same initialisation and the "
             "same first epoch; from the second epoch on, the cutout draws shift the random stream, so the order and "
             "augmentations of the images differ.", "",
             f"| seed | without cutout | with cutout {plan.cutout} px | difference |"
             + (" the budget table's run of the same plan |" if ref else ""),
             "|---|---|---|---|" + ("---|" if ref else "")]
    for s, a, b in zip(seeds, found["without"], found["with"]):
        lines.append(f"| {s} | {100 * a:.2f} % | {100 * b:.2f} % | {100 * (b - a):+.2f} |"
                     + ((f" {100 * ref[s]:.2f} % |" if s in ref else " – |") if ref else ""))
    mean = found["mean_difference"]
    if found["interval"] == "paired":
        verdict = ("too small to tell from the noise (which says neither that cutout helps nor that it does not)"
                   if found["verdict"] == "noise" else f"larger than the noise: cutout {found['verdict']} this run")
        lines.append(f"\nMean difference over {len(seeds)} seeds: **{100 * mean:+.2f} points**, {verdict}. The "
                     f"paired test calls a mean difference real beyond ±{100 * found['half']:.2f} points: the "
                     f"larger of the seeds' 95 % t-interval (±{100 * found['t_half']:.2f}) and the interval of a "
                     f"difference of two accuracies on {n_test:,} images (±{100 * found['d_half']:.2f}).")
    else:
        lines.append(f"\nOne seed: a difference of two accuracies on {n_test:,} images is good to about "
                     f"±{100 * found['half']:.1f} points.")
    if found["train_acc"] is not None:
        lines.append("\nTraining accuracy in the last epoch (augmented images, mean over the seeds): "
                     + ", ".join(f"{arm} cutout {100 * v:.1f} %" for arm, v in found["train_acc"].items())
                     + ".")
    made: dict[tuple, list[dict]] = {}  # one invocation (command, commit, machine) -> its runs' records
    for r in runs:
        if r.get("made_by"):
            m = r["made_by"]
            made.setdefault((m["command"], m["commit"], m["device"], m["torch"]), []).append(m)
    for (command, commit, device, torch_version), records in sorted(made.items()):
        dates = sorted(m["date"] for m in records)
        when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        minutes = sum(m.get("seconds", 0) for m in records) / 60
        lines.append(f"\n*Made by `{command}` on {device}, torch {torch_version}, commit `{_short(commit)}`, {when}; "
                     f"{len(records)} run{'s' * (len(records) != 1)}, {minutes:.0f} min in all.*")
    return "\n".join(lines)
