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

Every finished network is added to the results file at once (resumable), with its provenance, by the study
runner (:mod:`gapcourse.studies.runner`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import time

from tqdm.auto import tqdm
import torch

from ..canvas import CANVASES
from ..canvas import CROP_SHIFTS
from ..canvas import OFFSETS
from ..canvas import RESIZED
from ..canvas import TRANSLATE_CANVAS
from ..config import Profile
from ..data import Cifar10Split
from ..measured import HEADS_RESULTS
from ..measured import PARTS
from ..stats import UNPAIRED_WORDS
from ..stats import Verdict
from ..measured import accuracy_verdict
from ..measured import differs
from ..measured import runs_of
from ..measured import stat
from ..stats import verdict
from ..models import ANY_SIZE_HEADS, HEADS, count_parameters
from ..recipes import Recipe
from ..regimes import REGIMES
from ..regimes import check_names
from ..regimes import measure
from ..regimes import regime_data
from ..regimes import regime_recipe
from ..regimes import train_or_load
from ..stats import Stat, difference_halfwidth
from .provenance import data_record, provenance
from .runner import Run, Shape, open_store, run_plan


RESULTS_FILE = HEADS_RESULTS

SHAPE = Shape("heads results file", "the head comparison", "a JSON object with a 'runs' list of heads' runs",
              own=lambda run: "head" in run and "regime" in run)

def compare_heads(train: Cifar10Split, test: Cifar10Split, profile: Profile, *, device: torch.device,
                  heads: Sequence[str] = HEADS, seeds: Sequence[int] = (0, 1, 2),
                  regimes: Sequence[str] = tuple(REGIMES), base: Recipe | None = None,
                  output: Path | None = RESULTS_FILE, progress: bool = True) -> dict:
    """Train every (regime, head, seed) not yet in ``output`` and measure it; write each run as it finishes.

    Networks are trained (or loaded, see :func:`train_or_load`) with the seed set exactly as notebook 03 does.
    Returns the results payload (``{"provenance": ..., "runs": [...]}``). ``output=None`` keeps results in memory.
    A run is identified by head, regime, seed, profile, recipe and the training data's SHA-256 fingerprint (of the
    regime's images, ``train_sha256``, and of the whole split they come from, ``split_sha256``); ``output`` is
    checked before any training and written by the study runner (:mod:`gapcourse.studies.runner`: never the
    committed file from a fast or synthetic run, never another experiment's file; each run added under the file's
    lock, so several processes may share it). Each new run keeps its own ``made_by`` (command, commit, date, device,
    torch) and which test images it got right (``test_correct``, for the paired interval); the file's provenance
    describes its first runs and stays theirs when runs are added later (``later_runs``, ``seconds_all_runs``).
    """
    check_names(heads, regimes)
    data_id = data_record(profile.name, train)
    store = open_store(output, SHAPE, data_id, writer="compare-heads")
    bar = tqdm([(REGIMES[r], h, s) for r in regimes for s in seeds for h in heads], desc="heads × seeds × regimes",
               unit="network", disable=not progress)

    def plan():
        for regime, head, seed in bar:
            recipe = regime_recipe(regime, device, base)
            data = regime_data(regime, train)
            key = {"head": head, "regime": regime.name, "seed": seed, "profile": profile.name,
                   "n_train": len(data), "recipe": recipe.describe(), "train_sha256": data.fingerprint(),
                   "split_sha256": data_id["train_sha256"]}
            yield Run(key, f"{regime.name} {head} seed {seed}", spec=(regime, recipe, data))

    def train_one(run: Run) -> dict:
        regime, recipe, data = run.spec
        bar.set_postfix_str(run.label)
        started = time.perf_counter()
        model, history, loaded = train_or_load(run.identity["head"], recipe, profile, data, None, device=device,
                                               seed=run.identity["seed"], progress=False)
        record = {**run.identity, "head_params": count_parameters(model.head),
                  "total_params": count_parameters(model), "epochs": len(history.epoch),
                  "train_seconds": history.train_seconds, "loaded": loaded}
        record.update(measure(model, data, test, recipe, regime, device=device))
        record["seconds"] = time.perf_counter() - started
        made = provenance(device=device, seconds=record["seconds"])
        record["made_by"] = {k: made[k] for k in ("command", "commit", "date", "device", "torch")}
        return record

    def made_by(payload: dict) -> dict:
        total = sum(run.get("seconds", run.get("train_seconds", 0.0)) for run in payload["runs"])
        made = provenance(device=device, seconds=total, profile=profile.name, n_test=len(test),
                          seconds_are="training + measuring, summed over runs",
                          regimes={name: r.description for name, r in REGIMES.items()})
        earlier = payload.get("provenance") or {}
        if earlier.get("commit") and any("made_by" not in run for run in payload["runs"]):
            # runs without their own made_by were made as the earlier provenance says: keep it for them
            return {**earlier, "seconds_all_runs": round(total, 1), "later_runs": "runs with a made_by record "
                    "were added later; each run's made_by gives its own command, commit, date, device and torch"}
        return made

    return run_plan(store, plan(), train_one, provenance=made_by, quiet=True)

def _pct(s: Stat | float) -> str:
    return f"{100 * (s[0] if isinstance(s, tuple) else s):.1f} %"

def _difference(found: Verdict) -> dict:
    """A :class:`gapcourse.stats.Verdict` as data: whether the difference is ``real``, the ``noise`` it had to
    exceed, the ``interval`` of a difference and whether it is ``paired`` (per image, same test images) or unpaired
    (an upper bound here), and the ``verdict`` itself (its ``str()`` names the interval that decided)."""
    return {"real": found.real, "noise": found.noise, "interval": found.interval, "paired": found.paired,
            "verdict": found}

def _grouped(payload: dict) -> tuple[int, dict[str, list[dict]], dict[str, list[dict]], list[str]]:
    """(n_test, the augmented regime's runs by head, the no-augmentation regime's, the global-pooling heads that ran
    augmented)."""
    aug = {h: r for h in HEADS if (r := runs_of(payload, "augmented", h))}
    noaug = {h: r for h in HEADS if (r := runs_of(payload, "no_augmentation", h))}
    return (payload.get("provenance", {}).get("n_test", 10_000), aug, noaug,
            [h for h in aug if h in ANY_SIZE_HEADS])

def accuracy_findings(payload: dict) -> dict | None:
    """The clean-accuracy conclusion (augmented regime) as data: each head's test accuracy ``acc`` (mean, spread,
    seeds), the ``best`` head, the heads ``within_noise`` of it and those measurably ``lower`` (the difference rule,
    :func:`differs`), the ``noise`` (the 95 % interval of a difference of two accuracies at the best one on
    ``n_test`` images) and the range of train − test over the heads (``train_minus_test``: lowest, highest). None
    without augmented runs. :func:`conclusions` writes it out."""
    n_test, aug, _, _ = _grouped(payload)
    if not aug:
        return None
    acc = {h: stat(r, lambda x: x["test_acc"]) for h, r in aug.items()}
    best = max(acc, key=lambda h: acc[h][0])
    against = {h: accuracy_verdict(aug[best], aug[h], n_test) for h in acc if h != best}
    tied = [h for h in against if not against[h].real]
    gaps = [stat(r, lambda x: x["train_minus_test"])[0] for r in aug.values()]
    return {"n_test": n_test, "acc": acc, "best": best, "within_noise": tied,
            "lower": [h for h in against if h not in tied], "against": against,
            "noise": difference_halfwidth(acc[best][0], acc[best][0], n_test),
            "train_minus_test": (min(gaps), max(gaps))}

def _grouped_verdicts(heads: list[str], acc: dict, against: dict[str, Verdict]) -> str:
    """'h1 x %, h2 y % (the interval of a difference, ±1.0, unpaired: an upper bound ...)': heads judged by the same
    kind of interval share one parenthesis, with the range of its values."""
    groups: dict[tuple[bool, bool], list[str]] = {}
    for h in heads:
        v = against[h]
        groups.setdefault((v.spread > v.interval, v.paired), []).append(h)
    parts = []
    for (spread, paired), hs in groups.items():
        values = sorted({f"{100 * against[h].noise:.1f}" for h in hs}, key=float)
        span = f"±{values[0]}" + (f" to ±{values[-1]}" if len(values) > 1 else "")
        kind = (f"the seeds' spread, {span}" if spread else f"the paired interval, {span}, per image, same test images"
                if paired else f"the interval of a difference, {span}, {UNPAIRED_WORDS}")
        parts.append(f"{', '.join(f'{h} {_pct(acc[h])}' for h in hs)} ({kind})")
    return "; ".join(parts)

def _accuracy_lines(found: dict) -> list[str]:
    acc, best, tied, lower = found["acc"], found["best"], found["within_noise"], found["lower"]
    said = ([f"within the noise of it: {_grouped_verdicts(tied, acc, found['against'])}"] if tied else []) + \
        ([f"measurably lower: {_grouped_verdicts(lower, acc, found['against'])}"] if lower else [])
    line = (f"Clean test accuracy (augmented regime): best {best} {_pct(acc[best])}; " + "; ".join(said)
            + f". A difference must exceed the 95 % interval of a difference of two accuracies on "
              f"{found['n_test']:,} images (paired where both heads' runs recorded each image's result, otherwise "
              "unpaired) and the seeds' spreads.")
    low, high = found["train_minus_test"]
    return [line, f"With augmentation no head overfits much: train − test is {100 * low:.1f} to "
                  f"{100 * high:.1f} points."]

def size_findings(payload: dict) -> dict | None:
    """The any-input-size conclusions as data, for the global-pooling ``heads`` of the augmented regime (the flatten
    heads cannot run there), on ``images`` test images: each head's mean accuracy ``at_32`` and ``on_canvas`` (at
    native scale on the ``side`` px canvas); per size both tests share, which heads do better on a ``canvas`` than
    ``resized``, which worse (``resized``), which are ``tied`` (the difference rule, :func:`differs`); and the
    ``dilution`` from the second-largest canvas to the largest: the heads whose accuracy ``held`` (within the noise)
    and those that ``fell``, with each head's mean at both sizes (``acc``). None without such heads.
    :func:`conclusions` writes it out."""
    _, aug, _, glob = _grouped(payload)
    if not glob:
        return None
    n = max(1, aug[glob[0]][0].get("robustness_images", 0))
    get = lambda h, kind, s: stat(aug[h], lambda x: x[kind][str(s)])  # noqa: E731
    side = TRANSLATE_CANVAS
    canvas_vs_resized = {}
    for s in (c for c in CANVASES if c in RESIZED):
        better = [h for h in glob if differs(get(h, "canvas", s), get(h, "resized", s), n)
                  and get(h, "canvas", s)[0] > get(h, "resized", s)[0]]
        worse = [h for h in glob if differs(get(h, "canvas", s), get(h, "resized", s), n) and h not in better]
        canvas_vs_resized[s] = {"canvas": better, "resized": worse,
                                "tied": [h for h in glob if h not in better and h not in worse]}
    dilution = None
    if len(CANVASES) > 1:
        lo, hi = CANVASES[-2], CANVASES[-1]
        held = [h for h in glob if not differs(get(h, "canvas", lo), get(h, "canvas", hi), n)]
        dilution = {"from": lo, "to": hi, "held": held, "fell": [h for h in glob if h not in held],
                    "acc": {h: (get(h, "canvas", lo)[0], get(h, "canvas", hi)[0]) for h in glob}}
    return {"images": n, "heads": glob, "side": side, "at_32": {h: stat(aug[h], lambda x: x["at_32"])[0] for h in glob},
            "on_canvas": {h: get(h, "canvas", side)[0] for h in glob}, "canvas_vs_resized": canvas_vs_resized,
            "dilution": dilution}

def _size_lines(found: dict) -> list[str]:
    glob, n, side, on_canvas = found["heads"], found["images"], found["side"], found["on_canvas"]
    out = [f"Any input size: the flatten heads cannot run at all on {'/'.join(map(str, CANVASES))} px inputs; the "
           f"global-pooling heads run, but lose accuracy. At native scale on a {side} px canvas: "
           + ", ".join(f"{h} {_pct(on_canvas[h])} (−{100 * (found['at_32'][h] - on_canvas[h]):.1f} "
                       f"points from 32 px)" for h in glob) + "."]
    parts = []
    for s, said in found["canvas_vs_resized"].items():
        bits = ([f"canvas ahead for {', '.join(said['canvas'])}"] if said["canvas"] else []) + \
               ([f"resized ahead for {', '.join(said['resized'])}"] if said["resized"] else []) + \
               ([f"within the noise for {', '.join(said['tied'])}"] if said["tied"] else [])
        parts.append(f"at {s} px " + ", ".join(bits))
    out.append("Canvas (object at its trained scale) against resized (object larger), head by head on the same "
               f"{n:,} images: " + "; ".join(parts) + f" ({_rule_note(n)}). Running at any size is not recognising "
               "at any scale.")
    dilution = found["dilution"]
    if dilution is not None:
        held, fell = dilution["held"], dilution["fell"]
        change = lambda h: f"{h} {100 * dilution['acc'][h][0]:.1f} → {_pct(dilution['acc'][h][1])}"  # noqa: E731
        out.append(f"From a {dilution['from']} to a {dilution['to']} px canvas (more background, the object "
                   "unchanged): "
                   + (f"{', '.join(change(h) for h in held)} hold{'s' if len(held) == 1 else ''}" if held
                      else "no head holds")
                   + ("; " + ", ".join(change(h) for h in fell) + (" falls" if len(fell) == 1 else " fall") if fell
                      else "")
                   + f" ({_rule_note(n)}). An average over the map is diluted by every background cell, a maximum is "
                     "not: notebook 04 (section 7) tests this with the shipped networks.")
    return out

def _rule_note(n: int) -> str:
    """The interval behind the verdicts of the robustness tests (no per-image results kept there)."""
    return (f"verdicts against the larger of the interval of a difference on {n:,} images, {UNPAIRED_WORDS}, and "
            "the seeds' spread")

def _translation_lines(aug: dict[str, list[dict]], glob: list[str]) -> list[str]:
    places = {h: [stat(aug[h], lambda x, d=d: x["translated"][str(d)])[0] for d in OFFSETS] for h in glob}
    n = max(1, aug[glob[0]][0].get("robustness_images", 0))
    typical = sum(sum(v) for v in places.values()) / sum(len(v) for v in places.values())
    line = (f"Translation on a {TRANSLATE_CANVAS} px canvas (nothing cropped): across the {len(OFFSETS)} places, "
            "accuracy ranges over " + ", ".join(f"{h} {100 * min(v):.1f}–{_pct(max(v))}" for h, v in places.items())
            + f" (the interval of a difference of two places: ±{100 * difference_halfwidth(typical, typical, n):.1f}"
              f" points on {n:,} images, {UNPAIRED_WORDS}).")
    at32 = {h: stat(aug[h], lambda x: x["at_32"])[0] for h in glob}
    drop = {h: at32[h] - sum(v) / len(v) for h, v in places.items()}
    spread = {h: max(v) - min(v) for h, v in places.items()}
    noise = {h: difference_halfwidth(max(v), min(v), n) for h, v in places.items()}
    clear = [h for h in glob if drop[h] - spread[h] > noise[h]]  # on the means over seeds
    # The statistic (drop − range) weighs six accuracies and picks a max and a min, so one difference's interval
    # understates its noise: a head counts only when every seed's own statistic clears that interval too.
    less = [h for h in clear if all(_drop_minus_range(r) > _range_noise(r, n) for r in aug[h])]
    edge = [h for h in clear if h not in less]
    rest = [h for h in glob if h not in clear]
    pairs = lambda hs: ", ".join(f"{100 * drop[h]:.1f} against {100 * spread[h]:.1f}" for h in hs)  # noqa: E731
    if less:
        values = sorted({f"{100 * noise[h]:.1f}" for h in less}, key=float)
        line += (f" Moving the image around the canvas changes accuracy less than putting it on a canvas at all for "
                 f"{', '.join(less)} (the drop from 32 px, averaged over the places, against the range between the "
                 f"places: {pairs(less)} points), by more than the interval of a difference of two places (±"
                 + " to ±".join(dict.fromkeys([values[0], values[-1]])) + f", {UNPAIRED_WORDS}), on the means over "
                 "seeds and in every seed")
        line += "".join(f"; {h} is at the edge ({pairs([h])}: {100 * (drop[h] - spread[h]):.1f} apart against "
                        f"±{100 * noise[h]:.1f} on the means, not beyond it in every seed; that interval understates "
                        "the noise of a statistic of six accuracies and a max and a min)" for h in edge)
        line += f"; for {', '.join(rest)} the two are within it ({pairs(rest)})." if rest else "."
    return [line]

def _drop_minus_range(run: dict) -> float:
    """One run's translation statistic: its drop from 32 px (averaged over the places) minus the range between them."""
    places = [run["translated"][str(d)] for d in OFFSETS]
    return run["at_32"] - sum(places) / len(places) - (max(places) - min(places))

def _range_noise(run: dict, n: int) -> float:
    """The interval of a difference of one run's best and worst place on ``n`` images (unpaired: an upper bound)."""
    places = [run["translated"][str(d)] for d in OFFSETS]
    return difference_halfwidth(max(places), min(places), n)

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
                 f"{verdict(acc[worst_glob], acc[best_flat], n)}.")
    return [line]

def overfitting_findings(payload: dict) -> dict | None:
    """The no-augmentation conclusions as data: each head's ``train`` and ``test`` accuracy (mean, spread, seeds), the
    heads that ``memorised`` their ``n_train`` training images (99.5 % or more), the ``reference`` head (gap_mlp
    where it ran, else the best), for each head that did not memorise (``not_memorised``) its train − test and its
    test accuracy against the reference's by the difference rule (``real``, ``noise``), and the ``best`` head with
    its ``difference`` from the reference and from the best flatten head (``best_against``). None without runs of
    that regime. :func:`conclusions` writes it out."""
    n_test, _, noaug, _ = _grouped(payload)
    if not noaug:
        return None
    train = {h: stat(r, lambda x: x["train_acc"]) for h, r in noaug.items()}
    test = {h: stat(r, lambda x: x["test_acc"]) for h, r in noaug.items()}
    memorised = [h for h in noaug if train[h][0] >= 0.995]
    ref = "gap_mlp" if "gap_mlp" in test else max(test, key=lambda h: test[h][0])
    not_memorised = {h: {"train_minus_test": stat(noaug[h], lambda x: x["train_minus_test"])[0],
                         **(_difference(accuracy_verdict(noaug[h], noaug[ref], n_test)) if h != ref else {})}
                     for h in noaug if h not in memorised}  # the reference is not compared with itself
    best = max(test, key=lambda h: test[h][0])
    others = [h for h in ([ref] if ref != best else []) + [max((h for h in test if h not in ANY_SIZE_HEADS
                                                               and h != best), key=lambda h: test[h][0], default=None)]
              if h is not None]
    return {"n_test": n_test, "n_train": next(iter(noaug.values()))[0].get("n_train", 0), "train": train,
            "test": test, "memorised": memorised, "reference": ref, "not_memorised": not_memorised, "best": best,
            "best_against": {h: {"difference": test[best][0] - test[h][0],
                                 **_difference(accuracy_verdict(noaug[best], noaug[h], n_test))}
                             for h in dict.fromkeys(others)}}

def _overfitting_lines(found: dict) -> list[str]:
    train, test, memorised, ref = found["train"], found["test"], found["memorised"], found["reference"]
    images = f"{found['n_train']:,} " if found["n_train"] else ""
    out = []
    if memorised:
        out.append(f"Without augmentation, {', '.join(memorised)} reach {min(100 * train[h][0] for h in memorised):.1f}"
                   f" % training accuracy: {'every head lets' if len(memorised) == len(test) else 'these heads let'} "
                   f"the body memorise its {images}training images, so a global-pooling head does not by itself "
                   "prevent overfitting, and for these heads train − test is simply the test error.")
    for h, said in found["not_memorised"].items():
        if h == ref:
            out.append(f"{h} does not memorise its {images}training images: training accuracy {_pct(train[h])}, "
                       f"train − test {100 * said['train_minus_test']:.1f} points.")
            continue
        out.append(f"{h}'s smaller train − test ({100 * said['train_minus_test']:.1f} "
                   f"points) comes from its lower training accuracy ({_pct(train[h])}); its test accuracy "
                   f"({_pct(test[h])}) against {ref}'s ({_pct(test[ref])}): {said['verdict']}.")
    best = found["best"]
    line = f"Best test accuracy: {best} {_pct(test[best])}"
    for h, said in found["best_against"].items():  # (none when only one head ran)
        line += f"; against {h} ({_pct(test[h])}): {100 * said['difference']:+.1f} points, {said['verdict']}"
    out.append(line + ".")
    return out

def conclusions(payload: dict, part: str | None = None) -> list[str]:
    """The statements the measured numbers support, written from them with the difference rule (:func:`differs`):
    for one question (``part``, one of :data:`PARTS`) or for all of them. Notebook 04 and docs/RESULTS.md print them;
    :func:`accuracy_findings`, :func:`size_findings` and :func:`overfitting_findings` give their verdicts as data."""
    if part is not None and part not in PARTS:
        raise ValueError(f"Unknown part {part!r}: expected one of {', '.join(PARTS)} (or None for all).")
    wanted = list(PARTS) if part is None else [part]
    _, aug, noaug, glob = _grouped(payload)
    n_robust = max(1, aug[glob[0]][0].get("robustness_images", 0)) if glob else 1
    out = []
    for name in wanted:
        if name == "accuracy" and aug:
            out += _accuracy_lines(accuracy_findings(payload))
        elif name == "size" and glob:
            out += _size_lines(size_findings(payload))
        elif name == "translation" and glob:
            out += _translation_lines(aug, glob)
        elif name == "crop-shift" and aug:
            out += _crop_lines(aug, n_robust)
        elif name == "overfitting" and noaug:
            out += _overfitting_lines(overfitting_findings(payload))
    return out
