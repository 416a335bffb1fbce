"""The course's committed measurements, read-only: the head comparison (notebook 04, :func:`load_heads`), the
budget table (notebook 03, :func:`load_table`) and the recipe ablation (notebook 06, :func:`load_ablation`), from
``gapcourse/results/``. The studies that write them live in :mod:`gapcourse.studies`; docs/RESULTS.md shows them
with their provenance (which command, machine and commit made each one), so the notebooks need not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
import json

from .canvas import CANVASES, CROP_SHIFTS, OFFSETS, RESIZED, TRANSLATE_CANVAS
from .config import RESULTS_DIR
from .models import ANY_SIZE_HEADS, HEADS
from .recipes import CPU_HALF_WIDTH, PRECISIONS, Recipe
from .regimes import REGIMES
from .stats import Stat, binomial_halfwidth, difference_halfwidth, mean_and_spread, paired_halfwidth
from .stats import UNPAIRED_WORDS, Verdict, unpack_correctness, verdict
from .stats import differs as stats_differs


HEADS_RESULTS = RESULTS_DIR / "heads.json"
BUDGET_TABLE_RESULTS = RESULTS_DIR / "budget_table.json"
ABLATION_RESULTS = RESULTS_DIR / "recipe_ablation.json"


def read_committed(path: str | Path, what: str, command: str, cost: str) -> dict:
    """One committed results file as a dict (its ``provenance`` and its ``runs`` or ``rows``). Raises
    ``FileNotFoundError`` naming the file and the command that makes it when this installation has none; a notebook
    checks ``path.exists()`` first where it can go on without it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No {what} at {path}: run `{command}` ({cost}), or reinstall the course to get the "
                                "committed file back.")
    return json.loads(path.read_text())

# --------------------------------------------------------------------------------------------------------------------
# The head comparison (notebook 04)

def runs_of(payload: dict, regime: str, head: str, profile: str | None = None) -> list[dict]:
    """The runs of one head in one regime that belong to the payload's experiment: the profile and the training
    data (SHA-256 of the whole training split) its provenance records, so runs on other data are never counted as
    more seeds of the same measurement."""
    prov = payload.get("provenance", {})
    profile = profile or prov.get("profile")
    split = prov.get("train_sha256")
    return [r for r in payload["runs"] if r["regime"] == regime and r["head"] == head
            and (profile is None or r.get("profile") == profile)
            and (split is None or r.get("split_sha256") == split)]

def stat(runs: list[dict], get: Callable[[dict], float | None]) -> tuple[float, float, int] | None:
    """(mean, spread = max − min, number of seeds) of a measurement over runs; None if a head cannot do it."""
    values = [get(r) for r in runs]
    if not values or any(v is None for v in values):
        return None
    mean, spread = mean_and_spread(values)
    return mean, spread, len(values)

def per_image(runs: list[dict], n_test: int) -> list[float] | None:
    """Each test image's share of ``runs`` (seeds) that got it right, from the runs' bit-packed ``test_correct``
    (:func:`gapcourse.stats.unpack_correctness`); None unless every run recorded it, on the same test split (one
    ``test_sha256``). Introduced in notebook 04 (the paired interval)."""
    if not runs or any(not r.get("test_correct") for r in runs) or len({r.get("test_sha256") for r in runs}) != 1:
        return None
    rows = []
    for r in runs:
        try:
            rows.append(unpack_correctness(r["test_correct"], n_test))
        except (ValueError, AttributeError, TypeError) as err:
            raise ValueError(f"The {r.get('regime')} run of {r.get('head')} (seed {r.get('seed')}) holds a damaged "
                             f"per-image result ('test_correct'): {err} Restore the results file it came from (for "
                             "the committed one: git checkout -- gapcourse/results/heads.json), or remove that run "
                             "and train it again.") from None
    return [sum(col) / len(rows) for col in zip(*rows)]

def paired_interval(runs_a: list[dict], runs_b: list[dict], n_test: int) -> float | None:
    """The per-image paired 95 % interval of the difference of two heads' mean test accuracies
    (:func:`gapcourse.stats.paired_halfwidth` on each image's share of seeds right), or None when either head's runs
    lack per-image results or the two were scored on different test splits: then only the unpaired interval, an
    upper bound, is left. Introduced in notebook 04."""
    a, b = per_image(runs_a, n_test), per_image(runs_b, n_test)
    if a is None or b is None or runs_a[0].get("test_sha256") != runs_b[0].get("test_sha256"):
        return None
    return paired_halfwidth(a, b)

def accuracy_verdict(runs_a: list[dict], runs_b: list[dict], n_test: int) -> Verdict:
    """Two heads' mean test accuracies (``test_acc``) compared: with the paired interval when both heads' runs
    recorded each image's result, else with the unpaired one (an upper bound). Introduced in notebook 04."""
    get = lambda r: r["test_acc"]  # noqa: E731
    return verdict(stat(runs_a, get), stat(runs_b, get), n_test, paired_interval(runs_a, runs_b, n_test))

def fmt(s: tuple[float, float, int] | None, scale: float = 100) -> str:
    if s is None:
        return "cannot run"
    mean, spread, n = s
    return f"{scale * mean:.1f} ± {scale * spread / 2:.1f}" if n > 1 else f"{scale * mean:.1f}"

# Parts of the comparison, one question each: each has its own table, picture and conclusions (notebook 04,
# docs/RESULTS.md).
PARTS = {
    "accuracy": ("augmented", "Clean accuracy and overfitting, with augmentation"),
    "size": ("augmented", "Any input size: native scale on a canvas against resized"),
    "translation": ("augmented", f"Translation on a {TRANSLATE_CANVAS} px canvas (nothing cropped)"),
    "crop-shift": ("augmented", "Crop-shift within the 32 px frame (pixels lost)"),
    "overfitting": ("no_augmentation", "Overfitting without augmentation"),
}

def columns_of(part: str) -> list[tuple[str, Callable[[dict], float | None]]]:
    if part == "accuracy":
        return [("test acc", lambda r: r["test_acc"]), ("train acc", lambda r: r["train_acc"]),
                ("train − test", lambda r: r["train_minus_test"])]
    if part == "size":
        return ([("at 32 px", lambda r: r["at_32"])]
                + [(f"canvas {s} px", lambda r, s=s: r["canvas"][str(s)]) for s in CANVASES]
                + [(f"resized {s} px", lambda r, s=s: r["resized"][str(s)]) for s in RESIZED])
    if part == "translation":
        return [(f"at ({d},{d})", lambda r, d=d: r["translated"][str(d)]) for d in OFFSETS]
    if part == "crop-shift":
        return [("at 32 px", lambda r: r["at_32"])] + [(f"crop-shift {d} px", lambda r, d=d: r["crop_shift"][str(d)])
                                                        for d in CROP_SHIFTS if d]
    if part == "overfitting":
        return [("train acc", lambda r: r["train_acc"]), ("test acc", lambda r: r["test_acc"]),
                ("train − test", lambda r: r["train_minus_test"])]
    raise ValueError(f"Unknown part {part!r}: expected one of {', '.join(PARTS)}.")

def results_markdown(payload: dict, regime: str = "augmented", part: str | None = None) -> str:
    """The measured table of one question (``part``, one of :data:`PARTS`): mean ± half the spread over seeds, in %.
    Without ``part``, every part of ``regime``, each under its own heading (never one 20-column table)."""
    if part is None:
        names = [p for p, (r, _) in PARTS.items() if r == regime]
        if not names:
            raise ValueError(f"Unknown regime {regime!r}: expected one of {', '.join(REGIMES)}.")
        if len(names) == 1:
            return results_markdown(payload, regime, names[0])
        return "\n\n".join(f"**{PARTS[p][1]}**\n\n" + results_markdown(payload, regime, p) for p in names)
    cols = columns_of(part)
    regime = PARTS[part][0]
    heads = [h for h in HEADS if runs_of(payload, regime, h)]
    if not heads:
        return f"(no runs in the {regime} regime)"
    if part in ("size", "translation"):  # the flatten heads cannot run: a row of "cannot run" says nothing new
        heads = [h for h in heads if h in ANY_SIZE_HEADS] or heads
    first = runs_of(payload, regime, heads[0])
    n_seeds = len(first)
    header = ["head", "head params", "seeds"] + [c for c, _ in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for h in heads:
        runs = runs_of(payload, regime, h)
        cells = [h, f"{runs[0]['head_params']:,}", str(len(runs))] + [fmt(stat(runs, f)) for _, f in cols]
        lines.append("| " + " | ".join(cells) + " |")
    note = f"\n\n\"±\" in the table: half the spread (max − min) over {n_seeds} seeds, around their mean, in %."
    if part in ("accuracy", "overfitting"):
        n_test = payload.get("provenance", {}).get("n_test", 10_000)
        acc = stat(first, lambda r: r["test_acc"])[0]
        note += (f" One test accuracy on {n_test:,} images is good to ±{100 * binomial_halfwidth(acc, n_test):.1f} "
                 f"points (95 %), a difference of two to ±{100 * difference_halfwidth(acc, acc, n_test):.1f} by the "
                 f"interval of a difference ({UNPAIRED_WORDS}, as every head here is). "
                 + _paired_note(payload, regime, heads, n_test))
    else:
        n = max(1, first[0].get("robustness_images", 1))
        note += (f" Measured on {n:,} test images, one view each: one accuracy near 70 % is good to "
                 f"±{100 * binomial_halfwidth(0.7, n):.1f} points (95 %), a difference of two to "
                 f"±{100 * difference_halfwidth(0.7, 0.7, n):.1f} by the interval of a difference "
                 f"({UNPAIRED_WORDS}, as every head here is; these tests keep no per-image results for the paired one).")
    return "\n".join(lines) + note

def _paired_note(payload: dict, regime: str, heads: list[str], n_test: int) -> str:
    """The footnote's sentence on the paired interval: between which heads it applies (both heads' runs recorded
    each image's result) and how wide it is there."""
    kept = [h for h in heads if per_image(runs_of(payload, regime, h), n_test) is not None]
    if len(kept) < 2:
        who = f"only {kept[0]}'s runs recorded" if kept else "no run here recorded"
        return (f"The paired interval (per image, same test images; narrower) needs both heads' per-image results: "
                f"{who} them.")
    widths = [w for i, a in enumerate(kept) for b in kept[i + 1:]
              if (w := paired_interval(runs_of(payload, regime, a), runs_of(payload, regime, b), n_test)) is not None]
    if not widths:  # per-image results, but on different test splits: nothing to pair
        return ("The paired interval (per image, same test images) needs two heads scored on the same test split: "
                f"{', '.join(kept)} recorded their per-image results on different ones.")
    span = f"±{100 * min(widths):.1f}" + (f" to ±{100 * max(widths):.1f}" if len(widths) > 1 else "")
    return (f"Between {', '.join(kept)}, whose runs recorded each image's result, the paired interval (per image, "
            f"same test images) applies instead: {span} points.")

def load_heads(path: str | Path = HEADS_RESULTS) -> dict:
    """The head comparison's results (``runs`` and ``provenance``) that notebook 04 reads in the full profile."""
    return read_committed(path, "head comparison", "python -m gapcourse compare-heads",
                          "full profile: 42 networks, hours on a CPU")

def differs(a: Stat | None, b: Stat | None, n_test: int) -> bool:
    """The course's difference rule (:func:`gapcourse.stats.differs`): real only when the means are further apart
    than the 95 % interval of a difference of two accuracies on ``n_test`` images and the seeds' half-spreads added."""
    return stats_differs(a, b, n_test)


# --------------------------------------------------------------------------------------------------------------------
# The budget table (notebook 03)

CONDITIONS = {
    "bf16": "bf16 forced",
    "fp32": "fp32 forced (as a CPU without native bf16 trains)",
    "one-thread": "one thread (a slower machine), precision as notebook 03 chooses it",
    "auto": "as notebook 03 runs it (precision timed when the CPU has native bf16)",
}

def load_table(path: str | Path = BUDGET_TABLE_RESULTS) -> dict:
    """The budget table's results (a dict with ``rows`` and ``provenance``); a clear error when there are none yet."""
    return read_committed(path, "budget table", "python -m gapcourse budget-table",
                          "full profile, on an otherwise idle machine: it trains 12 networks, about 45 minutes")


def width_of(row: dict) -> str:
    """The network width a row's recipe names (its ``width=`` field), as written there; "?" if it names none."""
    return next((part.split("=", 1)[1] for part in row.get("recipe", "").split(", ") if part.startswith("width=")),
                "?")

def rows_of_width(payload: dict, width: float) -> dict:
    """The table with only the rows of networks of ``width`` (notebook 03 compares the learner's run with rows of
    its own preset: the table also holds the half-width preset's rows, measured before the budget-recipe study)."""
    rows = [r for r in payload["rows"] if width_of(r) == str(width)]
    return {**payload, "rows": rows}


def course_runs(payload: dict, width: float, budget_s: float) -> list[dict]:
    """The budget table's runs of a network of ``width`` at ``budget_s`` seconds, fewest epochs first: what notebook
    03 sets the learner's own run beside."""
    return sorted((r for r in rows_of_width(payload, width)["rows"] if r["budget_s"] == budget_s),
                  key=lambda r: (r["epochs"], r["test_acc"]))


@dataclass(frozen=True)
class BudgetStep:
    """Two rows of one condition and width at consecutive budgets (notebook 03): what the longer budget added."""

    shorter: dict
    longer: dict
    n_test: int

    @property
    def gain(self) -> float:
        return self.longer["test_acc"] - self.shorter["test_acc"]

    @property
    def noise(self) -> float:
        """The interval of a difference of the two accuracies (95 %, :func:`gapcourse.stats.difference_halfwidth`)."""
        return difference_halfwidth(self.longer["test_acc"], self.shorter["test_acc"], self.n_test)

    def __str__(self) -> str:
        """E.g. "4 → 8 min: 5 → 12 epochs, 82.82% → 86.55%, +3.7 points, beyond the interval of a difference
        (±1.0, unpaired: an upper bound ...); one seed each": the verdict names its interval, and the one seed."""
        a, b = self.shorter, self.longer
        found = Verdict(self.gain, self.noise, paired=False)
        return (f"{a['budget_s'] / 60:g} → {b['budget_s'] / 60:g} min: {a['epochs']} → {b['epochs']} epochs, "
                f"{a['test_acc']:.2%} → {b['test_acc']:.2%}, {100 * self.gain:+.1f} points, {found}; one seed each "
                "(another seed moves each accuracy too)")


def budget_steps(payload: dict, width: float = 0.5, condition: str = "fp32") -> list[BudgetStep]:
    """Consecutive budgets of one condition and width, one seed each (the half-width network's fp32 rows by default:
    the same machine and arithmetic, only the budget changes), as :class:`BudgetStep` pairs."""
    rows = sorted((r for r in rows_of_width(payload, width)["rows"]
                   if r["condition"] == condition and r.get("seed", 0) == 0), key=lambda r: r["budget_s"])
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    return [BudgetStep(a, b, n_test) for a, b in zip(rows, rows[1:])]


# --------------------------------------------------------------------------------------------------------------------
# The recipe ablation (notebook 06)

# The cpu preset as it was before the ablation (86.8 % in 250 s): the starting point.
BASELINE = Recipe("cpu-v1", epochs=14, batch_size=256, lr=0.2, width=0.5, label_smoothing=0.1,
                  decay_norm_and_bias=True, ema=0.0, channels_last=True, tta="flip")

def steps() -> list[tuple[str, str, Recipe]]:
    """(key, what changed, recipe) for each cumulative step; the last one is the cpu preset."""
    final = CPU_HALF_WIDTH  # the cpu preset the ablation built (frozen: recipes.CPU_HALF_WIDTH)
    out = [("baseline", "first cpu preset: 14 epochs, label smoothing 0.1, decay on every weight", BASELINE)]
    r = replace(BASELINE, label_smoothing=final.label_smoothing)
    out.append(("label_smoothing", f"+ label smoothing {final.label_smoothing}", r))
    r = replace(r, decay_norm_and_bias=final.decay_norm_and_bias)
    out.append(("no_decay_norm_bias", "+ no weight decay on BatchNorm parameters and biases", r))
    r = replace(r, ema=final.ema)
    out.append(("ema", f"+ weight averaging (EMA, decay {final.ema} per step)", r))
    r = replace(r, epochs=16)
    out.append(("epochs", "+ 16 epochs instead of 14 (about 300 s at full resolution)", r))
    r = replace(r, epochs=final.epochs, low_res_epochs=final.low_res_epochs, low_res=final.low_res)
    out.append(("progressive_resizing", f"+ progressive resizing: the first {final.low_res_epochs} of the "
                                        f"{final.epochs} epochs on {final.low_res} px images (less time per epoch)", r))
    assert replace(r, name=final.name, tta=final.tta) == final, "the last step must be the half-width cpu preset"
    return out

# The cpu preset before notebook 03 had to fit in 6 minutes: four more epochs, the same share at low resolution.
LONGER_WHAT = "Longer variant (20 epochs, the first 10 on 24 px images: 25 % more epochs at each size)"

def longer_recipe() -> Recipe:
    """The last step trained for 20 epochs instead of 16 (what the extra minute of training is worth)."""
    return replace(steps()[-1][2], epochs=20, low_res_epochs=10)

def load_ablation(path: str | Path = ABLATION_RESULTS) -> dict:
    """The recipe ablation's results (``runs`` and ``provenance``) that notebook 06 reads."""
    return read_committed(path, "recipe ablation", "python -m gapcourse ablate",
                          "full profile: one network per step and three seeds of the last, hours on a CPU")

def experiment_runs(payload: dict) -> list[dict]:
    """The runs of the payload's own experiment: the profile and training data (SHA-256 fingerprint) its provenance
    records; runs on other data are never summarised with them."""
    prov = payload.get("provenance", {})
    return [r for r in payload["runs"] if r.get("profile") == prov.get("profile")
            and ("train_sha256" not in prov or r.get("train_sha256") == prov["train_sha256"])]

def described_at_any_precision(recipe: Recipe) -> set[str]:
    """The recipe's :meth:`Recipe.describe` at each precision: a recorded run names the precision it trained in."""
    return {replace(recipe, precision=p).describe() for p in PRECISIONS}

def ablation_markdown(payload: dict) -> str:
    """The two tables of docs/RESULTS.md: each trick's gain at seed 0, and the final recipe over its seeds."""
    runs = experiment_runs(payload)
    n_test = payload["provenance"].get("n_test", 10_000)
    lines = ["| step | test acc, flip TTA | gain | test acc, flip + shift TTA | single view | epochs |",
             "|---|---|---|---|---|---|"]
    previous = None
    for _, what, recipe in steps():
        r = next((r for r in runs if r["seed"] == 0 and r["recipe"] in described_at_any_precision(recipe)), None)
        if r is None:
            continue
        acc = r["test_acc_by_tta"]
        gain = "" if previous is None else f"{100 * (acc['flip'] - previous):+.2f}"
        lines.append(f"| {what} | {100 * acc['flip']:.2f} | {gain} | {100 * acc['flip_shift']:.2f} | "
                     f"{100 * acc['none']:.2f} | {r['epochs']} |")
        previous = acc["flip"]
    out = "\n".join(lines)
    means = []
    for label, recipe in (("Final cpu preset", steps()[-1][2]), (LONGER_WHAT, longer_recipe())):
        finals = sorted((r for r in runs if r["recipe"] in described_at_any_precision(recipe)),
                        key=lambda r: r["seed"])
        if not finals:
            continue
        accs = [r["test_acc_by_tta"]["flip_shift"] for r in finals]
        mean, spread = mean_and_spread(accs)
        means.append(mean)
        out += (f"\n\n{label}, flip + shift TTA, seeds {[r['seed'] for r in finals]}: "
                + ", ".join(f"{100 * a:.2f} %" for a in accs)
                + f"; mean **{100 * mean:.2f} %**, spread (max − min) {100 * spread:.2f} points.")
    if means:
        out += (f"\n\nOne accuracy on {n_test:,} test images is good to ±"
                f"{100 * binomial_halfwidth(means[0], n_test):.2f} points (95 %). A gain is a difference of two: "
                f"±{100 * difference_halfwidth(means[0], means[0], n_test):.2f} by the interval of a difference "
                f"({UNPAIRED_WORDS}; these runs kept no per-image results for the paired one).")
    return out
