"""gapcourse.canvas: images moved, placed on canvases and diluted by background (notebook 04's tests of what a head
accepts), each transform checked pixel by pixel."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gapcourse import build_net
from gapcourse.canvas import accuracy_with, dilution_test, fill_canvas, FILLS, place_on_canvas, shift_images
from gapcourse.data import Cifar10Split
from gapcourse.recipes import PRESETS


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


def test_flatten_heads_cannot_run_on_a_canvas_and_say_so():
    data = tiny_split()
    recipe = replace(PRESETS["plain"], width=0.25)
    device = torch.device("cpu")
    assert accuracy_with(build_net("flatten_fc", width=0.25), data, lambda x: place_on_canvas(x, 48), device=device,
                         recipe=recipe) is None
    acc = accuracy_with(build_net("gap_linear", width=0.25), data, lambda x: place_on_canvas(x, 48), device=device,
                        recipe=recipe)
    assert 0 <= acc <= 1


def test_fill_canvas_puts_the_image_in_the_middle_of_each_fill():
    x = torch.randn(2, 3, 32, 32)
    for fill in FILLS:
        canvas = fill_canvas(x, 64, fill, generator=torch.Generator().manual_seed(0))
        assert canvas.shape == (2, 3, 64, 64) and torch.equal(canvas[..., 16:48, 16:48], x), fill
    assert fill_canvas(x, 64, "mean colour")[..., :16, :].abs().sum() == 0
    reflected = fill_canvas(x, 64, "reflected image")
    assert torch.equal(reflected[..., 16:48, 15], x[..., :, 1])  # mirrored about the edge, not repeated
    assert fill_canvas(x, 64, "noise")[..., :16, :].std() > 0.5
    with pytest.raises(ValueError, match="Unknown fill 'tiles'"):
        fill_canvas(x, 64, "tiles")
    with pytest.raises(ValueError, match="even margin"):
        fill_canvas(x, 63, "noise")
    with pytest.raises(ValueError, match="narrower than the image"):
        fill_canvas(x, 96, "reflected image")


def test_dilution_test_on_a_32px_canvas_changes_nothing():
    """With no background, every fill and the object-cells-only pooling are the network at 32 px."""
    torch.manual_seed(0)
    net, data = build_net("gap_linear", width=0.25).eval(), tiny_split(40)
    result = dilution_test(net, data, side=32, batch_size=16)
    assert result.n == 40 and set(result.accuracy) == {"32 px", *FILLS, "object cells only"}
    assert len(set(result.accuracy.values())) == 1
    wide = dilution_test(net, data, side=64, batch_size=16)
    assert 0 <= wide.wrong_as_blank <= 1 and 0 <= wide.blank_class < 10
    with pytest.raises(ValueError, match="global-pooling head"):
        dilution_test(build_net("flatten_fc", width=0.25), data)
    with pytest.raises(ValueError, match="multiple of 16"):
        dilution_test(net, data, side=40)
