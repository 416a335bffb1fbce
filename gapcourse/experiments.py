"""The head comparison behind notebook 04 and ``python -m gapcourse compare-heads``. Introduced in notebook 04;
notebook 05 uses the networks it ships (``gapcourse/weights``).

Every head of :data:`gapcourse.models.HEADS` is trained on the same body, with the same data and recipe, in two
regimes (:data:`REGIMES`) and with several seeds, so that every difference can be set against the noise:

* ``augmented``: the cpu recipe (random shift + mirror, label smoothing, weight averaging) on all 50 000 images;
  here the heads are compared on accuracy, on other input sizes (resized, and at native scale on larger canvases)
  and on translation (the image moved around a larger canvas, so nothing is cropped).
* ``no_augmentation``: no augmentation, no label smoothing, no weight averaging, on a 5 000-image subset (500 per
  class), trained until the networks memorise it: the setting of the Network in Network paper's head comparison
  (§4.6, CIFAR-10 without augmentation, which reports test error).

Every finished network is appended to the results file at once (resumable), with its provenance.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from .config import Profile
from .data import Cifar10Split, normalize
from .models import ANY_SIZE_HEADS, HEADS, CifarNet, build_net, count_parameters
from .outputs import locked
from .provenance import RESULTS_DIR, _read_object, check_output, data_record, provenance, write_results
from .stats import Stat, binomial_halfwidth, difference_halfwidth, mean_and_spread, noise_of_difference
from .stats import differs as stats_differs
from .recipes import CPU_HALF_WIDTH, PRESETS, Recipe, resolve_precision
from .train import History, evaluate, fit, predict_logits

RESULTS_FILE = RESULTS_DIR / "heads.json"
RESIZED = (24, 40, 48, 64)  # test images resized to these sides (the object's scale changes)
CANVASES = (40, 48, 64)  # test images at native scale, centred on a canvas of this side (the object's scale kept)
TRANSLATE_CANVAS = 48  # translation: the 32 px image placed at (d, d) on a 48 px canvas ...
OFFSETS = (0, 4, 8, 12, 16)  # ... for these d: from the top-left corner to the bottom-right one, nothing cropped
CROP_SHIFTS = (0, 2, 4, 8)  # the older test: moved within the 32 px frame, so the border is cut off
ROBUSTNESS_IMAGES = 2_000  # test images (200 per class) for the size and translation measurements
TRAIN_ACC_IMAGES = 10_000  # training images (1 000 per class) on which the clean training accuracy is measured


def architecture_fingerprint(head: str, width: float) -> str:
    """A short hash of the network's layer-by-layer description (``repr`` of the module): it changes whenever a
    layer of the body or the head changes, so a checkpoint of an older design is never loaded into a newer one."""
    return hashlib.sha256(repr(build_net(head, width=width)).encode()).hexdigest()[:12]


def checkpoint_path(head: str, recipe: Recipe, profile: Profile, train: Cifar10Split, seed: int = 0) -> Path:
    """Where the network for this head, recipe, profile, training data and seed is kept. The name changes with any
    of them, including the architecture and the exact training images (their SHA-256), so a network trained on
    other data (e.g. the synthetic stand-in) or with another head design is never loaded by mistake."""
    if not isinstance(train, Cifar10Split):
        raise TypeError(f"checkpoint_path needs the training split itself (to fingerprint its images), got "
                        f"{type(train).__name__}.")
    key = "|".join([head, recipe.describe(), profile.name, str(len(train)), str(seed), train.fingerprint(),
                    architecture_fingerprint(head, recipe.width)])
    tag = hashlib.sha1(key.encode()).hexdigest()[:10]
    return checkpoint_dir() / f"{head}_{recipe.name}_{profile.name}_{tag}.pt"


def train_or_load(head: str, recipe: Recipe, profile: Profile, train: Cifar10Split, test: Cifar10Split, *,
                  device: torch.device, seed: int = 0, progress: bool = True) -> tuple[CifarNet, History, bool]:
    """The trained network for ``head``: loaded if this exact run was saved before, else trained and saved.

    Returns ``(model, history, loaded)``. Seeding follows notebook 03, so the same head and recipe give the same
    network whichever notebook or command trains it first.
    """
    path = checkpoint_path(head, recipe, profile, train, seed)
    if path.exists():
        model, meta = load_checkpoint(path)
        if meta.get("train_sha256") == train.fingerprint():
            if progress:
                print(f"{head}: loaded {path.name} (delete it to train again)")
            return model.to(device), History(**meta["history"]), True
        print(f"{head}: {path.name} was trained on other data than this run's; training afresh.")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_net(head, width=recipe.width)
    if progress:
        print(f"{head}: training ({profile.epochs(recipe.epochs)} epochs, recipe '{recipe.name}')")
    history = fit(model, train, test, recipe, device=device, generator=generator, profile=profile,
                  progress=progress)
    save_checkpoint(model, path, history=asdict(history), recipe=recipe.describe(), seed=seed,
                    train_sha256=train.fingerprint(), train_source=train.source, synthetic=train.synthetic)
    return model, history, False


def shift_images(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Move each normalised image ``shift`` px right and ``shift`` px down within its own frame; the uncovered border
    gets 0 (the mean colour) and what leaves the frame is lost: a crop, not only a translation."""
    if shift == 0:
        return images
    out = torch.zeros_like(images)
    out[..., shift:, shift:] = images[..., :-shift, :-shift]
    return out


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of normalised N×3×H×W images to size×size (the objects' scale changes with it)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def place_on_canvas(images: torch.Tensor, side: int, top: int | None = None, left: int | None = None) -> torch.Tensor:
    """Normalised N×3×h×w images placed at (``top``, ``left``) on a ``side``×``side`` canvas of 0 (the mean colour,
    as in notebook 05); centred by default. The objects keep their trained scale and nothing is cropped."""
    n, c, h, w = images.shape
    top = (side - h) // 2 if top is None else top
    left = (side - w) // 2 if left is None else left
    if not (0 <= top <= side - h and 0 <= left <= side - w):
        raise ValueError(f"A {h}×{w} image at ({top}, {left}) does not fit on a {side}×{side} canvas.")
    canvas = images.new_zeros(n, c, side, side)
    canvas[:, :, top:top + h, left:left + w] = images
    return canvas


def accuracy_with(model: CifarNet, data: Cifar10Split, transform: Callable[[torch.Tensor], torch.Tensor], *,
                  device: torch.device, recipe: Recipe | None = None, batch_size: int = 500) -> float | None:
    """Test accuracy (one view) after applying ``transform`` to each normalised batch; ``None`` when the head
    cannot run on the transformed images (a flatten head at another size)."""
    correct = 0
    single = replace(recipe, tta="none") if recipe is not None else None
    try:
        for start in range(0, len(data), batch_size):
            x = transform(normalize(data.images[start:start + batch_size]))
            logits = predict_logits(model, x, device=device, recipe=single, batch_size=batch_size)
            correct += (logits.argmax(1) == data.labels[start:start + batch_size].cpu()).sum().item()
    except ValueError as err:
        if "built for" in str(err):  # CheckedFlatten's message: this head is tied to one input size
            return None
        raise
    return correct / len(data)


# --------------------------------------------------------------------------------------------------------------------
# Regimes


@dataclass(frozen=True)
class Regime:
    """How the heads are trained: which recipe changes, on how many images, for how many epochs."""

    name: str
    description: str
    per_class: int | None  # training images per class (None: all)
    epochs: int
    augment: bool

    def recipe(self, base: Recipe) -> Recipe:
        """``base`` with this regime's changes. Progressive resizing is always off: a flatten head cannot train on
        smaller images, and every head must get the same recipe."""
        common = dict(name=f"{base.name}-{self.name}", epochs=self.epochs, low_res_epochs=0)
        if self.augment:
            return replace(base, **common)
        return replace(base, **common, augment_padding=None, label_smoothing=0.0, ema=0.0, tta="none")


REGIMES = {
    "augmented": Regime("augmented", "the cpu recipe (random ±4 px shift + mirror, label smoothing 0.2, weight "
                                     "averaging, test-time flip + shift) on all 50 000 training images, 6 epochs",
                        per_class=None, epochs=6, augment=True),
    "no_augmentation": Regime("no_augmentation", "no augmentation, no label smoothing, no weight averaging, no "
                                                 "test-time augmentation; 5 000 training images (500 per class), "
                                                 "24 epochs", per_class=500, epochs=24, augment=False),
}


def check_names(heads: Sequence[str], regimes: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any unknown head or regime (the CLI calls this before loading any data)."""
    unknown = [h for h in heads if h not in HEADS] + [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"Unknown head or regime {unknown}: heads are {', '.join(HEADS)}; regimes "
                         f"{', '.join(REGIMES)}.")


def regime_recipe(regime: Regime, device: torch.device, base: Recipe | None = None) -> Recipe:
    """The recipe a regime trains with on ``device``: ``base`` (default: the half-width cpu preset the comparison was
    measured with, :data:`gapcourse.recipes.CPU_HALF_WIDTH`) with its precision resolved for the device, then the
    regime's changes."""
    base = base or CPU_HALF_WIDTH
    return regime.recipe(replace(base, precision=resolve_precision(base, device).mode))


def regime_data(regime: Regime, train: Cifar10Split) -> Cifar10Split:
    """The regime's training images: the first ``per_class`` of each class (all of them if fewer)."""
    if regime.per_class is None:
        return train
    return train.subset(min(regime.per_class, min(train.class_counts())))


def robustness_subset(test: Cifar10Split, n: int = ROBUSTNESS_IMAGES) -> Cifar10Split:
    per_class = max(1, min(n // len(test.classes), min(test.class_counts())))
    return test.subset(per_class)


# --------------------------------------------------------------------------------------------------------------------
# One run: train and measure


def measure(model: CifarNet, train: Cifar10Split, test: Cifar10Split, recipe: Recipe, regime: Regime, *,
            device: torch.device) -> dict:
    """Every number of one trained network: test accuracy on the whole test split (with and without the recipe's
    test-time augmentation), clean training accuracy on up to :data:`TRAIN_ACC_IMAGES` of its training images, and
    (augmented regime only) the size and translation tests on :data:`ROBUSTNESS_IMAGES` test images, one view each."""
    model = model.to(device).eval()
    single = replace(recipe, tta="none")
    seen = robustness_subset(train, TRAIN_ACC_IMAGES)  # images the network trained on (all of them if fewer)
    record = {
        "train_acc": evaluate(model, seen, device=device, recipe=single).accuracy,  # clean: no augmentation
        "test_acc": evaluate(model, test, device=device, recipe=recipe).accuracy,
        "test_acc_single_view": evaluate(model, test, device=device, recipe=single).accuracy,
    }
    record["train_minus_test"] = record["train_acc"] - record["test_acc_single_view"]
    if not regime.augment:
        return record
    sub = robustness_subset(test)
    acc = lambda transform: accuracy_with(model, sub, transform, device=device, recipe=recipe)  # noqa: E731
    record["robustness_images"] = len(sub)
    record["at_32"] = acc(lambda x: x)
    record["resized"] = {str(s): acc(lambda x, s=s: resize_images(x, s)) for s in RESIZED}
    record["canvas"] = {str(s): acc(lambda x, s=s: place_on_canvas(x, s)) for s in CANVASES}
    record["translated"] = {str(d): acc(lambda x, d=d: place_on_canvas(x, TRANSLATE_CANVAS, d, d)) for d in OFFSETS}
    record["crop_shift"] = {str(d): acc(lambda x, d=d: shift_images(x, d)) for d in CROP_SHIFTS}
    return record


def _load_results(path: Path) -> dict:
    payload = _read_object(Path(path), "heads results file")  # ResultsError for a folder, bad JSON, a JSON list...
    if payload is None:
        return {"runs": []}
    if not isinstance(payload.get("runs"), list):
        raise ValueError(f"{path} has no 'runs' list: not a gapcourse heads results file. Move it away.")
    return payload


def compare_heads(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                  heads: Sequence[str] = HEADS, seeds: Sequence[int] = (0, 1, 2),
                  regimes: Sequence[str] = tuple(REGIMES), base: Recipe | None = None,
                  output: Path | None = RESULTS_FILE, progress: bool = True) -> dict:
    """Train every (regime, head, seed) not yet in ``output`` and measure it; write each run as it finishes.

    Networks are trained (or loaded, see :func:`train_or_load`) with the seed set exactly as notebook 03 does.
    Returns the results payload (``{"provenance": ..., "runs": [...]}``). ``output=None`` keeps results in memory.
    A run is identified by head, regime, seed, profile, recipe and the training data's SHA-256 fingerprint (of the
    regime's images, ``train_sha256``, and of the whole split they come from, ``split_sha256``); ``output`` is
    checked before any training (:func:`gapcourse.provenance.check_output`: never the committed file from a fast or
    synthetic run, never another experiment's file) and written through :func:`gapcourse.provenance.write_results`.
    """
    check_names(heads, regimes)
    data_id = data_record(profile.name, train)
    if output is not None:
        output = check_output(output, data_id, own_run=lambda r: "head" in r and "regime" in r,
                              study="the head comparison", writer="compare-heads", keys=("runs",))
    memory = {"runs": [], "provenance": dict(data_id)}

    def current() -> dict:
        return _load_results(output) if output is not None else memory

    def done(key: dict, payload: dict) -> bool:
        return any(all(run.get(k) == v for k, v in key.items()) for run in payload["runs"])

    plan = [(REGIMES[r], h, s) for r in regimes for s in seeds for h in heads]
    bar = tqdm(plan, desc="heads × seeds × regimes", unit="network", disable=not progress)
    for regime, head, seed in bar:
        recipe = regime_recipe(regime, device, base)
        data = regime_data(regime, train)
        key = {"head": head, "regime": regime.name, "seed": seed, "profile": profile.name,
               "n_train": len(data), "recipe": recipe.describe(), "train_sha256": data.fingerprint(),
               "split_sha256": data_id["train_sha256"]}
        if done(key, current()):  # measured before, or by another process writing the same file
            continue
        bar.set_postfix_str(f"{regime.name} {head} seed {seed}")
        started = time.perf_counter()
        model, history, loaded = train_or_load(head, recipe, profile, data, None, device=device, seed=seed,
                                               progress=False)
        record = {**key, "head_params": count_parameters(model.head), "total_params": count_parameters(model),
                  "epochs": len(history.epoch), "train_seconds": history.train_seconds, "loaded": loaded}
        record.update(measure(model, data, test, recipe, regime, device=device))
        record["seconds"] = time.perf_counter() - started
        with locked(output):  # read, add, write: several processes may share one results file
            payload = current()
            if not done(key, payload):
                payload["runs"].append(record)
            total = sum(run.get("seconds", run.get("train_seconds", 0.0)) for run in payload["runs"])
            payload["provenance"] = provenance(device=device, seconds=total, profile=profile.name,
                                               n_test=len(test), seconds_are="training + measuring, summed over runs",
                                               regimes={name: r.description for name, r in REGIMES.items()})
            if output is not None:
                write_results(output, payload, data_id, writer="compare-heads")
            else:
                payload["provenance"].update(data_id)
                memory.update(payload)
    return current()


# --------------------------------------------------------------------------------------------------------------------
# Summaries: means, spreads, and only the conclusions the spreads allow


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


def fmt(s: tuple[float, float, int] | None, scale: float = 100) -> str:
    if s is None:
        return "cannot run"
    mean, spread, n = s
    return f"{scale * mean:.1f} ± {scale * spread / 2:.1f}" if n > 1 else f"{scale * mean:.1f}"


# Parts of the comparison, one question each: each has its own table, picture and conclusions (notebook 04, README).
PARTS = {
    "accuracy": ("augmented", "Clean accuracy and overfitting, with augmentation"),
    "size": ("augmented", "Any input size: native scale on a canvas against resized"),
    "translation": ("augmented", f"Translation on a {TRANSLATE_CANVAS} px canvas (nothing cropped)"),
    "crop-shift": ("augmented", "Crop-shift within the 32 px frame (pixels lost)"),
    "overfitting": ("no_augmentation", "Overfitting without augmentation"),
}


def _columns(part: str) -> list[tuple[str, Callable[[dict], float | None]]]:
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
    cols = _columns(part)
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
    note = f"\n\nMean ± half the spread (max − min) over {n_seeds} seeds, in %."
    if part in ("accuracy", "overfitting"):
        n_test = payload.get("provenance", {}).get("n_test", 10_000)
        acc = stat(first, lambda r: r["test_acc"])[0]
        note += (f" One test accuracy on {n_test:,} images is good to ±{100 * binomial_halfwidth(acc, n_test):.1f} "
                 f"points (95 %), a difference of two to ±{100 * difference_halfwidth(acc, acc, n_test):.1f}.")
    else:
        n = max(1, first[0].get("robustness_images", 1))
        note += (f" Measured on {n:,} test images, one view each: one accuracy near 70 % is good to "
                 f"±{100 * binomial_halfwidth(0.7, n):.1f} points (95 %), a difference of two to "
                 f"±{100 * difference_halfwidth(0.7, 0.7, n):.1f}.")
    return "\n".join(lines) + note


def differs(a: Stat | None, b: Stat | None, n_test: int) -> bool:
    """The course's difference rule (:func:`gapcourse.stats.differs`): real only when the means are further apart
    than the 95 % interval of a difference of two accuracies on ``n_test`` images and the seeds' half-spreads added."""
    return stats_differs(a, b, n_test)


def _pct(s: Stat | float) -> str:
    return f"{100 * (s[0] if isinstance(s, tuple) else s):.1f} %"


def _verdict(a: Stat, b: Stat, n: int) -> str:
    """'beyond the noise (±x)' or 'within the noise (±x)' for the difference of two measurements on n images."""
    word = "beyond" if differs(a, b, n) else "within"
    return f"{word} the noise (±{100 * noise_of_difference(a, b, n):.1f})"


def _accuracy_lines(aug: dict[str, list[dict]], n_test: int) -> list[str]:
    acc = {h: stat(r, lambda x: x["test_acc"]) for h, r in aug.items()}
    best = max(acc, key=lambda h: acc[h][0])
    tied = [h for h in acc if h != best and not differs(acc[h], acc[best], n_test)]
    lower = [h for h in acc if h != best and h not in tied]
    noise = 100 * difference_halfwidth(acc[best][0], acc[best][0], n_test)
    said = ([f"{', '.join(f'{h} {_pct(acc[h])}' for h in tied)} within the noise of it"] if tied else []) + \
        (["measurably lower: " + ", ".join(f"{h} {_pct(acc[h])}" for h in lower)] if lower else [])
    line = (f"Clean test accuracy (augmented regime): best {best} {_pct(acc[best])}; " + "; ".join(said)
            + f" (a difference must exceed ±{noise:.1f} points, the 95 % interval of a difference of two accuracies "
              f"on {n_test:,} images, and the seeds' spreads).")
    gaps = [stat(r, lambda x: x["train_minus_test"])[0] for r in aug.values()]
    return [line, f"With augmentation no head overfits much: train − test is {100 * min(gaps):.1f} to "
                  f"{100 * max(gaps):.1f} points."]


def _size_lines(aug: dict[str, list[dict]], glob: list[str]) -> list[str]:
    n = max(1, aug[glob[0]][0].get("robustness_images", 0))
    get = lambda h, kind, s: stat(aug[h], lambda x: x[kind][str(s)])  # noqa: E731
    at32 = {h: stat(aug[h], lambda x: x["at_32"]) for h in glob}
    side = TRANSLATE_CANVAS
    out = [f"Any input size: the flatten heads cannot run at all on {'/'.join(map(str, CANVASES))} px inputs; the "
           f"global-pooling heads run, but lose accuracy. At native scale on a {side} px canvas: "
           + ", ".join(f"{h} {_pct(get(h, 'canvas', side))} (−{100 * (at32[h][0] - get(h, 'canvas', side)[0]):.1f} "
                       f"points from 32 px)" for h in glob) + "."]
    parts = []
    for s in (c for c in CANVASES if c in RESIZED):
        better = [h for h in glob if differs(get(h, "canvas", s), get(h, "resized", s), n)
                  and get(h, "canvas", s)[0] > get(h, "resized", s)[0]]
        worse = [h for h in glob if differs(get(h, "canvas", s), get(h, "resized", s), n) and h not in better]
        tied = [h for h in glob if h not in better and h not in worse]
        bits = ([f"canvas ahead for {', '.join(better)}"] if better else []) + \
               ([f"resized ahead for {', '.join(worse)}"] if worse else []) + \
               ([f"within the noise for {', '.join(tied)}"] if tied else [])
        parts.append(f"at {s} px " + ", ".join(bits))
    out.append("Canvas (object at its trained scale) against resized (object larger), head by head on the same "
               f"{n:,} images: " + "; ".join(parts) + ". Running at any size is not recognising at any scale.")
    lo, hi = (CANVASES[-2], CANVASES[-1]) if len(CANVASES) > 1 else (None, None)
    if lo is not None:
        held = [h for h in glob if not differs(get(h, "canvas", lo), get(h, "canvas", hi), n)]
        fell = [h for h in glob if h not in held]
        change = lambda h: f"{h} {100 * get(h, 'canvas', lo)[0]:.1f} → {_pct(get(h, 'canvas', hi))}"  # noqa: E731
        out.append(f"From a {lo} to a {hi} px canvas (more background, the object unchanged): "
                   + (f"{', '.join(change(h) for h in held)} holds (within the noise)" if held else "no head holds")
                   + ("; " + ", ".join(change(h) for h in fell) + " fall" if fell else "")
                   + ". An average over the map is diluted by every background cell, a maximum is not: notebook 04 "
                     "(section 7) tests this with the shipped networks.")
    return out


def _translation_lines(aug: dict[str, list[dict]], glob: list[str]) -> list[str]:
    places = {h: [stat(aug[h], lambda x, d=d: x["translated"][str(d)])[0] for d in OFFSETS] for h in glob}
    n = max(1, aug[glob[0]][0].get("robustness_images", 0))
    typical = sum(sum(v) for v in places.values()) / sum(len(v) for v in places.values())
    line = (f"Translation on a {TRANSLATE_CANVAS} px canvas (nothing cropped): across the {len(OFFSETS)} places, "
            "accuracy ranges over " + ", ".join(f"{h} {100 * min(v):.1f}–{_pct(max(v))}" for h, v in places.items())
            + f" (a difference of two places is good to ±{100 * difference_halfwidth(typical, typical, n):.1f} "
              f"points on {n:,} images).")
    at32 = {h: stat(aug[h], lambda x: x["at_32"])[0] for h in glob}
    drop = {h: at32[h] - sum(v) / len(v) for h, v in places.items()}
    spread = {h: max(v) - min(v) for h, v in places.items()}
    if all(drop[h] > spread[h] for h in glob):
        line += (" Moving the image around the canvas changes accuracy less than putting it on a canvas at all ("
                 + ", ".join(f"{h} −{100 * drop[h]:.1f}" for h in glob) + " points from 32 px, on average over the "
                 "places).")
    return [line]


def _crop_lines(aug: dict[str, list[dict]], n: int) -> list[str]:
    d = max(CROP_SHIFTS)
    acc = {h: stat(r, lambda x: x["crop_shift"][str(d)]) for h, r in aug.items()}
    glob = [h for h in acc if h in ANY_SIZE_HEADS]
    flat = [h for h in acc if h not in ANY_SIZE_HEADS]
    line = (f"Crop-shift by {d} px ({100 * (1 - (32 - d) ** 2 / 32 ** 2):.0f} % of the image lost): "
            + ", ".join(f"{h} {_pct(acc[h])}" for h in acc) + ".")
    if glob and flat:
        worst_glob = min(glob, key=lambda h: acc[h][0])
        best_flat = max(flat, key=lambda h: acc[h][0])
        line += (f" The worst global-pooling head ({worst_glob}) against the best flatten head ({best_flat}): "
                 f"{100 * (acc[worst_glob][0] - acc[best_flat][0]):+.1f} points, "
                 f"{_verdict(acc[worst_glob], acc[best_flat], n)}.")
    return [line]


def _overfitting_lines(noaug: dict[str, list[dict]], n_test: int) -> list[str]:
    train = {h: stat(r, lambda x: x["train_acc"]) for h, r in noaug.items()}
    test = {h: stat(r, lambda x: x["test_acc"]) for h, r in noaug.items()}
    memorised = [h for h in noaug if train[h][0] >= 0.995]
    n_train = next(iter(noaug.values()))[0].get("n_train", 0)
    images = f"{n_train:,} " if n_train else ""
    out = []
    if memorised:
        out.append(f"Without augmentation, {', '.join(memorised)} reach {min(100 * train[h][0] for h in memorised):.1f}"
                   f" % training accuracy: {'every head lets' if len(memorised) == len(noaug) else 'these heads let'} "
                   f"the body memorise its {images}training images, so a global-pooling head does not by itself "
                   "prevent overfitting, and for these heads train − test is simply the test error.")
    ref = "gap_mlp" if "gap_mlp" in test else max(test, key=lambda h: test[h][0])
    for h in noaug:
        if h not in memorised:
            out.append(f"{h}'s smaller train − test ({100 * stat(noaug[h], lambda x: x['train_minus_test'])[0]:.1f} "
                       f"points) comes from its lower training accuracy ({_pct(train[h])}); its test accuracy "
                       f"({_pct(test[h])}) against {ref}'s ({_pct(test[ref])}): "
                       f"{_verdict(test[h], test[ref], n_test)}.")
    best = max(test, key=lambda h: test[h][0])
    line = f"Best test accuracy: {best} {_pct(test[best])}"
    others = [h for h in ([ref] if ref != best else []) + [max((h for h in test if h not in ANY_SIZE_HEADS
                                                               and h != best), key=lambda h: test[h][0], default=None)]
              if h is not None]
    for h in dict.fromkeys(others):
        line += (f"; against {h} ({_pct(test[h])}): {100 * (test[best][0] - test[h][0]):+.1f} points, "
                 f"{_verdict(test[best], test[h], n_test)}")
    out.append(line + ".")
    return out


def conclusions(payload: dict, part: str | None = None) -> list[str]:
    """The statements the measured numbers support, written from them with the difference rule (:func:`differs`):
    for one question (``part``, one of :data:`PARTS`) or for all of them. Notebook 04 and the README print these."""
    if part is not None and part not in PARTS:
        raise ValueError(f"Unknown part {part!r}: expected one of {', '.join(PARTS)} (or None for all).")
    wanted = list(PARTS) if part is None else [part]
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    aug = {h: r for h in HEADS if (r := runs_of(payload, "augmented", h))}
    noaug = {h: r for h in HEADS if (r := runs_of(payload, "no_augmentation", h))}
    glob = [h for h in aug if h in ANY_SIZE_HEADS]
    n_robust = max(1, aug[glob[0]][0].get("robustness_images", 0)) if glob else 1
    out = []
    for name in wanted:
        if name == "accuracy" and aug:
            out += _accuracy_lines(aug, n_test)
        elif name == "size" and glob:
            out += _size_lines(aug, glob)
        elif name == "translation" and glob:
            out += _translation_lines(aug, glob)
        elif name == "crop-shift" and aug:
            out += _crop_lines(aug, n_robust)
        elif name == "overfitting" and noaug:
            out += _overfitting_lines(noaug, n_test)
    return out


# --------------------------------------------------------------------------------------------------------------------
# When GAP is the wrong choice: dilution by background (notebook 04, section 7)

DILUTION_SIDE = 64  # the canvas on which the average-pooling heads fall and global max pooling holds
FILLS = ("mean colour", "reflected image", "noise")  # what surrounds the 32 px image on the canvas


def fill_canvas(images: torch.Tensor, side: int, fill: str, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalised N×3×32×32 ``images`` centred on a ``side``×``side`` canvas whose border is one of :data:`FILLS`:
    ``"mean colour"`` (0 after normalisation, :func:`place_on_canvas`), ``"reflected image"`` (the image mirrored
    outwards: the border carries the object's own texture) or ``"noise"`` (standard normal noise, texture of no
    class). Introduced in notebook 04, section 7."""
    n, _, h, w = images.shape
    pad = (side - h) // 2
    if side - h != 2 * pad or h != w:
        raise ValueError(f"fill_canvas centres square images with an even margin: {h}×{w} on {side} px does not fit. "
                         f"Use a side of {h} + an even number.")
    if fill == "mean colour":
        return place_on_canvas(images, side)
    if fill == "reflected image":
        if pad >= h:
            raise ValueError(f"A reflected border must be narrower than the image ({pad} ≥ {h} px): use a side below "
                             f"{3 * h}.")
        return F.pad(images, (pad, pad, pad, pad), mode="reflect")
    if fill == "noise":
        canvas = torch.randn(n, images.shape[1], side, side, generator=generator).to(images)
        canvas[..., pad:pad + h, pad:pad + w] = images
        return canvas
    raise ValueError(f"Unknown fill {fill!r}: expected one of {', '.join(FILLS)}.")


@dataclass
class Dilution:
    """What :func:`dilution_test` measured for one network (accuracies as fractions of ``n`` test images)."""

    head: str
    side: int
    n: int
    accuracy: dict[str, float]  # "32 px", each of FILLS, and "object cells only"
    blank_class: int  # the class the network gives a canvas with no object at all
    wrong_as_blank: float  # share of the wrong answers on the mean-colour canvas that are blank_class


def dilution_test(model: CifarNet, data: Cifar10Split, side: int = DILUTION_SIDE, *, batch_size: int = 250,
                  seed: int = 0) -> Dilution:
    """Test the dilution hypothesis on a trained global-pooling network (evaluation only, on the CPU): accuracy at
    32 px; on a ``side`` px canvas with each of :data:`FILLS` around the image; and with the head's global pooling
    restricted to the feature-map cells that cover the object ("object cells only": the head run on those cells of
    the mean-colour canvas's maps). Introduced in notebook 04, section 7."""
    if model.head_name not in ANY_SIZE_HEADS:
        raise ValueError(f"dilution_test needs a global-pooling head ({', '.join(ANY_SIZE_HEADS)}); "
                         f"{model.head_name!r} cannot run on a {side} px canvas.")
    model = model.cpu().float().eval()
    generator = torch.Generator().manual_seed(seed)
    hits = {k: 0 for k in ("32 px", *FILLS, "object cells only")}
    wrong = wrong_blank = 0
    with torch.no_grad():
        blank_class = int(model(torch.zeros(1, 3, side, side)).argmax(1))
        for start in range(0, len(data), batch_size):
            x = normalize(data.images[start:start + batch_size]).float()
            y = data.labels[start:start + batch_size]
            hits["32 px"] += int((model(x).argmax(1) == y).sum())
            for fill in FILLS:
                canvas = fill_canvas(x, side, fill, generator=generator)
                maps = model.body(canvas)
                pred = model.head(maps).argmax(1)
                hits[fill] += int((pred == y).sum())
                if fill == "mean colour":
                    stride = side // maps.shape[-1]
                    first, last = (side - x.shape[-1]) // 2, (side + x.shape[-1]) // 2
                    if first % stride or last % stride:
                        raise ValueError(f"The object's edges ({first}, {last} px) do not fall on the {stride} px "
                                         "grid of the feature map: choose a canvas side 32 + a multiple of 16.")
                    cells = slice(first // stride, last // stride)
                    hits["object cells only"] += int((model.head(maps[..., cells, cells]).argmax(1) == y).sum())
                    wrong += int((pred != y).sum())
                    wrong_blank += int(((pred != y) & (pred == blank_class)).sum())
    return Dilution(model.head_name, side, len(data), {k: v / len(data) for k, v in hits.items()}, blank_class,
                    wrong_blank / max(1, wrong))
