"""Command line: ``python -m gapcourse {info,prepare-data,train,bench}`` (also installed as ``gapcourse``).

* ``info``          versions, device, profile, data source, cache folder.
* ``prepare-data``  decode and cache both CIFAR-10 splits now (e.g. before going offline).
* ``train``         train the course network with a preset, print the test accuracy, save a checkpoint.
* ``bench``         the speed/accuracy benchmark table (see :mod:`gapcourse.bench`).
* ``student-copies`` write notebooks/student/ from the solution notebooks (``--check``: only report drift).
* ``compare-heads``  notebook 04's experiment outside Jupyter: every head trained and measured, table written as
                    JSON, CSV and Markdown (see :mod:`gapcourse.experiments`).
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__


def _info(_args: argparse.Namespace) -> int:
    import platform

    import torch
    import torchvision

    from .config import CACHE_ENV, DATA_ENV, CacheError, cache_dir, profile
    from .device import pick_device
    from .train import native_precision

    print(f"gapcourse {__version__} | torch {torch.__version__} | torchvision {torchvision.__version__} | "
          f"Python {platform.python_version()}")
    problems = 0
    try:
        device = pick_device()
        precision = native_precision(device)
        print(f"precision used for training: {precision.mode} ({precision.reason})")
    except (ValueError, RuntimeError) as err:
        print(f"device: PROBLEM: {err}")
        problems += 1
    try:
        profile()
    except ValueError as err:
        print(f"profile: PROBLEM: {err}")
        problems += 1
    print(f"{DATA_ENV}={os.environ.get(DATA_ENV, '(unset: torchvision download)')}")
    try:
        print(f"cache ({CACHE_ENV}): {cache_dir()}")
    except CacheError as err:
        print(f"cache: PROBLEM: {err}")
        problems += 1
    return 1 if problems else 0


def _prepare(args: argparse.Namespace) -> int:
    from .config import profile
    from .data import load_cifar10

    full = profile("full", announce=False)
    for split in ("train", "test"):
        data = load_cifar10(split, source=args.source, profile=full)
        print(f"{data}  class counts {data.class_counts()}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    import torch

    from .checkpoints import checkpoint_dir, save_checkpoint
    from .config import profile
    from .data import load_cifar10
    from .device import pick_device, seed_everything
    from .models import HEADS, build_net
    from .train import evaluate, fit, pick_recipe

    prof = profile(args.profile)
    device = pick_device(args.device)
    recipe = pick_recipe(device, args.preset)
    if args.head not in HEADS:  # refused before any data is loaded
        raise ValueError(f"Unknown head {args.head!r}; expected one of {', '.join(HEADS)}.")
    if args.epochs is not None:  # the user's number, obeyed in every profile
        recipe = replace(recipe, epochs=args.epochs)
    generator = seed_everything(args.seed)
    model = build_net(args.head, width=recipe.width)
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    history = fit(model, train, test, recipe, device=device, generator=generator, profile=prof,
                  epochs=args.epochs)
    result = evaluate(model, test, device=device, recipe=recipe)
    print(f"test accuracy {result.accuracy:.2%} after {history.train_seconds:.0f} s of training "
          f"({len(history.epoch)} epochs, preset '{recipe.name}', head '{args.head}', {prof.name} profile)")
    out = args.output or checkpoint_dir() / f"cli_{args.head}_{recipe.name}_{prof.name}.pt"
    save_checkpoint(model.cpu(), out, history=asdict(history), recipe=recipe.describe(),
                    test_accuracy=result.accuracy, seed=args.seed)
    print(f"saved {out}")
    return 0 if torch.isfinite(torch.tensor(history.train_loss[-1])) else 1


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import profile
    from .data import load_cifar10
    from .device import pick_device
    from .experiments import REGIMES, RESULTS_FILE, check_names, compare_heads, conclusions, regime_data
    from .experiments import regime_recipe, results_markdown, train_or_load
    from .models import HEADS

    prof = profile(args.profile)
    device = pick_device(args.device)
    heads, regimes = args.heads or list(HEADS), args.regimes or list(REGIMES)
    check_names(heads, regimes)  # before any data is loaded
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    output = Path(args.output) if args.output else RESULTS_FILE
    payload = compare_heads(train, test, prof, device=device, heads=heads, seeds=args.seeds, regimes=regimes,
                            output=output)
    for regime in regimes:
        print(f"\n## {regime}: {REGIMES[regime].description}\n\n{results_markdown(payload, regime)}")
    print("\n" + "\n".join(f"* {line}" for line in conclusions(payload)))
    print(f"\nwritten: {output}")
    if args.export_weights:
        from .weights import export

        regime = REGIMES["augmented"]
        recipe = regime_recipe(regime, device)
        models = {h: train_or_load(h, recipe, prof, regime_data(regime, train), None, device=device, seed=0,
                                   progress=False)[0] for h in heads}
        manifest = export(models, test, {h: recipe for h in heads}, device=device,
                          command="python -m gapcourse compare-heads --export-weights")
        print(f"weights written: {manifest}")
    return 0


def _student(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .classroom import write_student_copies

    root = Path(args.root).resolve()
    try:
        changed = write_student_copies(root, check=args.check)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(root)))
    if not changed:
        print("student copies are up to date")
    return 1 if args.check and changed else 0


def _ablate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .ablation import RESULTS_FILE, ablation_markdown, run_ablation
    from .config import profile
    from .data import load_cifar10
    from .device import pick_device

    prof = profile(args.profile)
    device = pick_device(args.device)
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    if args.preset == "gpu":
        from .ablation import GPU_RESULTS_FILE, run_gpu_study

        output = Path(args.output) if args.output else GPU_RESULTS_FILE
        run_gpu_study(train, test, prof, device=device, output=output, seeds=tuple(args.seeds or (0, 1)),
                      only=tuple(args.only or ()))
        print(f"\nwritten: {output}")
        return 0
    output = Path(args.output) if args.output else RESULTS_FILE
    payload = run_ablation(train, test, prof, device=device, output=output)
    print("\n" + ablation_markdown(payload) + f"\n\nwritten: {output}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gapcourse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, profile, data source").set_defaults(run=_info)

    prep = sub.add_parser("prepare-data", help="decode and cache CIFAR-10 now")
    prep.add_argument("--source", help="local copy (default: $GAPCOURSE_DATA, else download)")
    prep.set_defaults(run=_prepare)

    train = sub.add_parser("train", help="train the course network with a preset")
    train.add_argument("--preset", help="cpu, gpu or plain (default: by device)")
    train.add_argument("--head", default="gap_mlp", help="gap_mlp (the seed), gap_linear, nin, flatten_fc, ...")
    train.add_argument("--epochs", type=_positive_int, help="override the preset's epochs (obeyed in every profile)")
    train.add_argument("--profile", help="fast or full (default: $GAPCOURSE_PROFILE, else full)")
    train.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", help="checkpoint path (default: in the cache folder)")
    train.set_defaults(run=_train)

    bench = sub.add_parser("bench", help="speed and accuracy table for the presets")
    bench.add_argument("--train", nargs="*", default=None,
                       help="presets to train to the end (default: the device's preset); throughput is "
                            "measured for every preset")
    bench.add_argument("--profile", help="fast or full (default: $GAPCOURSE_PROFILE, else full)")
    bench.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    bench.add_argument("--output", help="also write the table as Markdown to this file")
    bench.add_argument("--record", action="store_true",
                       help="also write gapcourse/results/bench_<device>.json with provenance (the README's table)")
    bench.set_defaults(run=_bench)

    compare = sub.add_parser("compare-heads", help="notebook 04's head comparison: every head, regime and seed")
    compare.add_argument("--heads", nargs="*", help="subset of heads (default: all)")
    compare.add_argument("--regimes", nargs="*", help="augmented and/or no_augmentation (default: both)")
    compare.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    compare.add_argument("--profile", help="fast or full (default: $GAPCOURSE_PROFILE, else full)")
    compare.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    compare.add_argument("--output", help="results file (default: gapcourse/results/heads.json); finished runs "
                                          "in it are kept and skipped")
    compare.add_argument("--export-weights", action="store_true",
                         help="also write the seed-0 augmented networks to gapcourse/weights/ with a manifest")
    compare.set_defaults(run=_compare)

    ablate = sub.add_parser("ablate", help="the cpu recipe's ablation: one trick at a time, then 3 seeds")
    ablate.add_argument("--profile", help="fast or full (default: $GAPCOURSE_PROFILE, else full)")
    ablate.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    ablate.add_argument("--output", help="results file (default: gapcourse/results/recipe_ablation.json)")
    ablate.add_argument("--preset", choices=["cpu", "gpu"], default="cpu",
                        help="cpu: the cpu recipe's ablation; gpu: the gpu preset's study (accuracy on this device)")
    ablate.add_argument("--seeds", nargs="+", type=int, help="gpu study: seeds of the final recipe (default: 0 1)")
    ablate.add_argument("--only", nargs="+", help="gpu study: only these steps (e.g. baseline cutout_epochs)")
    ablate.set_defaults(run=_ablate)

    student = sub.add_parser("student-copies", help="write notebooks/student/ from the solution notebooks")
    student.add_argument("--root", default=".", help="the course repository (default: here)")
    student.add_argument("--check", action="store_true", help="write nothing; exit 1 if a copy is out of date")
    student.set_defaults(run=_student)

    args = parser.parse_args(argv)
    from .checkpoints import CheckpointError
    from .config import CacheError
    from .data import DataError

    try:
        return args.run(args)
    except (DataError, CacheError, CheckpointError, ValueError) as err:
        # the user's data or files, or a bad setting (profile, device, head, preset...): one line says what to do
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-written was kept (caches and checkpoints are written atomically).",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
