"""The training-recipe ablation behind the README's table: ``python -m gapcourse ablate``. Introduced in notebook 03
(which names every trick of the recipe); its results file is ``gapcourse/results/recipe_ablation.json``.

Starting from the course's first cpu preset, one trick is added at a time, each run with the same seed, so each
row's gain is that trick's (within the noise: one accuracy on 10 000 test images is good to about ±0.6 points, see
:func:`gapcourse.stats.binomial_halfwidth`). Test-time augmentation changes no training, so every network is
evaluated with each test-time mode. The final recipe is then trained with two more seeds, and so is a longer variant
(20 epochs, the preset before notebook 03 had a 6-minute budget). Every finished network is written to the results
file at once, so an interrupted run resumes where it stopped (a run is identified by its recipe, seed and data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import hashlib
import json
import time

import torch

from ..budget import low_res_epochs_for
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
from ..outputs import read_object
from ..recipes import CPU_HALF_WIDTH, TTA_MODES, Recipe, resolve_precision
from ..stats import T95, binomial_halfwidth, difference_halfwidth, mean_and_spread, noise_of_difference, paired_halfwidths
from ..train import evaluate, fit
from .provenance import check_output, data_record, provenance, write_results


RESULTS_FILE = ABLATION_RESULTS

RUNS_KEYS = ("runs",)  # the top-level keys of a study's results file (and its provenance)

def _load(path: Path) -> dict:
    payload = read_object(Path(path), "ablation results file")  # ResultsError for a folder, bad JSON, a list...
    if payload is None:
        return {"runs": []}
    if not isinstance(payload.get("runs", []), list):
        raise ValueError(f"{path} has no 'runs' list: not a gapcourse ablation results file. Move it away.")
    return payload

def _train_and_measure(key: str, what: str, recipe: Recipe, seed: int, train: Cifar10Split, test: Cifar10Split,
                       profile: Profile, device: torch.device, progress: bool, resume: Path | None = None):
    """Train one run of a study (seeded as notebook 03 does) and evaluate it with every test-time mode. With
    ``resume`` (a file), the run saves its state after every epoch and goes on from it (:mod:`gapcourse.resume`)."""
    print(f"== {key} (seed {seed}): {what}", flush=True)
    if resume is not None and not resume.exists():
        print(f"   state saved after every epoch in {resume}: if the run is cut off, the same command goes on "
              "from there", flush=True)
    generator = seed_everything(seed)
    model = build_net(width=recipe.width)
    history = fit(model, train, test, recipe, device=device, generator=generator, profile=profile,
                  progress=progress, epochs=profile.epochs(recipe.epochs), resume=resume)
    tta_acc = {mode: evaluate(model, test, device=device, recipe=replace(recipe, tta=mode)).accuracy
               for mode in TTA_MODES}
    return history, tta_acc

def run_ablation(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                 output: Path = RESULTS_FILE, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> dict:
    """Train every step (seed 0), then the final recipe and the longer variant with ``seeds``; write each run to
    ``output`` as it ends, and skip every run already there (a run is identified by its seed, recipe, profile and
    training data: size and SHA-256 fingerprint). ``output`` is checked before any training and written through
    :func:`gapcourse.studies.provenance.write_results` (never the committed file from a fast or synthetic run)."""
    data_id = data_record(profile.name, train)
    output = check_output(output, data_id, own_run=lambda r: "step" in r and not _is_gpu_study_run(r),
                          study="the cpu recipe's ablation", writer="ablate", keys=RUNS_KEYS)
    payload = _load(output)
    runs = payload.setdefault("runs", [])
    plan = [(key, what, recipe, 0) for key, what, recipe in steps()]
    plan += [("final", "cpu preset, another seed", steps()[-1][2], s) for s in seeds if s != 0]
    plan += [("longer", LONGER_WHAT, longer_recipe(), s) for s in seeds]
    started = time.perf_counter()
    for key, what, recipe, seed in plan:
        recipe = replace(recipe, precision=resolve_precision(recipe, device).mode)
        ident = {"step": key, "seed": seed, "recipe": recipe.describe(), "profile": profile.name,
                 "n_train": len(train), "train_sha256": data_id["train_sha256"]}
        same_run = ("seed", "recipe", "profile", "n_train", "train_sha256")  # the step's label changes no network
        if any(all(run.get(k) == ident[k] for k in same_run) for run in runs):
            print(f"{key} (seed {seed}): already in {output.name}, skipped")
            continue
        history, tta_acc = _train_and_measure(key, what, recipe, seed, train, test, profile, device, progress)
        runs.append({**ident, "what": what, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
                     "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc})
        payload["provenance"] = provenance(device=device, seconds=time.perf_counter() - started,
                                           profile=profile.name, n_train=len(train), n_test=len(test))
        write_results(output, payload, data_id, writer="ablate")
    return payload

GPU_RESULTS_FILE = RESULTS_DIR / "gpu_preset_study.json"

def _is_gpu_study_run(run: dict) -> bool:
    """A run of the gpu study (its recipes are all named gpu…), not of the cpu ablation (also keyed by step) or the
    cpu-cutout check (keyed by arm): the studies never share a results file."""
    return "step" in run and "arm" not in run and str(run.get("recipe", "")).startswith("name=gpu")

# The study's first candidate (step "cutout"), one step that changes three things (the study cannot credit a gain
# to any one); measured with seed 0: 90.89 % against the baseline's 90.49 %, within the noise.
# * cutout 12 px, as airbench96 uses at this scale (Jordan 2024, arXiv 2404.00498). The motivation, not evidence that
#   it helps: in the baseline's curves (gpu_preset_study.json, seed 0) the gap between training accuracy (augmented
#   images, live weights) and one-view test accuracy (averaged weights) widened from 1.0 to 6.3 points over epochs
#   17-23 (89.3 → 95.6 % against 88.3 → 89.3 %): the network fits its training images faster than it generalises;
# * 36 epochs instead of 24, of which the first 18 train on 24 px images (progressive resizing, as the cpu preset):
#   in the half-width ablation (recipe_ablation.json) 8 of 16 epochs at 24 px gave 87.57 % against 87.63 % for 16 at
#   32 px, one seed each, within the noise, for 78 % of the arithmetic. 18 + 18 × (24/32)² ≈ 28 epochs' worth of
#   arithmetic, about 17 % more than the baseline's 24.
# (Its recipe keeps the name it was recorded under, "gpu-candidate": the recorded run and its resume file are named by
# the recipe; the step was called "candidate" when it ran, so its Made-by line says --only candidate.)
GPU_CUTOUT_STEP = {"name": "gpu-candidate", "cutout": 12, "epochs": 36, "low_res_epochs": 18}

# The candidate (step "candidate"): the cutout step, starting from data-aware weights (gapcourse.initialisation):
# the first conv's filters are patch-whitening filters, kept fixed (as airbench keeps them), and the other convs start
# with identity filters. Two changes in one step: the study cannot credit a gain to either alone. In airbench's
# ablation (KellerJordan/cifar10-zoo, airbench_ablations/README.md) these two cut the epochs its network (BatchNorm
# after every conv, 2×2 whitening) needs for 94 % from 35 to 18; that motivates them here, and predicts nothing for
# the seed network. A hint before choosing them: scratch runs of the cpu preset's 4-minute plan (seed 0, half width,
# 7 epochs; not committed, not reproducible from the repository) gave 84.92 % with fixed whitening + identity filters
# and 84.73 % with trainable whitening + identity filters, against 84.11 % with neither (cpu_cutout_check.json):
# +0.81 points, inside the ±1.02 that a difference of two accuracies on 10 000 images allows.
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
    output = check_output(output, data_id, own_run=_is_gpu_study_run, study="the gpu study", writer="ablate",
                          keys=RUNS_KEYS)
    steps_ = gpu_steps()
    if only and seeds is not None:  # the named steps, each with every seed given
        plan = [(key, what, recipe, s) for key, what, recipe in steps_ if key in only for s in seeds]
    else:  # the steps before the candidate with seed 0, the candidate with every seed (default 0 and 1) ...
        plan = [(key, what, recipe, 0) for key, what, recipe in steps_[:-1]]
        plan += [(steps_[-1][0], steps_[-1][1], steps_[-1][2], s) for s in (seeds or (0, 1))]
        plan = [p for p in plan if not only or p[0] in only]  # ... or those of the named steps
    started = time.perf_counter()
    for key, what, recipe, seed in plan:
        recipe = replace(recipe, precision=resolve_precision(recipe, device).mode)
        ident = {"step": key, "seed": seed, "recipe": recipe.describe(), "profile": profile.name,
                 "n_train": len(train), "train_sha256": data_id["train_sha256"]}
        same_run = ("seed", "recipe", "profile", "n_train", "train_sha256")
        recorded = lambda: any(all(run.get(k) == ident[k] for k in same_run)  # noqa: E731
                               for run in _load(output).get("runs", []))
        resume = resume_file(ident)
        if recorded():
            print(f"{key} (seed {seed}): already in {output.name}, skipped")
            if resume.exists() and (held := _claim(resume)) is not None:  # a state no process is using: left
                resume.unlink(missing_ok=True)  # by a run that ended between its results and its clean-up
                held.close()
            continue
        claim = _claim(resume)
        if claim is None:
            print(f"{key} (seed {seed}): another process is training this run (it holds {resume.name}.claim), "
                  "skipped; that process writes it to its own results file (the same command started in several "
                  "terminals trains different runs)")
            continue
        for other in sorted(resume.parent.glob(f"gpu-study-{key}-seed{seed}-*.pt")):
            if other != resume:
                print(f"   note: {other} holds a saved state of this step and seed from another recipe, precision "
                      "or data (e.g. started on a machine that picks another precision); it is left as it is, and "
                      "this run starts from epoch 1")
        if recorded():  # another process finished it between the check above and the claim
            claim.close()
            print(f"{key} (seed {seed}): already in {output.name}, skipped")
            continue
        try:  # the claim is held until the run is in the results file: no other process can record it twice
            _record_run(key, what, recipe, seed, ident, train, test, profile, device, progress, resume, output,
                        data_id, started)
        finally:
            claim.close()
    return _load(output)

def _record_run(key: str, what: str, recipe: Recipe, seed: int, ident: dict, train: Cifar10Split,
                test: Cifar10Split, profile: Profile, device: torch.device, progress: bool, resume: Path,
                output: Path, data_id: dict, started: float) -> None:
    """Train one run of the gpu study (resumable), then add it to ``output`` under the results file's lock and
    remove its saved state."""
    from ..outputs import locked

    run_started = time.perf_counter()
    history, tta_acc = _train_and_measure(key, what, recipe, seed, train, test, profile, device, progress,
                                          resume=resume)
    made_by = provenance(device=device, seconds=time.perf_counter() - run_started)
    run = {**ident, "what": what, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
           "threads": torch.get_num_threads(), "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc,
           "train_acc_curve": history.train_acc,
           "made_by": {k: made_by[k] for k in ("command", "commit", "device", "torch", "date", "seconds")},
           "pieces": history.pieces}
    try:
        with locked(output):
            payload = _load(output)
            payload.setdefault("runs", []).append(run)
            payload["provenance"] = provenance(device=device, seconds=time.perf_counter() - started,
                                               profile=profile.name, n_train=len(train), n_test=len(test),
                                               note="accuracy measured on a CPU with the same code and arithmetic "
                                                    "as on a GPU; time not measured on a GPU")
            write_results(output, payload, data_id, writer="ablate")
    except ValueError as err:  # ResultsError and a broken file: the trained run is not lost
        raise type(err)(f"{err} The trained run is kept in {resume}: once the results file is fixed or moved, the "
                        "same command records it without training again.") from None
    resume.unlink(missing_ok=True)  # the run is in the results file now

def _claim(resume: Path):
    """This process's claim on a run: an exclusive, non-blocking lock (POSIX ``flock``) on ``<resume file>.claim``,
    held while it trains the run; None if another process holds it. The lock file stays (see outputs.locked).
    (``fit`` holds ``<resume file>.lock`` itself, for any caller; this claim also covers the results check.)"""
    from ..resume import ResumeError, try_lock

    try:
        resume.parent.mkdir(parents=True, exist_ok=True)
        return try_lock(Path(str(resume) + ".claim"))
    except OSError as err:
        raise ResumeError(f"Cannot create or write in the study's resume folder {resume.parent} "
                          f"({type(err).__name__}: {err.strerror or err}). Set GAPCOURSE_CACHE to a writable "
                          "folder; nothing was trained.") from None

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
    """The README's table of the gpu study: one row per run (step, seed) with its precision, epochs and test
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
    for key, what, _ in gpu_steps():
        accs = list(accuracies_by_seed(runs, key).values())
        if len(accs) > 1:
            spread = mean_and_spread(accs)[1]
            lines.append(f"\n{what}, {len(accs)} seeds: mean **{mean_percent(accs, n_test)} %** "
                         f"(spread {100 * spread:.2f} "
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

def gpu_study_verdict(runs: list[dict], n_test: int) -> list[str]:
    """What the gpu study's runs show, as README lines (part of :func:`gpu_study_markdown`; ``runs`` carry their
    step): each step against the step above it and against the baseline, on the seeds both ran (one seed: the 95 %
    interval of a difference of two accuracies, which holds the test set's noise only; several: the paired test of
    :mod:`gapcourse.stats`); then the preset's mean over its seeds, and whether a candidate step has met
    :data:`GPU_PRESET_BAR`, or what a second seed of each would need."""
    keys = [key for key, _, _ in gpu_steps()]
    acc = {key: accuracies_by_seed(runs, key) for key in keys}
    pct = lambda x: f"{100 * x:.2f}"  # noqa: E731
    lines = ["", "What these runs show (flip + shift TTA; generated from the runs above):"]
    comparisons = [(key, ref) for i, key in enumerate(keys[1:], 1)
                   for ref in dict.fromkeys((keys[i - 1], "baseline"))]  # the step above it, and the baseline
    for key, ref in comparisons:
        seeds = sorted(set(acc[key]) & set(acc[ref]))
        if not seeds:
            continue
        a, b = [acc[key][s] for s in seeds], [acc[ref][s] for s in seeds]
        diff = sum(x - y for x, y in zip(a, b)) / len(seeds)
        head = f"- `{key}` against `{ref}`, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: " \
               f"{100 * diff:+.2f} points"
        if len(seeds) == 1:
            half = difference_halfwidth(a[0], b[0], n_test)
            lines.append(f"{head}, {'inside' if abs(diff) <= half else 'outside'} the 95 % interval of a difference "
                         f"of two accuracies on {n_test:,} images (±{100 * half:.2f})" + (
                ": too small to tell from the noise (which shows neither a gain nor its absence; one seed leaves out "
                "how much seeds differ)." if abs(diff) <= half else
                "; one seed leaves out how much seeds differ, so another seed must confirm it."))
            continue
        if len(seeds) - 1 in T95:
            t_half, d_half = paired_halfwidths(a, b, n_test)
            half = max(t_half, d_half)
            how = (f"the larger of the seeds' 95 % t-interval (±{100 * t_half:.2f}; paired by seed number, though "
                   f"the steps draw different random numbers) and the interval of a difference of two accuracies "
                   f"(±{100 * d_half:.2f})")
        else:  # more seeds than the t table holds: the seeds' half-spreads and the interval of a difference
            half = noise_of_difference((sum(a) / len(a), max(a) - min(a), len(a)),
                                       (sum(b) / len(b), max(b) - min(b), len(b)), n_test)
            how = f"the larger of the seeds' half-spreads added and the interval of a difference (±{100 * half:.2f})"
        lines.append(f"{head} (mean per-seed difference), " + (
            f"inside {how}: too small to tell from the noise." if abs(diff) <= half else
            f"outside {how}: a real difference."))
    if acc["baseline"]:
        values = list(acc["baseline"].values())
        spread = mean_and_spread(values)[1]
        lines.append(f"- The gpu preset as it ships (`baseline`): {mean_percent(values, n_test)} % over {len(values)} "
                     + (f"seeds (spread {100 * spread:.2f} points)." if len(values) > 1 else "seed."))
    candidates = [key for key in keys[1:] if acc[key]]
    bar = (f"The bar for a candidate to become the preset (a mean of at least {pct(GPU_PRESET_BAR)} % over at least "
           "two seeds, set before the runs)")
    met = [key for key in candidates if meets_gpu_bar(list(acc[key].values()), n_test)]
    if met:
        lines.append(f"- {bar} is met by " + ", ".join(
            f"`{key}` ({mean_percent(list(acc[key].values()), n_test)} % over {len(acc[key])} seeds)"
            for key in met) + ".")
    elif candidates:
        parts = []
        for key in candidates:
            values = list(acc[key].values())
            part = f"`{key}` {mean_percent(values, n_test)} % over {len(values)} seed{'s' if len(values) > 1 else ''}"
            if len(values) == 1:
                need = 2 * GPU_PRESET_BAR - values[0]
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

# The run notebook 03 makes: the cpu preset trained to its 4-minute budget. On the machine that measured the budget
# table (budget_table.json, condition "auto", 240 s, seeds 0-2) the plan was 7 epochs (the first 4 at 24 px) in fp32
# for every seed; the check trains exactly that plan (fixed, so that every machine checks the same runs).
CPU_CUTOUT_PLAN = {"epochs": 7, "precision": "fp32"}

CUTOUT_ARMS = ("without", "with")

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
    output = check_output(output, data_id, own_run=lambda r: "arm" in r, study="the cpu-cutout check",
                          writer="ablate", keys=RUNS_KEYS)
    started = time.perf_counter()
    for seed in seeds:
        for arm in CUTOUT_ARMS:
            recipe = cutout_check_recipe(arm)
            ident = {"arm": arm, "seed": seed, "recipe": recipe.describe(), "profile": profile.name,
                     "n_train": len(train), "train_sha256": data_id["train_sha256"]}
            if any(all(run.get(k) == v for k, v in ident.items()) for run in _load(output)["runs"]):
                print(f"{arm} cutout (seed {seed}): already in {output.name}, skipped")
                continue
            what = f"cpu preset, {recipe.epochs} epochs" + (f", cutout {recipe.cutout} px" if recipe.cutout else "")
            run_started = time.perf_counter()
            history, tta_acc = _train_and_measure(arm, what, recipe, seed, train, test, profile, device, progress)
            made_by = provenance(device=device, seconds=time.perf_counter() - run_started)
            payload = _load(output)
            payload["runs"].append({**ident, "epochs": len(history.epoch), "train_seconds": history.train_seconds,
                                    "test_acc_by_tta": tta_acc, "test_acc_curve": history.test_acc,
                                    "train_acc_curve": history.train_acc,
                                    "made_by": {k: made_by[k] for k in ("command", "commit", "device", "torch",
                                                                        "date", "seconds")}})
            payload["provenance"] = provenance(device=device, seconds=time.perf_counter() - started,
                                               profile=profile.name, n_train=len(train), n_test=len(test))
            write_results(output, payload, data_id, writer="ablate")
    return _load(output)

def cutout_check_markdown(payload: dict, reference: dict[int, float] | None = None) -> str:
    """The README's table: per seed, the cpu preset's budget plan without and with cutout (flip + shift TTA, the
    preset's test-time mode) and their difference, then the paired verdict over the seeds with the smallest mean
    difference it could have told from noise. ``reference`` (seed → accuracy): the budget table's runs of the same
    plan, shown beside the "without" arm, which repeats them."""
    from ..stats import paired_halfwidths

    runs = payload.get("runs", [])
    by = {(r["arm"], r["seed"]): r["test_acc_by_tta"]["flip_shift"] for r in runs}
    seeds = sorted(s for (arm, s) in by if arm == "without" and ("with", s) in by)
    if not seeds:
        raise ValueError("cutout_check_markdown needs at least one seed trained both without and with cutout, e.g. "
                         "from `python -m gapcourse ablate --preset cpu-cutout`.")
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    plan = cutout_check_recipe("with")
    ref = reference or {}
    trained = sorted({r.get("epochs", plan.epochs) for r in runs if r["seed"] in seeds})
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
    diffs = []
    for s in seeds:
        a, b = by[("without", s)], by[("with", s)]
        diffs.append(b - a)
        lines.append(f"| {s} | {100 * a:.2f} % | {100 * b:.2f} % | {100 * (b - a):+.2f} |"
                     + ((f" {100 * ref[s]:.2f} % |" if s in ref else " – |") if ref else ""))
    mean = sum(diffs) / len(diffs)
    if len(seeds) >= 2:
        without, with_ = [by[("without", s)] for s in seeds], [by[("with", s)] for s in seeds]
        t_half, d_half = paired_halfwidths(with_, without, n_test)
        if abs(mean) > max(t_half, d_half):  # what stats.paired_differs decides
            verdict = "larger than the noise: cutout " + ("helps" if mean > 0 else "hurts") + " this run"
        else:
            verdict = "too small to tell from the noise (which says neither that cutout helps nor that it does not)"
        lines.append(f"\nMean difference over {len(seeds)} seeds: **{100 * mean:+.2f} points**, {verdict}. The "
                     f"paired test calls a mean difference real beyond ±{100 * max(t_half, d_half):.2f} points: the "
                     f"larger of the seeds' 95 % t-interval (±{100 * t_half:.2f}) and the interval of a difference "
                     f"of two accuracies on {n_test:,} images (±{100 * d_half:.2f}).")
    else:
        p = (by[("without", seeds[0])] + by[("with", seeds[0])]) / 2
        lines.append(f"\nOne seed: a difference of two accuracies on {n_test:,} images is good to about "
                     f"±{100 * difference_halfwidth(p, p, n_test):.1f} points.")
    train_acc = {arm: [r["train_acc_curve"][-1] for r in runs if r["arm"] == arm and r["seed"] in seeds
                       and r.get("train_acc_curve")] for arm in CUTOUT_ARMS}
    if all(len(v) == len(seeds) for v in train_acc.values()):
        lines.append("\nTraining accuracy in the last epoch (augmented images, mean over the seeds): "
                     + ", ".join(f"{arm} cutout {100 * sum(v) / len(v):.1f} %" for arm, v in train_acc.items())
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
