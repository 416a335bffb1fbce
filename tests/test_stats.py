"""gapcourse.stats: the intervals of one accuracy and of a difference, and the difference rule that notebook 04's
conclusions use, tested on both sides of its threshold."""

from __future__ import annotations

import math

import pytest

from gapcourse.stats import binomial_halfwidth, difference_halfwidth, differs, mean_and_spread, noise_of_difference, paired_differs


def test_one_accuracy_interval_is_the_binomial_formula():
    assert binomial_halfwidth(0.84, 10_000) == pytest.approx(1.96 * math.sqrt(0.84 * 0.16 / 10_000))
    assert binomial_halfwidth(0.84, 10_000) == pytest.approx(0.00719, abs=1e-5)  # the ±0.72 pt of issue 21
    assert binomial_halfwidth(1.0, 500) == 0.0


def test_a_difference_interval_is_root_two_times_one_accuracys():
    one = binomial_halfwidth(0.84, 10_000)
    assert difference_halfwidth(0.84, 0.84, 10_000) == pytest.approx(math.sqrt(2) * one)
    assert difference_halfwidth(0.84, 0.84, 10_000) == pytest.approx(0.01016, abs=1e-5)  # ≈ 1.0 point
    # notebook 05's formula with unequal accuracies and counts
    assert difference_halfwidth(0.9, 0.6, 200, 400) == pytest.approx(1.96 * math.sqrt(0.09 / 200 + 0.24 / 400))


def test_the_nin_case_of_issue_21_is_now_within_the_noise():
    """gmp_linear 84.26 % against nin 83.53 % (the committed means): 0.73 points beats one accuracy's ±0.72 but not a
    difference's ±1.0."""
    best, nin = (0.84257, 0.0010, 3), (0.83527, 0.0021, 3)
    assert abs(best[0] - nin[0]) > binomial_halfwidth(best[0], 10_000)  # the old, wrong rule called it real
    assert not differs(best, nin, 10_000)
    assert noise_of_difference(best, nin, 10_000) == pytest.approx(difference_halfwidth(0.84257, 0.83527, 10_000))


def test_differences_just_outside_and_just_inside_the_threshold():
    noise = difference_halfwidth(0.85, 0.85, 10_000)  # ≈ 0.0099
    assert differs((0.85 + noise / 2 + 0.0005, 0.0, 3), (0.85 - noise / 2, 0.0, 3), 10_000)
    assert not differs((0.85 + noise / 2 - 0.0005, 0.0, 3), (0.85 - noise / 2, 0.0, 3), 10_000)


def test_the_seeds_spread_can_be_the_larger_noise():
    # 1.5 points apart: beyond the ±1.0 binomial difference, but the seeds spread 3 points each
    assert not differs((0.870, 0.030, 3), (0.855, 0.030, 3), 10_000)
    assert differs((0.870, 0.004, 3), (0.855, 0.004, 3), 10_000)
    assert noise_of_difference((0.870, 0.030, 3), (0.855, 0.030, 3), 10_000) == pytest.approx(0.030)
    assert not differs(None, (0.85, 0.0, 3), 10_000) and not differs((0.85, 0.0, 3), None, 10_000)


def test_fewer_images_need_a_larger_difference():
    a, b = (0.700, 0.0, 3), (0.675, 0.0, 3)  # 2.5 points apart
    assert differs(a, b, 10_000)  # ±1.3 points on 10 000 images
    assert not differs(a, b, 2_000)  # ±2.9 points on 2 000 images


def test_paired_comparison_over_seeds():
    # the committed no-augmentation runs, seeds 0, 1, 2: gap_linear beats gap_mlp by 1.5 to 2.4 points in every seed
    assert paired_differs([0.6651, 0.6602, 0.6626], [0.6411, 0.6450, 0.6412], 10_000)
    # consistent in sign but smaller than the ±1.3-point interval of a difference on 10 000 images
    assert not paired_differs([0.650, 0.651, 0.652], [0.643, 0.644, 0.645], 10_000)
    # large on average, but the seeds disagree: the t-interval over 3 seeds is wide
    assert not paired_differs([0.70, 0.64, 0.70], [0.64, 0.66, 0.64], 10_000)


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match="positive whole number of images"):
        binomial_halfwidth(0.5, 0)
    with pytest.raises(ValueError, match="fraction, not a percentage"):
        difference_halfwidth(84.0, 0.8, 10_000)
    with pytest.raises(ValueError, match="at least one value"):
        mean_and_spread([])
    with pytest.raises(ValueError, match="equally long lists"):
        paired_differs([0.8, 0.8], [0.8], 10_000)
    with pytest.raises(ValueError, match="use differs"):
        paired_differs([0.8], [0.8], 10_000)


def test_per_image_correctness_survives_packing_bit_for_bit():
    import random

    from gapcourse.stats import pack_correctness, unpack_correctness

    rng = random.Random(0)
    for n in (1, 7, 8, 9, 10_000):
        bits = [rng.random() < 0.8 for _ in range(n)]
        text = pack_correctness(bits)
        assert len(text) == 4 * (((n + 7) // 8 + 2) // 3)  # base64 of one bit per image
        assert unpack_correctness(text, n) == [int(b) for b in bits]
    with pytest.raises(ValueError, match="another test split"):
        unpack_correctness(pack_correctness([True] * 16), 10_000)
    with pytest.raises(ValueError, match="base64"):
        unpack_correctness("not base64!", 8)


def test_wilson_interval_stays_inside_0_and_1_near_the_ends():
    from gapcourse.stats import wilson_interval

    low, high = wilson_interval(49, 50)  # notebook 05's case: a rate near 100 %
    assert (low, high) == (pytest.approx(0.8950, abs=1e-4), pytest.approx(0.9965, abs=1e-4))  # Wilson's formula
    assert 0.98 + binomial_halfwidth(0.98, 50) > 1 >= high  # the normal approximation runs past 100 %, Wilson not
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))  # not zero wide at 0 %
    assert wilson_interval(50, 50)[1] == 1.0 and wilson_interval(50, 50)[0] < 1
    mid = wilson_interval(4_200, 5_000)  # away from the ends it agrees with the normal approximation
    assert mid == (pytest.approx(0.84 - binomial_halfwidth(0.84, 5_000), abs=5e-4),
                   pytest.approx(0.84 + binomial_halfwidth(0.84, 5_000), abs=5e-4))
    assert wilson_interval(24, 50) < wilson_interval(24.5, 50) < wilson_interval(25, 50)  # fractional successes
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(51, 50)
    with pytest.raises(ValueError, match="positive whole number"):
        wilson_interval(0, 0)


def test_the_paired_interval_holds_only_the_images_two_networks_disagree_on():
    from gapcourse.stats import paired_halfwidth

    # 10 000 images as the course's shipped networks score them: 7 900 both right, 1 100 both wrong, 550 only A
    # right, 450 only B right (10 % disagreement); A 84.5 %, B 83.5 %
    a = [1] * 7_900 + [0] * 1_100 + [1] * 550 + [0] * 450
    b = [1] * 7_900 + [0] * 1_100 + [0] * 550 + [1] * 450
    pa, pb, n = sum(a) / len(a), sum(b) / len(b), len(a)
    paired, unpaired = paired_halfwidth(a, b), difference_halfwidth(pa, pb, n)
    d = pa - pb  # 0.01: (550 − 450) / 10 000
    assert d == pytest.approx(0.01)
    assert paired == pytest.approx(1.96 * math.sqrt((0.10 - d * d) * n / (n - 1) / n))  # sd of the per-image ±1/0
    assert paired == pytest.approx(0.0062, abs=1e-4) and unpaired == pytest.approx(0.0102, abs=1e-4)
    assert abs(d) > paired and abs(d) < unpaired  # 1.0 point: a tie unpaired, real paired
    # images both get right (or both wrong) add no noise: 5 000 more of them leave the interval of the difference
    # in *images* (half-width × n) where it was, whereas the unpaired one grows with them
    more_a, more_b = a + [1] * 5_000, b + [1] * 5_000
    assert paired_halfwidth(more_a, more_b) * 15_000 == pytest.approx(paired * 10_000, rel=0.01)
    pa2, pb2 = sum(more_a) / 15_000, sum(more_b) / 15_000
    assert difference_halfwidth(pa2, pb2, 15_000) * 15_000 > unpaired * 10_000
    # two networks right on unrelated images: the paired interval is no narrower than the unpaired one
    import random

    rng = random.Random(0)
    x = [int(rng.random() < 0.84) for _ in range(10_000)]
    y = [int(rng.random() < 0.84) for _ in range(10_000)]
    px, py = sum(x) / 1e4, sum(y) / 1e4
    assert paired_halfwidth(x, y) == pytest.approx(difference_halfwidth(px, py, 10_000), rel=0.05)


def test_the_paired_interval_refuses_what_is_not_per_image_correctness():
    from gapcourse.stats import paired_halfwidth

    with pytest.raises(ValueError, match="equally long"):
        paired_halfwidth([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="1 right, 0 wrong"):
        paired_halfwidth([84.0, 1.0], [1.0, 0.0])


def test_the_module_says_when_each_interval_of_a_difference_applies():
    import gapcourse.stats as stats

    doc = stats.__doc__
    for name in ("difference_halfwidth", "paired_halfwidth", "paired_differs"):
        assert f":func:`{name}`" in doc
    assert "upper bound" in doc and "same test images" in doc and "disagree" in doc


def test_correctness_is_packed_first_image_in_the_highest_bit():
    """A fixed value: a bit-order change made in both functions alike would misread the committed heads.json."""
    from gapcourse.stats import pack_correctness

    assert pack_correctness([True] + [False] * 7 + [True]) == "gIA="


def test_a_paired_verdict_reads_two_networks_on_the_same_images():
    from gapcourse.stats import paired_halfwidth, paired_verdict

    a = [1] * 900 + [0] * 100
    b = [1] * 880 + [0] * 20 + [1] * 0 + [0] * 100  # agree but on 20 images, all won by a
    found = paired_verdict(a, b)
    assert found.paired and found.difference == pytest.approx(0.02)
    assert found.interval == pytest.approx(paired_halfwidth(a, b)) and found.real
