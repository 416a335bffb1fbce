"""The head comparison behind notebook 04 and ``python -m gapcourse compare-heads``. Introduced in notebook 04;
notebook 05 uses the networks it ships (``gapcourse/weights``).

Every head of :data:`gapcourse.models.HEADS` is trained on the same body, with the same data and recipe, in two
regimes (:data:`REGIMES`) and with several seeds, so that every difference can be set against the noise:

* ``augmented``: the cpu recipe (random shift + mirror, label smoothing, weight averaging) on all 50 000 images;
  here the heads are compared on accuracy, on other input sizes (resized, and at native scale on larger canvases)
  and on translation (the image moved around a larger canvas, so nothing is cropped).
* ``no_augmentation``: no augmentation, no label smoothing, no weight averaging, on a 5 000-image subset (500 per
  class), trained until the networks memorise it: where the Network in Network paper (§4.6) measured overfitting.

Every finished network is appended to the results file at once (resumable), with its provenance.
"""

from __future__ import annotations

import hashlib
import json
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
from .provenance import RESULTS_DIR, provenance, write_json
from .stats import binomial_halfwidth, mean_and_spread
from .train import PRESETS, History, Recipe, evaluate, fit, predict_logits, resolve_precision

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
    """The recipe a regime trains with on ``device``: ``base`` (default: the cpu preset) with its precision resolved
    for the device, then the regime's changes."""
    base = base or PRESETS["cpu"]
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
    if not path.exists():
        return {"runs": []}
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}). Move it away to start afresh; nothing was changed.") \
            from None
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
    """
    check_names(heads, regimes)
    memory = {"runs": []}

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
               "n_train": len(data), "recipe": recipe.describe(), "train_sha256": data.fingerprint()}
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
        with _locked(output):  # read, add, write: several processes may share one results file
            payload = current()
            if not done(key, payload):
                payload["runs"].append(record)
            total = sum(run.get("seconds", run.get("train_seconds", 0.0)) for run in payload["runs"])
            payload["provenance"] = provenance(device=device, seconds=total, profile=profile.name,
                                               n_test=len(test), seconds_are="training + measuring, summed over runs",
                                               regimes={name: r.description for name, r in REGIMES.items()})
            if output is not None:
                write_json(output, payload)
            else:
                memory.update(payload)
    return current()


class _locked:
    """An exclusive lock on ``<path>.lock`` (POSIX ``flock``) for the duration of a read-modify-write."""

    def __init__(self, path: Path | None):
        self.path = None if path is None else Path(str(path) + ".lock")
        self.fh = None

    def __enter__(self):
        if self.path is not None:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "w")
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # the lock file stays: removing it could let two processes lock different files
        return False


# --------------------------------------------------------------------------------------------------------------------
# Summaries: means, spreads, and only the conclusions the spreads allow


def runs_of(payload: dict, regime: str, head: str, profile: str | None = None) -> list[dict]:
    profile = profile or payload.get("provenance", {}).get("profile")
    return [r for r in payload["runs"] if r["regime"] == regime and r["head"] == head
            and (profile is None or r.get("profile") == profile)]


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


def results_markdown(payload: dict, regime: str = "augmented") -> str:
    """One Markdown table per regime: mean ± half the spread over seeds, in %."""
    heads = [h for h in HEADS if runs_of(payload, regime, h)]
    if not heads:
        return f"(no runs in the {regime} regime)"
    first = runs_of(payload, regime, heads[0])[0]
    if regime == "augmented":
        cols = [("test acc", lambda r: r["test_acc"]), ("train − test", lambda r: r["train_minus_test"])]
        cols += [(f"resized {s}px", lambda r, s=s: r["resized"][str(s)]) for s in RESIZED]
        cols += [(f"canvas {s}px", lambda r, s=s: r["canvas"][str(s)]) for s in CANVASES]
        cols += [(f"at ({d},{d}) on {TRANSLATE_CANVAS}px", lambda r, d=d: r["translated"][str(d)]) for d in OFFSETS]
        cols += [(f"crop-shift {d}px", lambda r, d=d: r["crop_shift"][str(d)]) for d in CROP_SHIFTS if d]
    else:
        cols = [("train acc", lambda r: r["train_acc"]), ("test acc", lambda r: r["test_acc"]),
                ("train − test", lambda r: r["train_minus_test"])]
    header = ["head", "head params", "seeds"] + [c for c, _ in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for h in heads:
        runs = runs_of(payload, regime, h)
        cells = [h, f"{runs[0]['head_params']:,}", str(len(runs))] + [fmt(stat(runs, f)) for _, f in cols]
        lines.append("| " + " | ".join(cells) + " |")
    n_test = payload.get("provenance", {}).get("n_test", 10_000)
    acc = stat(runs_of(payload, regime, heads[0]), lambda r: r["test_acc"])
    note = (f"\n\nMean ± half the spread (max − min) over {first and len(runs_of(payload, regime, heads[0]))} seeds, "
            f"in %. One accuracy on {n_test:,} test images is itself good to "
            f"±{100 * binomial_halfwidth(acc[0], n_test):.1f} points (95 %)")
    if regime == "augmented":
        note += (f"; the size and translation columns use {first.get('robustness_images', 0):,} test images "
                 f"(±{100 * binomial_halfwidth(0.8, max(1, first.get('robustness_images', 1))):.1f} points at 80 %)")
    return "\n".join(lines) + note + "."


def differs(a: tuple[float, float, int] | None, b: tuple[float, float, int] | None, n_test: int) -> bool:
    """A difference is called real only when the means are further apart than both the seeds' spreads (half of
    each, added) and the binomial 95 % interval of a single accuracy."""
    if a is None or b is None:
        return False
    noise = max(a[1] / 2 + b[1] / 2, binomial_halfwidth((a[0] + b[0]) / 2, n_test))
    return abs(a[0] - b[0]) > noise


def conclusions(payload: dict) -> list[str]:
    """The statements the measured numbers support, written from them (notebook 04 and the README print these)."""
    prov = payload.get("provenance", {})
    n_test = prov.get("n_test", 10_000)
    out = []
    aug = {h: runs_of(payload, "augmented", h) for h in HEADS}
    aug = {h: r for h, r in aug.items() if r}
    if aug:
        acc = {h: stat(r, lambda x: x["test_acc"]) for h, r in aug.items()}
        best = max(acc, key=lambda h: acc[h][0])
        tied = [h for h in acc if not differs(acc[h], acc[best], n_test)]
        lower = [h for h in acc if h not in tied]
        out.append(f"Clean test accuracy (augmented regime): best {best} {100 * acc[best][0]:.1f} %; "
                   + (f"{', '.join(h for h in tied if h != best)} within the noise of it"
                      if len(tied) > 1 else "every other head measurably lower")
                   + (("; measurably lower: " + ", ".join(f"{h} {100 * acc[h][0]:.1f} %" for h in lower))
                      if lower and len(tied) > 1 else "") + ".")
        gap = [h for h in aug if h in ANY_SIZE_HEADS]
        c48 = {h: stat(aug[h], lambda x: x["canvas"]["48"]) for h in gap}
        r48 = {h: stat(aug[h], lambda x: x["resized"]["48"]) for h in gap}
        if gap:
            out.append("Any input size: the flatten heads cannot run at all on 40/48/64 px inputs. At native scale "
                       "on a 48 px canvas the global-pooling heads keep "
                       + ", ".join(f"{h} {100 * c48[h][0]:.1f} %" for h in gap)
                       + "; resized to 48 px (objects 1.5× larger) they fall to "
                       + ", ".join(f"{h} {100 * r48[h][0]:.1f} %" for h in gap)
                       + ". Running at any size is not recognising at any scale.")
            places = {h: [stat(aug[h], lambda x, d=d: x["translated"][str(d)])[0] for d in OFFSETS] for h in gap}
            n_robust = max(1, aug[gap[0]][0].get("robustness_images", 0))
            typical = sum(sum(v) for v in places.values()) / sum(len(v) for v in places.values())
            out.append(f"Translation on a {TRANSLATE_CANVAS} px canvas (nothing cropped): across the {len(OFFSETS)} "
                       f"places, accuracy ranges over "
                       + ", ".join(f"{h} {100 * min(v):.1f}–{100 * max(v):.1f} %" for h, v in places.items())
                       + f" (on {n_robust:,} test images, ±{100 * binomial_halfwidth(typical, n_robust):.1f} points "
                       f"at {100 * typical:.0f} %).")
            at32 = {h: stat(aug[h], lambda x: x["at_32"])[0] for h in gap}
            drop = {h: at32[h] - sum(v) / len(v) for h, v in places.items()}
            spread = {h: max(v) - min(v) for h, v in places.items()}
            if all(drop[h] > spread[h] for h in gap):
                out[-1] += (" Moving the image around the canvas changes accuracy less than putting it on a canvas at "
                            "all (" + ", ".join(f"{h} −{100 * drop[h]:.1f}" for h in gap) + " points from 32 px): "
                            "a likely reason: no training image had flat borders around its object.")
    noaug = {h: runs_of(payload, "no_augmentation", h) for h in HEADS}
    noaug = {h: r for h, r in noaug.items() if r}
    if noaug:
        gapm = {h: stat(r, lambda x: x["train_minus_test"]) for h, r in noaug.items()}
        test = {h: stat(r, lambda x: x["test_acc"]) for h, r in noaug.items()}
        flat = [h for h in noaug if h not in ANY_SIZE_HEADS]
        glob = [h for h in noaug if h in ANY_SIZE_HEADS]
        line = ("Overfitting without augmentation (train − test, points): "
                + ", ".join(f"{h} {100 * gapm[h][0]:.1f}" for h in noaug) + ". ")
        if flat and glob:
            best_flat = max(flat, key=lambda h: test[h][0])
            best_glob = max(glob, key=lambda h: test[h][0])
            if differs(test[best_glob], test[best_flat], n_test):
                winner = best_glob if test[best_glob][0] > test[best_flat][0] else best_flat
                line += (f"Best test accuracy: {winner} ({100 * test[winner][0]:.1f} % against "
                         f"{100 * min(test[best_glob][0], test[best_flat][0]):.1f} % for the best of the other kind), "
                         "a difference larger than the noise.")
            else:
                line += (f"The best global-pooling head ({best_glob}, {100 * test[best_glob][0]:.1f} %) and the best "
                         f"flatten head ({best_flat}, {100 * test[best_flat][0]:.1f} %) are within the noise.")
        out.append(line)
    return out
