"""Noise in accuracies: how far apart two numbers must be before the difference means something. Introduced in
notebook 04 (the difference rule behind its conclusions); notebook 05 uses its paired and Wilson intervals.

One test accuracy ``p`` on ``n`` images is a binomial proportion: its 95 % interval is about ``±1.96·√(p(1−p)/n)``
(±0.7 points at 84 % on 10 000 images). A *difference* of two such accuracies has two noises in it, so its interval is
``±1.96·√(p₁(1−p₁)/n₁ + p₂(1−p₂)/n₂)``: about √2 times one accuracy's (±1.0 point at 84 %). Retraining with another seed moves every accuracy too, so tables report the mean and the
spread over seeds, and :func:`differs` calls a difference real only when it exceeds both the interval of a difference
and the seeds' spreads, or when a paired comparison over the same seeds (:func:`paired_differs`) says so.

Which interval of a difference applies:

* **Unpaired**, :func:`difference_halfwidth`: the two accuracies come from *different* test images (two test sets,
  or two samples). Two networks scored on the *same* test images are right and wrong on many of the same images, so
  their noises partly cancel: for them this interval is an **upper bound**, the one to use only when each image's
  result was not kept (say so beside the verdict).
* **Paired, per image**, :func:`paired_halfwidth`: two networks scored on the same test images, with each image's
  result (1 right, 0 wrong; or the share of seeds right). Images both get right, or both wrong, add no noise; only
  the images on which they disagree do (6 to 10 % of the test images for the course's shipped networks: notebook
  04), so it is narrower: ±0.5 to ±0.6 points there, against ±1.0 unpaired at 84 %. Use it wherever the per-image
  results exist (runs store them bit-packed: :func:`pack_correctness`, :func:`unpack_correctness`).
* **Paired over seeds**, :func:`paired_differs`: the same *seeds* of two recipes; the t-interval of the per-seed
  differences is the seeds' noise. It says nothing about the test images: those are the same for every seed, so
  it is set beside an interval of a difference (unpaired there: an upper bound).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass

Stat = tuple[float, float, int]  # (mean, spread = max − min, number of seeds) of one measurement over seeds

# Two-sided 95 % quantiles of Student's t for 1..9 degrees of freedom (a paired comparison over 2..10 seeds).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def _check(p: float, n: int) -> None:
    if isinstance(n, bool) or n <= 0 or int(n) != n:
        raise ValueError(f"n must be a positive whole number of images, got {n!r}.")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be an accuracy in [0, 1] (a fraction, not a percentage), got {p}.")


def binomial_halfwidth(p: float, n: int, z: float = 1.96) -> float:
    """Half-width of the normal-approximation 95 % interval of ONE accuracy ``p`` measured on ``n`` images."""
    _check(p, n)
    return z * math.sqrt(p * (1 - p) / n)


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval ``(low, high)`` of a proportion: ``successes`` out of ``n`` trials (Wilson, 1927).
    Unlike ``p ± binomial_halfwidth(p, n)`` it never leaves [0, 1] and is not zero wide at 0 or 100 %, so it is the
    one to use for rates near either end (notebook 05: a map's peak inside the object in 99 % of placements).
    ``successes`` may be fractional (``rate · n`` when a rate is averaged over several placements per image and the
    interval counts images)."""
    _check(0.0, n)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie between 0 and n = {n}, got {successes}.")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_halfwidth(p1: float, p2: float, n1: int, n2: int | None = None, z: float = 1.96) -> float:
    """Half-width of the 95 % interval of the DIFFERENCE ``p1 − p2`` of two accuracies measured on ``n1`` and ``n2``
    images (``n2`` defaults to ``n1``): ``z·√(p1(1−p1)/n1 + p2(1−p2)/n2)``, about √2 × one accuracy's."""
    n2 = n1 if n2 is None else n2
    _check(p1, n1)
    _check(p2, n2)
    return z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)


def paired_halfwidth(correct_a: Sequence[float], correct_b: Sequence[float], z: float = 1.96) -> float:
    """Half-width of the 95 % interval of the difference of two accuracies measured on the SAME test images,
    from each image's correctness (1/0, or a fraction of seeds right). Per image ``d = a − b``; the interval is
    ``z·sd(d)/√n``. Images both networks get right (or both wrong) add no noise, so when two networks disagree on
    few images this is much narrower than :func:`difference_halfwidth`, which treats the two accuracies as if they
    came from different test sets (an upper bound whenever the two networks tend to be right on the same images, as
    networks trained on the same data are)."""
    a = [float(x) for x in correct_a]
    b = [float(x) for x in correct_b]
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_halfwidth needs each image's correctness for both networks (equally long, non-empty), "
                         f"got {len(a)} and {len(b)} values.")
    if any(not 0 <= x <= 1 for x in a + b):
        raise ValueError("paired_halfwidth expects per-image correctness in [0, 1] (1 right, 0 wrong).")
    n = len(a)
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / max(1, n - 1)
    return z * math.sqrt(var / n)


def pack_correctness(correct: Sequence[bool]) -> str:
    """Each test image's correctness (True right, False wrong; a list or a 1-D tensor) as text for a results file,
    the form in which ``compare-heads`` keeps it for notebook 04's paired interval: eight images a byte
    (first image in the highest bit), base64-encoded; 10 000 images take 1 668 characters. Read back with
    :func:`unpack_correctness`."""
    bits = [bool(x) for x in (correct.tolist() if hasattr(correct, "tolist") else correct)]
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            data[i // 8] |= 0x80 >> (i % 8)
    return base64.b64encode(bytes(data)).decode("ascii")


def unpack_correctness(text: str, n: int) -> list[int]:
    """The ``n`` per-image correctness values (1 right, 0 wrong) that :func:`pack_correctness` wrote (read by
    :func:`gapcourse.measured.per_image` for notebook 04)."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise ValueError(f"Per-image correctness must be base64 text written by pack_correctness: {err}.") from None
    if len(data) != (n + 7) // 8:
        raise ValueError(f"Per-image correctness holds {len(data)} bytes, but {n} images need {(n + 7) // 8}: the "
                         "results were measured on another test split.")
    return [(data[i // 8] >> (7 - i % 8)) & 1 for i in range(n)]


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and spread (max − min) of a few accuracies, e.g. one per seed."""
    if not values:
        raise ValueError("mean_and_spread needs at least one value (e.g. one accuracy per seed), got none.")
    return sum(values) / len(values), max(values) - min(values)


def noise_of_difference(a: Stat, b: Stat, n: int) -> float:
    """The larger of the two noises a difference of means must beat: the 95 % interval of a difference of two
    accuracies on ``n`` images, and the seeds' half-spreads added."""
    return verdict(a, b, n).noise


def differs(a: Stat | None, b: Stat | None, n: int) -> bool:
    """True when two measured accuracies (``(mean, spread, seeds)``, see :data:`Stat`) are further apart than
    :func:`noise_of_difference`; False when either is missing (a head that cannot run)."""
    if a is None or b is None:
        return False
    return verdict(a, b, n).real


def paired_differs(a: Sequence[float], b: Sequence[float], n: int) -> bool:
    """A paired comparison over seeds: ``a[i]`` and ``b[i]`` come from the same seed (the same initialisation of the
    body, and the same data order as long as both runs draw the same random numbers). Real when the mean of the per-seed differences exceeds both its t-interval
    (Student's t, ``len − 1`` degrees of freedom) and the interval of a difference of two accuracies on ``n``
    images (the test images are the same for every seed, so the seeds cannot average their noise away)."""
    mean = sum(x - y for x, y in zip(a, b)) / len(a) if len(a) else 0.0
    return abs(mean) > max(paired_halfwidths(a, b, n))


def paired_halfwidths(a: Sequence[float], b: Sequence[float], n: int) -> tuple[float, float]:
    """The two 95 % half-widths :func:`paired_differs` compares the mean per-seed difference with: Student's t-interval
    of the differences, and the interval of a difference of two accuracies on ``n`` images."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired_differs needs two equally long lists of at least 2 per-seed accuracies, got "
                         f"{len(a)} and {len(b)}; with one seed use differs().")
    if len(a) - 1 not in T95:
        raise ValueError(f"paired_differs supports 2 to {max(T95) + 1} seeds, got {len(a)}.")
    diffs = [x - y for x, y in zip(a, b)]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    t_half = T95[len(diffs) - 1] * sd / math.sqrt(len(diffs))
    return t_half, difference_halfwidth(sum(a) / len(a), sum(b) / len(b), n)


UNPAIRED_WORDS = "unpaired: an upper bound for networks scored on the same images"

@dataclass(frozen=True)
class Verdict:
    """One difference of two measurements (``a − b`` of their means over seeds) set against the course's noise: the
    95 % ``interval`` of a difference (``paired``: per image on the same test images; otherwise unpaired, an upper
    bound for two networks scored on the same images) and the seeds' half-spreads added (``spread``). Real only
    beyond the larger of the two (:attr:`noise`), the course's convention (not the two combined). ``str()`` names the
    one that decided, with two decimals where one would print a difference and its noise alike. Introduced in notebook
    04."""

    difference: float
    interval: float
    paired: bool
    spread: float = 0.0

    @property
    def noise(self) -> float:
        return max(self.interval, self.spread)

    @property
    def real(self) -> bool:
        return abs(self.difference) > self.noise

    def points(self, value: float) -> str:
        """``value`` in points: one decimal, or two when two of the numbers a verdict weighs (the difference, the
        interval, a wider seeds' spread) lie within 0.1 point of each other, where one decimal could print them
        alike (+0.54 "within ±0.5")."""
        shown = [abs(self.difference), self.interval] + ([self.spread] if self.spread > self.interval else [])
        near = any(abs(x - y) < 0.001 for i, x in enumerate(shown) for y in shown[i + 1:])
        return f"{100 * value:.{2 if near else 1}f}"

    @property
    def interval_words(self) -> str:
        """The interval with its name and value in points, e.g. "the paired interval (±0.6, per image, same test
        images)"."""
        if self.paired:
            return f"the paired interval (±{self.points(self.interval)}, per image, same test images)"
        return f"the interval of a difference (±{self.points(self.interval)}, {UNPAIRED_WORDS})"

    def __str__(self) -> str:
        side = "beyond" if self.real else "within"
        if self.spread > self.interval:
            which = "the paired interval" if self.paired else "the unpaired interval of a difference"
            return (f"{side} the seeds' spread (±{self.points(self.spread)}, wider than {which}, "
                    f"±{self.points(self.interval)})")
        return f"{side} {self.interval_words}"

def verdict(a: Stat, b: Stat, n: int, paired: float | None = None) -> Verdict:
    """:class:`Verdict` of two measurements ``(mean, spread, seeds)`` on ``n`` images: with the ``paired`` interval
    where one is given (:func:`gapcourse.measured.paired_interval`), else the unpaired one (:func:`difference_halfwidth`).
    Unpaired, ``verdict(a, b, n).real == differs(a, b, n)``."""
    interval = difference_halfwidth(a[0], b[0], n) if paired is None else paired
    return Verdict(a[0] - b[0], interval, paired is not None, a[1] / 2 + b[1] / 2)

def paired_verdict(correct_a: Sequence[float], correct_b: Sequence[float]) -> Verdict:
    """:class:`Verdict` of two networks scored on the same test images, from each image's correctness: their
    difference of accuracies against :func:`paired_halfwidth`. Introduced in notebook 04."""
    a, b = [float(x) for x in correct_a], [float(x) for x in correct_b]
    interval = paired_halfwidth(a, b)
    return Verdict((sum(a) - sum(b)) / len(a), interval, True)
