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
