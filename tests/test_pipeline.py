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
