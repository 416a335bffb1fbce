"""Command line: ``python -m gapcourse COMMAND`` (also installed as ``gapcourse``); every command that writes a file
asks :mod:`gapcourse.outputs` first.

* ``info``          versions, device, profile, data source, cache folder.
* ``prepare-data``  decode and cache both CIFAR-10 splits now (e.g. before going offline).
* ``train``         train the course network with a preset, print the test accuracy, save a checkpoint.
* ``bench``         the speed/accuracy benchmark table (see :mod:`gapcourse.studies.bench`).
* ``budget-table``  the cpu preset trained to time budgets, with bf16 or fp32 forced or one thread
                    (see :mod:`gapcourse.studies.budget_table`).
* ``budget-recipe`` the budget-recipe study for notebook 03's 4 minutes (see :mod:`gapcourse.studies.budget_recipe`).
* ``ablate``        the recipe studies: the cpu ablation, the gpu preset's study, the cpu-cutout check.
* ``student-copies`` write notebooks/student/ from the solution notebooks (``--check``: only report drift;
  ``--answers drop --out DIR``: a handout without the answer keys).
* ``grade``         run a class's student notebooks, each in its own kernel, and tabulate their exercises.
* ``compare-heads``  notebook 04's experiment outside Jupyter: every head trained and measured, table written as
                    JSON, CSV and Markdown (see :mod:`gapcourse.studies.heads`).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__


# The gpu study's steps (gapcourse.studies.ablation.gpu_steps; a test keeps the two lists equal), named here so that a wrong
# --only is refused before any data is loaded.
GPU_STUDY_STEPS = ("baseline", "cutout", "candidate")


def _info(_args: argparse.Namespace) -> int:
    import platform

    import torch
    import torchvision

    from .config import CACHE_ENV, DATA_ENV, CacheError, cache_dir, profile
    from .device import pick_device
    from .recipes import native_precision

    print(f"gapcourse {__version__} | torch {torch.__version__} | torchvision {torchvision.__version__} | "
          f"Python {platform.python_version()}")
    problems = 0
    try:
        device = pick_device()
        precision = native_precision(device)
        print(f"precision used for training: {precision.mode} ({precision.reason})")
        if precision.mode == "bf16" and device.type == "cpu":
            print("  with a time budget (train --budget, notebook 03) training times bf16 and fp32 on this CPU "
                  "first and keeps the one whose plan fits more epochs")
    except (ValueError, RuntimeError) as err:
        print(f"device: PROBLEM: {err}")
        problems += 1
    try:
        profile()
    except ValueError as err:
        print(f"profile: PROBLEM: {err}")
        problems += 1
    from .config import env_text

    raw, read = os.environ.get(DATA_ENV), env_text(DATA_ENV)
    print(f"{DATA_ENV}={raw!r}" + (f" (read as {read!r})" if read != raw else "") if raw is not None
          else f"{DATA_ENV}: unset (torchvision download)")
    try:
        print(f"cache ({CACHE_ENV}): {cache_dir()}")
    except CacheError as err:
        print(f"cache: PROBLEM: {err}")
        problems += 1
    return 1 if problems else 0


def _prepare(args: argparse.Namespace) -> int:
    from .config import profile
    from .data import load_cifar10

    from .config import CacheError

    full = profile("full", announce=False)
    uncached = []
    for split in ("train", "test"):
        data = load_cifar10(split, source=args.source, profile=full)
        print(f"{data}  class counts {data.class_counts()}")
        uncached += [f"{split}: {note[len('not cached: '):]}" for note in data.notes if note.startswith("not cached")]
    if uncached:  # the command's one job is the cache: say so and fail (exit 2)
        raise CacheError("nothing could be cached (" + "; ".join(uncached) + "). Point GAPCOURSE_CACHE at a writable "
                         "folder and run prepare-data again.")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import torch

    from .checkpoints import CheckpointError, checkpoint_dir, save_checkpoint
    from .config import profile
    from .data import load_cifar10
    from .device import pick_device, seed_everything
    from .models import HEADS, build_net
    from .outputs import keep_beside
    from .budget import fit_to_budget
    from .recipes import pick_recipe
    from .train import evaluate, fit

    prof = profile(args.profile)
    device = pick_device(args.device)
    recipe = pick_recipe(device, args.preset, budget_s=args.budget)
    if args.head not in HEADS:  # refused before any data is loaded
        raise ValueError(f"Unknown head {args.head!r}; expected one of {', '.join(HEADS)}.")
    if args.epochs is not None:  # the user's number, obeyed in every profile
        print(f"--epochs {args.epochs}: trains {args.epochs} epoch{'s' * (args.epochs != 1)} instead of the "
              f"recipe's {recipe.epochs}")
        recipe = replace(recipe, epochs=args.epochs)
    from .outputs import guard

    if args.output:  # refused before any data is loaded (a committed file, another kind of file, not writable)
        args.output = guard(args.output, writer="train", kind="checkpoint")
    generator = seed_everything(args.seed)
    model = build_net(args.head, width=recipe.width)
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    # seed, length and data in the default name: a 1-epoch run never replaces a longer one's checkpoint
    budget = getattr(args, "budget", None)
    length = f"{args.epochs or prof.epochs(recipe.epochs)}ep" if not budget else f"budget{budget:g}s"
    out = args.output or guard(checkpoint_dir() / (f"cli_{args.head}_{recipe.name}_{prof.name}_seed{args.seed}_"
                                                   f"{length}_{train.fingerprint()[:8]}.pt"),
                               writer="train", kind="checkpoint")  # before the training, not after it
    if recipe.budget_s is not None:  # --budget: as many epochs as fit; the precision it measured, and the plan
        history = fit_to_budget(model, train, test, recipe, device=device, generator=generator, profile=prof)
        recipe = history.plan.fixed_recipe(recipe)
        print(history.plan.outcome())  # (fit_to_budget printed the plan itself before training)
    else:
        history = fit(model, train, test, recipe, device=device, generator=generator, profile=prof,
                      epochs=args.epochs)
    result = evaluate(model, test, device=device, recipe=recipe)
    print(f"test accuracy {result.accuracy:.2%} after {history.train_seconds:.0f} s of training "
          f"({len(history.epoch)} epoch{'s' * (len(history.epoch) != 1)}, preset '{recipe.name}', head '{args.head}', {prof.name} profile)")
    meta = dict(history=asdict(history), recipe=recipe.describe(), test_accuracy=result.accuracy, seed=args.seed)
    try:
        save_checkpoint(model.cpu(), out, **meta)
    except CheckpointError as err:  # the trained network is kept beside (or in the cache folder), and said where
        kept = keep_beside(out, lambda where: save_checkpoint(model, where, **meta))
        raise CheckpointError(f"{err} The trained network is kept in {kept}: copy it where it belongs.") from None
    print(f"saved {out}")
    return 0 if torch.isfinite(torch.tensor(history.train_loss[-1])) else 1


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import profile
    from .data import load_cifar10
    from .device import pick_device
    from .regimes import REGIMES, check_names, regime_data
    from .studies.heads import RESULTS_FILE, compare_heads, conclusions
    from .regimes import regime_recipe, train_or_load
    from .measured import results_markdown
    from .models import HEADS

    prof = profile(args.profile)
    device = pick_device(args.device)
    heads, regimes = args.heads or list(HEADS), args.regimes or list(REGIMES)
    check_names(heads, regimes)  # before any data is loaded
    _check_output_early(args, "compare-heads")
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    from .outputs import guard
    from .studies.provenance import data_record, default_output
    from .weights import MANIFEST

    data_id = data_record(prof.name, train)
    output = Path(args.output) if args.output else default_output(RESULTS_FILE, data_id)
    if args.export_weights:  # the shipped networks are committed evidence too: refused before any training
        guard(MANIFEST, writer="export-weights", kind="results", what="weights manifest", data=data_id,
              fixed_by="--export-weights")
        from .studies.export import manifest_entries

        manifest_entries(MANIFEST)  # a damaged manifest is refused now, not after hours of training
    payload = compare_heads(train, test, prof, device=device, heads=heads, seeds=args.seeds, regimes=regimes,
                            output=output)
    for regime in regimes:
        print(f"\n## {regime}: {REGIMES[regime].description}\n\n{results_markdown(payload, regime)}")
    print("\n" + "\n".join(f"* {line}" for line in conclusions(payload)))
    print(f"\nwritten: {output}")
    if args.export_weights:
        from .studies.export import export

        regime = REGIMES["augmented"]
        recipe = regime_recipe(regime, device)
        models = {h: train_or_load(h, recipe, prof, regime_data(regime, train), None, device=device, seed=0,
                                   progress=False)[0] for h in heads}
        trained = {r["head"]: r["made_by"] for r in payload["runs"]  # the run each shipped network comes from
                   if r["regime"] == regime.name and r["seed"] == 0 and r["head"] in heads and "made_by" in r
                   and r.get("recipe") == recipe.describe()}
        manifest = export(models, test, {h: recipe for h in heads}, device=device,
                          command="python -m gapcourse " + " ".join(sys.argv[1:]), data=data_id, trained_by=trained)
        print(f"weights written: {manifest}")
    return 0


def _student(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .classroom.copies import shown, write_student_copies

    root = Path(args.root).resolve()
    skipped: list = []
    try:
        changed = write_student_copies(root, check=args.check, force=args.force, skipped=skipped,
                                       answers=args.answers, out=args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(("out of date: " if args.check else "wrote ") + shown(path, root))
    for path, cells in skipped:  # a learner's answers are never overwritten without --force
        print(f"skipped {shown(path, root)}: it holds cells that are not the handout's ({'; '.join(cells)}): "
              "a learner's answers, or an exercise changed in the solution. Nothing in it was changed; move the "
              "learner's copy elsewhere, or run again with --force to replace it.", file=sys.stderr)
    if not changed and not skipped:
        print("student copies are up to date")
    return 1 if skipped or (args.check and changed) else 0


def _ablate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .studies.ablation import RESULTS_FILE, run_ablation
    from .measured import ablation_markdown
    from .config import profile
    from .data import load_cifar10
    from .device import pick_device

    if args.preset == "cpu" and (args.seeds or args.only):
        print("--seeds and --only choose runs of the gpu study: add --preset gpu (--seeds also goes with --preset "
              "cpu-cutout); the cpu ablation runs its fixed steps, seeds 0, 1 and 2.", file=sys.stderr)
        return 2
    if args.preset == "cpu-cutout" and args.only:
        print("--only chooses steps of the gpu study; --preset cpu-cutout always trains both arms (without and with "
              "cutout) of each seed.", file=sys.stderr)
        return 2
    prof = profile(args.profile)
    device = pick_device(args.device)
    _check_output_early(args, "ablate")
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    from .studies.provenance import data_record, default_output

    data_id = data_record(prof.name, train)
    if args.preset == "gpu":
        from .studies.ablation import GPU_RESULTS_FILE, GPU_STUDY, gpu_study_markdown, run_gpu_study
        from .studies.runner import open_store

        output = Path(args.output) if args.output else default_output(GPU_RESULTS_FILE, data_id)
        before = len(open_store(output, GPU_STUDY, data_id, writer="ablate").read()["runs"])  # (checked first)
        payload = run_gpu_study(train, test, prof, device=device, output=output,
                                seeds=tuple(dict.fromkeys(args.seeds)) if args.seeds else None,
                                only=tuple(args.only or ()))
        if payload.get("runs"):
            print("\n" + gpu_study_markdown(payload))
        added = len(payload.get("runs", [])) - before
        print(f"\nwritten: {output} ({added} new run{'s' if added != 1 else ''})" if added > 0 else
              f"\nnothing new written to {output}: every run asked for was already there or skipped (see above)")
        if added <= 0 and args.only and not args.seeds:
            print("(--only without --seeds asks for the runs the whole study trains for those steps: seed 0, and the "
                  "candidate's seeds 0 and 1. For another seed add --seeds, e.g. --only baseline --seeds 1.)")
        return 0
    if args.preset == "cpu-cutout":
        from .studies.ablation import CUTOUT_RESULTS_FILE, cutout_check_markdown, run_cutout_check

        output = Path(args.output) if args.output else default_output(CUTOUT_RESULTS_FILE, data_id)
        payload = run_cutout_check(train, test, prof, device=device, output=output,
                                   seeds=tuple(args.seeds or (0, 1, 2)))
        print("\n" + cutout_check_markdown(payload) + f"\n\nwritten: {output}")
        return 0
    output = Path(args.output) if args.output else default_output(RESULTS_FILE, data_id)
    payload = run_ablation(train, test, prof, device=device, output=output)
    print("\n" + ablation_markdown(payload) + f"\n\nwritten: {output}")
    return 0


def _budget_table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .studies.budget_table import RESULTS_FILE, budget_markdown, check_conditions, run_budget_table
    from .config import profile
    from .data import load_cifar10
    from .device import pick_device
    from .studies.provenance import data_record, default_output

    check_conditions(args.conditions, args.budgets)  # before any data is loaded
    prof = profile(args.profile)
    device = pick_device(args.device)
    _check_output_early(args, "budget-table")
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    output = Path(args.output) if args.output else default_output(RESULTS_FILE, data_record(prof.name, train))
    payload = run_budget_table(train, test, prof, device=device, budgets=tuple(args.budgets),
                               conditions=tuple(args.conditions), seed=args.seed, output=output,
                               command=(f"python -m gapcourse budget-table --profile {prof.name} --budgets "
                                        + " ".join(f"{b:g}" for b in args.budgets) + " --conditions "
                                        + " ".join(args.conditions) + f" --seed {args.seed}"))
    print("\n" + budget_markdown(payload) + f"\n\nwritten: {output}")
    return 0


def _budget_recipe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import profile
    from .data import load_cifar10
    from .device import pick_device
    from .studies.provenance import data_record, default_output
    from .studies.budget_recipe import ADOPTED, RESULTS_FILE, candidates, run_study, study_markdown

    unknown = [c for c in args.candidates or [] if c not in candidates()]
    if unknown:
        raise ValueError(f"Unknown candidate(s) {unknown}; expected any of {list(candidates())}.")
    prof = profile(args.profile)
    device = pick_device(args.device)
    _check_output_early(args, "budget-recipe")
    keys = args.candidates or (list(candidates()) if args.stage == "screen" else ["current", ADOPTED])
    seeds = args.seeds or ([0] if args.stage == "screen" else [0, 1, 2])
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    output = Path(args.output) if args.output else default_output(RESULTS_FILE, data_record(prof.name, train))
    command = (f"python -m gapcourse budget-recipe --stage {args.stage} --candidates {' '.join(keys)} --seeds "
               f"{' '.join(map(str, seeds))} --precision {args.precision} --profile {prof.name}")
    payload = run_study(train, test, prof, device=device, plan=[(k, s) for s in seeds for k in keys], output=output,
                        precision=args.precision, command=command)
    print("\n" + study_markdown(payload) + f"\n\nwritten: {output}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .studies.bench import main as bench_main

    return bench_main(args)


def _grade(args: argparse.Namespace) -> int:
    from .classroom.grade import grade

    grade(args.submissions, timeout=args.timeout, csv_path=args.csv, profile=args.profile)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 (e.g. 240), got {text!r}") from None
    if not 1 <= value < 1e7:
        raise argparse.ArgumentTypeError(f"expected a number of seconds from 1 to 9,999,999 (e.g. 240), got {text}")
    return value


def _check_output_early(args: argparse.Namespace, writer: str) -> None:
    """A bad --output (a folder, an unwritable place, another command's committed file, a file that is not a results
    file) is refused before any data is loaded or downloaded; the checks that need the data's fingerprint come once
    it is loaded. ``args.output`` becomes the checked path (``~`` expanded, as every later message names it)."""
    if getattr(args, "output", None):
        from .studies.provenance import check_output

        args.output = str(check_output(args.output, writer=writer))


def _run_options(parser: argparse.ArgumentParser) -> None:
    """--profile and --device, which every command that loads data and trains takes."""
    parser.add_argument("--profile", help="fast or full (default: $GAPCOURSE_PROFILE, else full)")
    parser.add_argument("--device", help="cpu, cuda or mps (default: best available)")


def _output_file(text: str) -> str:
    """An output file's name (--output, grade's --csv): not empty or blank (which would silently mean the default,
    the current folder, or a file named ' ')."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"needs a file name (got {text!r}, which names no file)")
    return text.strip()


def _seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what NumPy's generator accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 (e.g. 0, 1, 2), got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 4,294,967,295, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (the tests walk it to find every option that names a file to write)."""
    parser = argparse.ArgumentParser(prog="python -m gapcourse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, profile, data source").set_defaults(run=_info)

    prep = sub.add_parser("prepare-data", help="decode and cache CIFAR-10 now")
    prep.add_argument("--source", help="local copy (default: $GAPCOURSE_DATA, else download)")
    prep.set_defaults(run=_prepare)

    train = sub.add_parser("train", help="train the course network with a preset")
    train.add_argument("--preset", help="cpu, gpu or plain (default: by device)")
    train.add_argument("--head", default="gap_mlp", help="gap_mlp (the seed), gap_linear, nin, flatten_fc, ...")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, help="override the preset's epochs (obeyed in every profile)")
    length.add_argument("--budget", type=_positive_seconds, metavar="SECONDS",
                        help="train as many epochs as fit this many seconds on this machine (calibration and "
                             "evaluation included; the fast profile still runs one epoch)")
    _run_options(train)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--output", type=_output_file, help="checkpoint path (default: in the cache folder)")
    train.set_defaults(run=_train)

    bench = sub.add_parser("bench", help="speed and accuracy table for the presets")
    bench.add_argument("--train", nargs="*", default=None,
                       help="presets to train to the end (default: the device's preset); throughput is "
                            "measured for every preset")
    _run_options(bench)
    bench.add_argument("--output", type=_output_file, help="also write the table as Markdown to this file")
    bench.add_argument("--record", action="store_true",
                       help="also write gapcourse/results/bench_<device>.json with provenance (a table of "
                            "docs/RESULTS.md); a fast-profile or synthetic run writes to the cache folder instead")
    bench.add_argument("--verify-gpu", action="store_true",
                       help="check a CUDA GPU: N steps under the sync debug mode, fit's step timed, the gpu preset "
                            "trained to the end (and forced fp16 on a bf16 GPU); with --record: bench_cuda.json")
    bench.add_argument("--dry-run", action="store_true",
                       help="with --verify-gpu: run its logic on this CPU with the CUDA parts faked (records nothing)")
    bench.set_defaults(run=_bench)

    table = sub.add_parser("budget-table", help="the cpu preset trained to time budgets under several conditions")
    table.add_argument("--budgets", nargs="+", type=_positive_seconds, default=[60.0, 120.0, 240.0, 480.0],
                       metavar="SECONDS", help="training budgets in seconds (default: 60 120 240 480)")
    table.add_argument("--conditions", nargs="+", default=["bf16", "fp32", "one-thread"],
                       help="bf16, fp32 (forced), one-thread, auto (default: bf16 fp32 one-thread)")
    table.add_argument("--seed", type=_seed, default=0)
    _run_options(table)
    table.add_argument("--output", type=_output_file,
                       help="results file (default: gapcourse/results/budget_table.json for a full-profile run on "
                            "CIFAR-10, else one in the cache folder); finished rows are skipped")
    table.set_defaults(run=_budget_table)

    recipe_study = sub.add_parser("budget-recipe", help="the budget-recipe study: candidates for notebook 03's "
                                                         "4 minutes, screened on seed 0, confirmed on seeds 0-2")
    recipe_study.add_argument("--stage", choices=["screen", "confirm"], default="screen",
                              help="screen (default): every candidate on seed 0; confirm: seeds 0 1 2")
    recipe_study.add_argument("--candidates", nargs="+", metavar="NAME",
                              help="candidates to train (default: all for screen, current and the adopted width0.375 "
                                   "for confirm); see gapcourse/studies/budget_recipe.py")
    recipe_study.add_argument("--seeds", nargs="+", type=_seed, help="seeds (default: the stage's)")
    recipe_study.add_argument("--precision", choices=["fp32", "auto"], default="fp32",
                              help="fp32 (default, forced: as a CPU without native bf16 trains) or auto (as "
                                   "notebook 03 chooses on this CPU)")
    _run_options(recipe_study)
    recipe_study.add_argument("--output", type=_output_file,
                              help="results file (default: gapcourse/results/budget_recipe.json for a full-profile "
                                   "run on CIFAR-10, else one in the cache folder); recorded runs are skipped")
    recipe_study.set_defaults(run=_budget_recipe)

    compare = sub.add_parser("compare-heads", help="notebook 04's head comparison: every head, regime and seed")
    compare.add_argument("--heads", nargs="*", help="subset of heads (default: all)")
    compare.add_argument("--regimes", nargs="*", help="augmented and/or no_augmentation (default: both)")
    compare.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    _run_options(compare)
    compare.add_argument("--output", type=_output_file,
                         help="results file (default: gapcourse/results/heads.json for a full-profile run on real "
                              "CIFAR-10, else a file in the cache folder); finished runs in it are kept and skipped")
    compare.add_argument("--export-weights", action="store_true",
                         help="also write the seed-0 augmented networks to gapcourse/weights/ with a manifest")
    compare.set_defaults(run=_compare)

    ablate = sub.add_parser("ablate", help="the recipe studies: the cpu ablation (one trick at a time, then 3 seeds), "
                                            "the gpu preset's study (--preset gpu), the cpu-cutout check")
    _run_options(ablate)
    ablate.add_argument("--output", type=_output_file,
                        help="results file (default: gapcourse/results/recipe_ablation.json, gpu_preset_study.json or "
                             "cpu_cutout_check.json for a full-profile run on real CIFAR-10, else a file in the cache "
                             "folder)")
    ablate.add_argument("--preset", choices=["cpu", "gpu", "cpu-cutout"], default="cpu",
                        help="cpu: the cpu recipe's ablation; gpu: the gpu preset's study (accuracy on this device); "
                             "cpu-cutout: the cpu preset's 4-minute plan without and with cutout, paired over seeds")
    ablate.add_argument("--seeds", nargs="+", type=_seed,
                        help="gpu study: seeds of the candidate recipe (default: 0 1), or with --only of each step "
                             "named there; cpu-cutout: seeds trained both ways (default: 0 1 2)")
    ablate.add_argument("--only", nargs="+", choices=GPU_STUDY_STEPS,
                        help="gpu study: only these steps (baseline: the gpu preset as it was; cutout: + cutout 12 px "
                             "and 36 epochs, 18 of them at 24 px; candidate: the cutout step + whitening and identity "
                             "filters at the start), each with every --seeds; without --seeds, their runs in the whole "
                             "study: baseline and cutout seed 0, the candidate seeds 0 and 1")
    ablate.set_defaults(run=_ablate)

    student = sub.add_parser("student-copies", help="write notebooks/student/ from the solution notebooks")
    student.add_argument("--root", default=".", help="the course repository (default: here)")
    student.add_argument("--check", action="store_true", help="write nothing; exit 1 if a copy is out of date")
    student.add_argument("--force", action="store_true",
                         help="also replace copies whose exercise cells differ from the handout (a learner's answers), "
                              "and copies made with the other --answers option")
    student.add_argument("--answers", choices=("keep", "drop"), default="keep",
                         help="the answer keys after each notebook's questions: keep them (default; the committed "
                              "copies) or drop them (with --out: notebooks/student/ keeps them)")
    student.add_argument("--out", metavar="DIR",
                         help="write the copies into DIR instead of notebooks/student/ (e.g. ~/handout; not inside "
                              "the course's own folders)")
    student.set_defaults(run=_student)

    grading = sub.add_parser("grade", help="run learners' student notebooks, each in its own kernel, and tabulate "
                                           "their exercises")
    grading.add_argument("submissions", nargs="+", help="submitted .ipynb files, or folders holding them")
    grading.add_argument("--timeout", type=float, default=600,
                         help="seconds each notebook may run (default: 600); each check then gets 30 more")
    grading.add_argument("--csv", type=_output_file,
                         help="also write the table here (one row per submission and exercise)")
    grading.add_argument("--profile", default="fast", choices=["fast", "full"],
                         help="GAPCOURSE_PROFILE for the notebooks (default: fast; the checks do not depend on it)")
    grading.set_defaults(run=_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .classroom.grade import dash_named

    argv = sys.argv[1:] if argv is None else list(argv)
    problem = dash_named(argv)  # `grade -h.ipynb`: argparse would take the file for its -h option
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    from .checkpoints import CheckpointError
    from .config import CacheError
    from .data import DataError
    from .device import DeviceError

    try:
        return args.run(args)
    except (DataError, CacheError, CheckpointError, DeviceError, ValueError) as err:
        # the user's data or files, or a bad setting (profile, device, head, preset...): one line says what to do
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-written was kept (caches and checkpoints are written atomically)."
              + (" The gpu study's finished epochs are saved: the same command goes on from the last one."
                 if args.command == "ablate" and getattr(args, "preset", None) == "gpu" else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
