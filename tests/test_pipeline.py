"""gapcourse.pipeline: augmentation is per image, keeps shapes and values, and is repeatable with a seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gapcourse.data import Cifar10Split
from gapcourse.pipeline import augment, batches, random_crop, random_flip


def test_random_crop_is_a_shifted_window_of_the_reflect_padded_image():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(1)
    out = random_crop(images, 4, gen)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for i in range(len(images)):
        windows = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.equal(padded[i, :, dy:dy + 32, dx:dx + 32], out[i])]
        assert windows, f"image {i} is not a 32×32 window of its padded original"


def test_shifts_and_flips_are_drawn_per_image():
    one = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    same = one.repeat(128, 1, 1, 1)
    out = augment(same, 4, torch.Generator().manual_seed(0))
    distinct = {bytes(o.flatten().tolist()) for o in out}
    assert len(distinct) > 40, "identical inputs should get different random shifts/flips"
    flipped = random_flip(same, torch.Generator().manual_seed(0))
    is_flipped = torch.tensor([torch.equal(f, one[0].flip(2)) for f in flipped])
    is_same = torch.tensor([torch.equal(f, one[0]) for f in flipped])
    assert bool((is_flipped | is_same).all())
    assert 40 < int(is_flipped.sum()) < 88  # about half of 128


def test_augmented_values_stay_in_range_for_floats():
    x = torch.rand(8, 3, 32, 32)
    out = augment(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= x.min() and out.max() <= x.max()


def fake_split(n=50):
    return Cifar10Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), torch.arange(n) % 10, "train",
                        "test")


def test_same_seed_same_batches_and_all_images_once_per_epoch():
    data = fake_split()
    run = lambda seed: list(batches(data, 16, shuffle=True, augment_padding=4,  # noqa: E731
                                    generator=torch.Generator().manual_seed(seed)))
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(data.labels.tolist())
    assert [len(y) for _, y in a] == [16, 16, 16, 2]
    assert a[0][0].dtype == torch.float32


def test_drop_last_gives_full_batches_only():
    sizes = [len(y) for _, y in batches(fake_split(), 16, drop_last=True)]
    assert sizes == [16, 16, 16]


def test_cutout_blanks_one_square_per_image_to_the_mean_colour():
    from gapcourse.pipeline import cut_out

    x = torch.randn(3, 3, 32, 32) + 5  # no zeros by chance
    cy, cx = torch.tensor([16, 0, 31]), torch.tensor([16, 0, 5])
    out = cut_out(x, cy, cx, 12)
    blanked = (out == 0).all(1)  # n×h×w: all three channels at the mean (0 after normalisation)
    assert blanked[0].sum() == 12 * 12  # a whole square in the middle
    assert blanked[0, 10:22, 10:22].all()
    assert blanked[1].sum() == 6 * 6  # centred on the corner: the square is cut by the edges
    assert blanked[2].sum() == 7 * 11  # rows 25..31 (bottom edge) × columns 0..10 (left edge)
    assert torch.equal(out[~blanked[:, None].expand_as(out)], x[~blanked[:, None].expand_as(x)])


def test_cutout_leaves_the_other_draws_of_an_epoch_unchanged():
    from gapcourse.pipeline import epoch_plan

    plain = epoch_plan(100, shuffle=True, augment_padding=4, generator=torch.Generator().manual_seed(3))
    with_cut = epoch_plan(100, shuffle=True, augment_padding=4, generator=torch.Generator().manual_seed(3),
                          cutout_within=32)
    assert with_cut.shape == (6, 100) and torch.equal(with_cut[:4], plain)
    assert 0 <= int(with_cut[4:].min()) and int(with_cut[4:].max()) <= 31


def test_cutout_in_batches_blanks_squares_and_is_repeatable():
    data = fake_split(32)
    run = lambda: list(batches(data, 16, shuffle=True, augment_padding=4, cutout=8,  # noqa: E731
                               generator=torch.Generator().manual_seed(0)))
    a, b = run(), run()
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    x = torch.cat([x for x, _ in a])
    blanked = (x == 0).all(1).flatten(1).sum(1)  # per image: cells at the mean colour
    assert bool((blanked >= 4 * 4).all()) and bool((blanked <= 8 * 8).all())
    no_cut = torch.cat([x for x, _ in batches(data, 16, shuffle=True, augment_padding=4,
                                              generator=torch.Generator().manual_seed(0))])
    assert int((no_cut == 0).all(1).flatten(1).sum(1).max()) < 4 * 4


def test_recipe_strings_recorded_before_cutout_still_name_the_same_recipe():
    import json
    from pathlib import Path

    from gapcourse.recipes import CPU_HALF_WIDTH
    from gapcourse.recipes import Recipe

    bench = json.loads((Path(__file__).parents[1] / "gapcourse/results/bench_cpu.json").read_text())
    recorded = next(r["recipe"] for r in bench["rows"] if r["recipe"].startswith("name=cpu,"))
    assert "cutout" not in recorded
    half_width = CPU_HALF_WIDTH  # the cpu preset the benchmark measured (before the budget-recipe study)
    assert recorded == half_width.__class__(**{**half_width.__dict__, "precision": "bf16"}).describe()
    assert "cutout=12" in Recipe("x", epochs=1, batch_size=1, lr=0.1, cutout=12).describe()
    import pytest

    with pytest.raises(ValueError, match="cutout"):
        Recipe("x", epochs=1, batch_size=1, lr=0.1, cutout=40)
