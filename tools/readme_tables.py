"""Write the measured tables of docs/RESULTS.md from the committed results files, never by hand.

    python tools/readme_tables.py          # rewrite the generated sections of docs/RESULTS.md
    python tools/readme_tables.py --check  # exit 1 if a section differs from its results file (the tests run this)

A generated section sits between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``; each name
is one function below, reading one file under ``gapcourse/results`` or ``gapcourse/weights``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gapcourse.studies.ablation import CUTOUT_RESULTS_FILE, GPU_RESULTS_FILE, RESULTS_FILE as ABLATION_FILE, cutout_check_markdown, gpu_study_markdown
from gapcourse.measured import ablation_markdown
from gapcourse.studies.bench import table_from_record  # noqa: E402
from gapcourse.studies.budget_table import RESULTS_FILE as BUDGET_FILE, budget_markdown  # noqa: E402
from gapcourse.measured import rows_of_width  # noqa: E402
from gapcourse.measured import PARTS, results_markdown
from gapcourse.regimes import REGIMES
from gapcourse.studies.heads import RESULTS_FILE as HEADS_FILE, conclusions
from gapcourse.outputs import OutputError, guard, write_text  # noqa: E402
from gapcourse.config import RESULTS_DIR  # noqa: E402
from gapcourse.recipes import CPU_HALF_WIDTH  # noqa: E402
from gapcourse.studies.budget_recipe import RESULTS_FILE as BUDGET_RECIPE_FILE, study_markdown  # noqa: E402
from gapcourse.weights import MANIFEST  # noqa: E402

RESULTS_PAGE = ROOT / "docs" / "RESULTS.md"  # the page of measured tables (the README links to it)
PAGE_NAME = "docs/RESULTS.md"
SECTION = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
                     re.S)


class ResultsFileError(Exception):
    """A results file that cannot make its section of docs/RESULTS.md: named, with what to do."""


def _load(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsFileError(f"{path} is not a readable JSON results file ({err}); restore it with `git checkout -- "
                               f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` or remake it "
                               f"with the command its section of {PAGE_NAME} names.") from None
    if not isinstance(data, dict):
        raise ResultsFileError(f"{path} is not a results file (expected a JSON object, got a {type(data).__name__}); "
                               f"restore it from git or remake it with the command its section of {PAGE_NAME} names.")
    return data


def _commit(commit: str) -> str:
    """A short commit id, keeping the mark of uncommitted changes in the working tree (``+changes``)."""
    return commit[:10] + ("+changes" if commit.endswith("+changes") else "")


def _made_by(prov: dict) -> str:
    took = f", {prov['seconds'] / 60:.1f} min" if "seconds" in prov else ""
    return (f"*Made by `{prov['command']}` on {prov['device']}, torch {prov['torch']}, commit `{_commit(prov['commit'])}`, "
            f"{prov['date']}{took}.*")


def ablation() -> str:
    data = _load(ABLATION_FILE)
    return "(not measured yet)" if data is None else ablation_markdown(data) + "\n\n" + _made_by(data["provenance"])


def bench() -> str:
    data = _load(RESULTS_DIR / "bench_cpu.json")
    return "(not measured yet)" if data is None else table_from_record(data) + "\n\n" + _made_by(data["provenance"])


def gpu_study() -> str:
    data = _load(GPU_RESULTS_FILE)
    if data is None:
        return ("(not measured yet: `python -m gapcourse ablate --preset gpu` writes "
                "`gapcourse/results/gpu_preset_study.json`)")
    return gpu_study_markdown(data)  # a "Made by" line per run: runs may come from different sessions and commits


def cutout_check() -> str:
    data = _load(CUTOUT_RESULTS_FILE)
    if data is None:
        return ("(not measured yet: `python -m gapcourse ablate --preset cpu-cutout` writes "
                "`gapcourse/results/cpu_cutout_check.json`)")
    # the half-width preset's rows: the check trained that preset (the table also holds the 3/8-width preset's rows)
    budget_rows = rows_of_width(_load(BUDGET_FILE) or {"rows": []}, CPU_HALF_WIDTH.width)["rows"]
    reference = {r["seed"]: r["test_acc"] for r in budget_rows if r["condition"] == "auto" and r["budget_s"] == 240.0}
    return cutout_check_markdown(data, reference)  # a "Made by" line per invocation that added runs


def bench_cuda() -> str:
    data = _load(RESULTS_DIR / "bench_cuda.json")
    if data is None:
        return ("(no GPU measurement yet: `python -m gapcourse bench --record --verify-gpu` on a CUDA GPU writes "
                "`gapcourse/results/bench_cuda.json`)")
    return table_from_record(data) + "\n\n" + _made_by(data["provenance"])  # (the sync audits: in the table)


def budget() -> str:
    """The budget table, then every invocation that added rows to it (each row records its own, ``made_by``)."""
    data = _load(BUDGET_FILE)
    if data is None:
        return "(not measured yet)"
    runs: dict[tuple, list[str]] = {}  # one invocation (command, commit, machine) -> the dates of its rows
    for row in data["rows"]:
        made_by = row.get("made_by") or {"command": "(not recorded for this row)", "commit": "?", "device": "?",
                                         "torch": "?", "date": "?"}
        key = tuple(made_by[k] for k in ("command", "commit", "device", "torch"))
        runs.setdefault(key, []).append(made_by["date"])
    if len(runs) == 1:
        return budget_markdown(data) + "\n\n" + _made_by(data["provenance"])
    lines = [f"*Made by {len(runs)} runs, in turn:*", ""]
    for (command, commit, device, torch_version), dates in runs.items():
        when = min(dates) if min(dates) == max(dates) else f"{min(dates)} to {max(dates)}"
        lines.append(f"* `{command}` on {device}, torch {torch_version}, commit `{_commit(commit)}`, {when} "
                     f"({len(dates)} row{'s' * (len(dates) != 1)})")
    return budget_markdown(data) + "\n\n" + "\n".join(lines)


def budget_recipe() -> str:
    data = _load(BUDGET_RECIPE_FILE)
    if data is None:
        return ("(not measured yet: `python -m gapcourse budget-recipe` writes "
                "`gapcourse/results/budget_recipe.json`)")
    runs: dict[tuple, list[dict]] = {}  # one invocation (command, commit, machine) -> its runs
    for run in data["runs"]:
        made_by = run["made_by"]
        runs.setdefault(tuple(made_by[k] for k in ("command", "commit", "device", "torch")), []).append(run)
    lines = [f"*Made by {len(runs)} invocation{'s' * (len(runs) != 1)}, in turn:*", ""]
    for (command, commit, device, torch_version), made in runs.items():
        dates = sorted(r["made_by"]["date"] for r in made)
        when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        minutes = sum(r["seconds"] for r in made) / 60
        lines.append(f"* `{command}` on {device}, torch {torch_version}, commit `{_commit(commit)}`, {when} "
                     f"({len(made)} run{'s' * (len(made) != 1)}, {minutes:.0f} min with planning)")
    return study_markdown(data) + "\n\n" + "\n".join(lines)


def _heads(part: str, *, describe: bool = False, made_by: bool = False) -> str:
    """One question of the heads comparison: its table, then the conclusions the difference rule allows."""
    data = _load(HEADS_FILE)
    if data is None:
        return "(not measured yet)"
    regime = PARTS[part][0]
    head = f"**{regime}**: {REGIMES[regime].description}.\n\n" if describe else ""
    lines = "\n".join(f"* {line}" for line in conclusions(data, part))
    tail = "\n\n" + _heads_made_by(data) if made_by else ""
    return head + results_markdown(data, regime, part) + "\n\n" + lines + tail


def _heads_made_by(data: dict) -> str:
    """Who made the heads file's runs: those without their own ``made_by`` record as its provenance says (their
    minutes summed), then each later invocation (e.g. the seventh head, concat_linear) from its runs' records."""
    prov = data["provenance"]
    later: dict[tuple, list[dict]] = {}
    for run in data["runs"]:
        if "made_by" in run:
            later.setdefault(tuple(run["made_by"][k] for k in ("command", "commit", "device", "torch")), []).append(run)
    if not later:
        return _made_by(prov)
    first = [r for r in data["runs"] if "made_by" not in r]
    minutes = sum(r.get("seconds", r.get("train_seconds", 0.0)) for r in first) / 60
    lines = [f"*Made by `{prov['command']}` on {prov['device']}, torch {prov['torch']}, commit "
             f"`{_commit(prov['commit'])}`, {prov['date']}, {minutes:.1f} min ({len(first)} runs); runs added later, "
             "each with its own record:*", ""]
    for (command, commit, device, torch_version), made in later.items():
        dates = sorted(r["made_by"]["date"] for r in made)
        when = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
        took = sum(r.get("seconds", 0.0) for r in made) / 60
        lines.append(f"* `{command}` on {device}, torch {torch_version}, commit `{_commit(commit)}`, {when} "
                     f"({len(made)} run{'s' * (len(made) != 1)}, {took:.1f} min)")
    return "\n".join(lines)


def heads_accuracy() -> str:
    return _heads("accuracy", describe=True, made_by=True)


def heads_size() -> str:
    return _heads("size")


def heads_translation() -> str:
    return _heads("translation")


def heads_crop_shift() -> str:
    return _heads("crop-shift")


def heads_overfitting() -> str:
    return _heads("overfitting", describe=True)


def course_times() -> str:
    data = _load(RESULTS_DIR / "course_times.json")
    if data is None:
        return "(not measured yet)"
    lines = ["| notebook | run time | peak memory | headline |", "|---|---|---|---|"]
    for r in data["runs"]:
        lines.append(f"| {Path(r['notebook']).stem} | {r['seconds']:.0f} s | {r['peak_mb']:,.0f} MB | {r['headline']} |")
    total = sum(r["seconds"] for r in data["runs"])
    lines.append(f"| **all {len(data['runs'])}** | **{total / 60:.1f} min** | | |")
    return "\n".join(lines) + "\n\n" + _made_by(data["provenance"])


def weights() -> str:
    data = _load(MANIFEST)
    if data is None:
        return "(no weights shipped yet)"
    lines = ["| file | head | test accuracy (fp16 weights) | fp32 weights | size | SHA-256 |", "|---|---|---|---|---|---|"]
    for e in data["weights"]:
        lines.append(f"| `{e['file']}` | {e['head']} | {100 * e['test_acc']:.2f} % | "
                     f"{100 * e['test_acc_fp32_weights']:.2f} % | {e['bytes'] / 1024:,.0f} KB | `{e['sha256'][:12]}…` |")
    groups: dict[tuple, list[dict]] = {}  # heads exported together (one command, commit, machine) share a line
    for e in data["weights"]:
        groups.setdefault((e["command"], e["commit"], e["device"], e["torch"]), []).append(e)
    made = [_made_by(group[0]).replace("*Made by", f"*{', '.join(e['head'] for e in group)}: exported by", 1)
            for group in groups.values()]
    trained = sorted({(e["trained_by"]["command"], e["trained_by"]["commit"]) for e in data["weights"]
                      if "trained_by" in e})
    made += [f"*Trained by `{command}`, commit `{_commit(commit)}` (each such entry's `trained_by`).*"
             for command, commit in trained]
    return "\n".join(lines) + "\n\n" + "\n\n".join(made)


GENERATORS = {"ablation": ablation, "bench": bench, "heads-accuracy": heads_accuracy, "heads-size": heads_size,
              "heads-translation": heads_translation, "heads-crop-shift": heads_crop_shift,
              "heads-overfitting": heads_overfitting,
              "course-times": course_times, "budget": budget, "weights": weights, "gpu-study": gpu_study,
              "bench-cuda": bench_cuda, "cpu-cutout": cutout_check, "budget-recipe": budget_recipe}


def render(text: str) -> str:
    def fill(match: re.Match) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise KeyError(f"{PAGE_NAME} section {name!r} has no generator")
        try:
            body = GENERATORS[name]()
        except ResultsFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError) as err:
            raise ResultsFileError(f"{PAGE_NAME} section {name!r}: its results file lacks what the table needs "
                                   f"({type(err).__name__}: {err}); restore the file from git or remake it with "
                                   f"the command its section of {PAGE_NAME} names.") from None
        return match.group(1) + body.rstrip() + "\n" + match.group(4)

    return SECTION.sub(fill, text)


def marker_problems(text: str) -> list[str]:
    """What is wrong with the generated sections' markers: every section of :data:`GENERATORS` must be present
    exactly once, as a BEGIN line and its END line in that order, and no other marker may appear (a damaged or
    missing marker would otherwise let hand-edited numbers pass ``--check``)."""
    problems = []
    found = [m.group("name") for m in SECTION.finditer(text)]
    for name in GENERATORS:
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        if found.count(name) != 1 or text.count(begin) != 1 or text.count(end) != 1:
            problems.append(f"section {name!r}: {text.count(begin)} BEGIN and {text.count(end)} END markers, "
                            f"{found.count(name)} complete section(s); expected exactly one of each")
    marker = re.compile(r"<!-- (?:BEGIN|END) GENERATED: [\w-]+ -->")
    for number, line in enumerate(text.splitlines(), 1):
        if not (line.lstrip().startswith("<!--") and "GENERATED" in line.upper()):
            continue
        if not marker.fullmatch(line.strip()):
            problems.append(f"line {number}: a damaged marker {line.strip()[:80]!r}")
        elif line.split("GENERATED: ")[1].split(" ")[0] not in GENERATORS:
            problems.append(f"line {number}: a marker for an unknown section {line.strip()!r}")
    return problems


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print(f"usage: python tools/readme_tables.py [--check]\n  (no argument: rewrite {PAGE_NAME}'s generated "
              "sections from the results files; --check: exit 1 if they differ, change nothing)", file=sys.stderr)
        return 0 if argv in (["-h"], ["--help"]) else 2
    try:
        text = RESULTS_PAGE.read_text()
    except OSError as err:
        print(f"{RESULTS_PAGE} cannot be read ({err.strerror or err}): restore it with `git checkout -- {PAGE_NAME}`.",
              file=sys.stderr)
        return 1
    problems = marker_problems(text)
    if problems:
        print(f"{PAGE_NAME}'s generated-section markers are damaged or missing, so its tables cannot be checked: "
              + "; ".join(problems) + ". Restore the markers (see the git history), then run "
              "`python tools/readme_tables.py`.")
        return 1
    try:
        new = render(text)
    except ResultsFileError as err:
        print(err, file=sys.stderr)
        return 1
    if "--check" in argv:
        if new != text:
            print(f"{PAGE_NAME}'s generated tables differ from the results files: run "
                  "`python tools/readme_tables.py`")
            return 1
        print(f"{PAGE_NAME}'s generated tables match the results files.")
        return 0
    try:  # through the output guard: docs/RESULTS.md is this tool's own file; anything else is refused
        write_text(guard(RESULTS_PAGE, writer="readme-tables", kind="markdown", what="results page"), new)
    except (OutputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{PAGE_NAME}'s generated tables rewritten from the results files." if new != text else
          f"{PAGE_NAME}'s generated tables already matched the results files: unchanged.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
