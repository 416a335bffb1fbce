"""gapcourse.experiments: the transforms behind notebook 04's measurements, the regimes, the resumable comparison,
and conclusions that only call a difference real when it is larger than the noise."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from gapcourse import build_net
from gapcourse.config import profile
from gapcourse.data import Cifar10Split
from gapcourse.experiments import (REGIMES, accuracy_with, checkpoint_path, compare_heads, conclusions, differs,
                                   place_on_canvas, results_markdown, shift_images)
from gapcourse.train import PRESETS

FAST = profile("fast", announce=False)


def tiny_split(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, torch.arange(n) % 10, "test", "t")


def test_crop_shift_moves_right_and_down_without_wrapping():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    s = shift_images(x, 2)
    assert torch.equal(s[..., 2:, 2:], x[..., :4, :4])
    assert s[..., :2, :].abs().sum() == 0 and s[..., :, :2].abs().sum() == 0  # border = mean colour, no wrap
    assert torch.equal(shift_images(x, 0), x)


def test_canvas_keeps_every_pixel_at_its_scale():
    x = torch.randn(3, 3, 32, 32)
    centred = place_on_canvas(x, 48)
    assert centred.shape == (3, 3, 48, 48) and torch.equal(centred[..., 8:40, 8:40], x)
    corner = place_on_canvas(x, 48, 16, 16)
    assert torch.equal(corner[..., 16:, 16:], x) and corner[..., :16, :].abs().sum() == 0
    assert centred.abs().sum() == pytest.approx(x.abs().sum())  # nothing cropped, nothing added but the mean colour
    with pytest.raises(ValueError, match="does not fit"):
        place_on_canvas(x, 48, 17, 0)


def test_checkpoint_name_changes_with_every_ingredient():
    cpu = PRESETS["cpu"]
    data, other = tiny_split(40), tiny_split(40, seed=1)
    base = checkpoint_path("gap_mlp", cpu, FAST, data)
    assert base == checkpoint_path("gap_mlp", cpu, FAST, tiny_split(40))
    others = {checkpoint_path("nin", cpu, FAST, data), checkpoint_path("gap_mlp", replace(cpu, lr=0.1), FAST, data),
              checkpoint_path("gap_mlp", cpu, profile("full", announce=False), data),
              checkpoint_path("gap_mlp", cpu, FAST, tiny_split(30)), checkpoint_path("gap_mlp", cpu, FAST, data, seed=1),
              checkpoint_path("gap_mlp", cpu, FAST, other)}  # same size, other images
    assert base not in others and len(others) == 6
    with pytest.raises(TypeError, match="training split itself"):
        checkpoint_path("gap_mlp", cpu, FAST, 2000)


def test_flatten_heads_cannot_run_on_a_canvas_and_say_so():
    data = tiny_split()
    recipe = replace(PRESETS["plain"], width=0.25)
    device = torch.device("cpu")
    assert accuracy_with(build_net("flatten_fc", width=0.25), data, lambda x: place_on_canvas(x, 48), device=device,
                         recipe=recipe) is None
    acc = accuracy_with(build_net("gap_linear", width=0.25), data, lambda x: place_on_canvas(x, 48), device=device,
                        recipe=recipe)
    assert 0 <= acc <= 1


def test_regimes_differ_only_where_they_say():
    base = PRESETS["cpu"]
    aug, plain = REGIMES["augmented"].recipe(base), REGIMES["no_augmentation"].recipe(base)
    assert aug.augment_padding == base.augment_padding and aug.tta == base.tta and aug.low_res_epochs == 0
    assert plain.augment_padding is None and plain.label_smoothing == 0 and plain.ema == 0 and plain.tta == "none"
    assert (plain.lr, plain.width, plain.batch_size) == (base.lr, base.width, base.batch_size)


def test_comparison_writes_each_run_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    from gapcourse.data import load_cifar10

    train, test = load_cifar10("train", per_class=20), load_cifar10("test", per_class=10)
    base = replace(PRESETS["cpu"], width=0.25, batch_size=50, precision="fp32")
    out = tmp_path / "heads.json"
    first = compare_heads(train, test, FAST, device=torch.device("cpu"), heads=("gap_linear", "flatten_fc"),
                          seeds=(0, 1), base=base, output=out, progress=False)
    assert len(first["runs"]) == 2 * 2 * 2 and json.loads(out.read_text())["provenance"]["command"]
    again = compare_heads(train, test, FAST, device=torch.device("cpu"), heads=("gap_linear", "flatten_fc"),
                          seeds=(0, 1), base=base, output=out, progress=False)
    assert len(again["runs"]) == 8  # nothing measured twice
    table = results_markdown(again, "augmented")
    assert "| flatten_fc |" in table and "cannot run" in table and "± " in table
    assert "| gap_linear |" in results_markdown(again, "no_augmentation")
    assert any(line.startswith("Overfitting without augmentation") for line in conclusions(again))


def test_a_difference_is_real_only_beyond_the_noise():
    assert not differs((0.870, 0.004, 3), (0.866, 0.004, 3), 10_000)  # 0.4 points: inside ±0.66 binomial
    assert not differs((0.870, 0.030, 3), (0.855, 0.030, 3), 10_000)  # 1.5 points but seeds spread 3 points
    assert differs((0.870, 0.004, 3), (0.850, 0.004, 3), 10_000)
    assert not differs(None, (0.85, 0.0, 3), 10_000)
