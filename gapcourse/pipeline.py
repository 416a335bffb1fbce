"""Batches straight from the uint8 tensors: shuffle, augment whole batches, normalise. Introduced in notebook 03.

Why not a ``DataLoader`` with per-image PIL transforms? CIFAR-10 fits in memory (150 MB as uint8), and a random crop
plus flip done on a whole batch of tensors at once is about ten times faster per core than the same transforms done
image by image (see ``python -m gapcourse bench``). The randomness is still per image: each image in a batch gets its
own shift and its own coin flip.

On a GPU the loop must never wait for the CPU. So all of an epoch's random draws (the shuffled order, every image's
shift and coin flip) are made at once on the CPU generator at the start of the epoch and moved to the device in one
transfer (:func:`epoch_plan`); each batch then only slices that plan on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .data import Cifar10Split, normalize


def shift_crop(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int) -> torch.Tensor:
    """Reflect-pad each image by ``padding`` and cut the H×W window that starts at row ``dy[i]``, column ``dx[i]``
    (both in 0..2·padding): image ``i`` moves by ``padding - dy[i]`` rows and ``padding - dx[i]`` columns."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images.float() if images.dtype == torch.uint8 else images, (padding,) * 4, mode="reflect")
    padded = padded.to(images.dtype)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # n×1×h×1
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # n×1×1×w
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def mirror(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose ``flip`` entry is true (or 1)."""
    return torch.where(flip.bool()[:, None, None, None], images.flip(3), images)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each side by ``padding`` (reflect) and cut a random H×W window per image: a shift of up to ±padding px."""
    n = images.shape[0]
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    return shift_crop(images, dy, dx, padding)


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return mirror(images, flip)


def augment(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's training augmentation: random shift (crop after reflect padding) then random mirror."""
    return random_flip(random_crop(images, padding, generator), generator)


def epoch_plan(n: int, *, shuffle: bool, augment_padding: int | None,
               generator: torch.Generator | None = None, cutout_within: int = 0) -> torch.Tensor:
    """One epoch's random draws as a 4×n int64 CPU tensor: the order of the images, and for each position in that
    order a row offset, a column offset (0..2·padding) and a mirror coin (0/1). Same generator state → same plan.

    ``cutout_within`` (the image side, when cutout is on) adds two rows: the centre row and column of each image's
    blanked square, drawn after the other draws so that a plan without cutout is unchanged."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if augment_padding is None:
        zeros = torch.zeros(n, dtype=torch.int64)
        plan = torch.stack([order, zeros, zeros, zeros])
    else:
        span = 2 * augment_padding + 1
        offsets = torch.randint(0, span, (2, n), generator=generator)
        flip = (torch.rand(n, generator=generator) < 0.5).long()
        plan = torch.cat([order[None], offsets, flip[None]])
    if cutout_within:
        plan = torch.cat([plan, torch.randint(0, cutout_within, (2, n), generator=generator)])
    return plan


def cut_out(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Cutout (DeVries & Taylor, 2017): set a ``size``×``size`` square centred at (``cy[i]``, ``cx[i]``) of each
    normalised image to 0, the dataset's mean colour; a square near an edge is cut by it. One masked multiply for
    the whole batch, on the batch's device."""
    h, w = x.shape[-2:]
    top = cy - size // 2
    left = cx - size // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # n×h
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)  # n×w
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # n×h×w
    return x * keep[:, None].to(x.dtype)


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One host→device copy; pinned and asynchronous on CUDA, so the CPU does not wait for it."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory()
        return tensor.to(device, non_blocking=True)
    return tensor.to(device)


def batches(
    data: Cifar10Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    augment_padding: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    drop_last: bool = False,
    cutout: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalised float batches ``(x, y)`` on ``device``.

    ``augment_padding`` (e.g. 4) turns on random crop + flip. Pass a seeded ``generator`` and the same seed gives the
    same batches and the same augmentations. The epoch's draws reach the device in one transfer; if ``data`` already
    lives on ``device`` (as in :func:`gapcourse.train.fit` on a GPU), no other copy is made. ``cutout`` (a side in
    px, 0: off) blanks one random square of each normalised image (:func:`cut_out`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of images, got {batch_size}.")
    device = torch.device(device)
    n = len(data)
    if cutout < 0:
        raise ValueError(f"cutout must be a square side ≥ 0 px (0: off), got {cutout}.")
    plan = epoch_plan(n, shuffle=shuffle, augment_padding=augment_padding, generator=generator,
                      cutout_within=data.images.shape[-1] if cutout else 0)
    index_plan = _to(plan[0], data.images.device)  # where the images are indexed
    needs_draws = augment_padding is not None or cutout
    draws = _to(plan[1:], device) if needs_draws else None  # where they are augmented
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = index_plan[start:start + batch_size]
        x = _to(data.images[idx], device)
        y = _to(data.labels[idx], device)
        d = draws[:, start:start + batch_size] if draws is not None else None
        if augment_padding is not None:
            x = mirror(shift_crop(x, d[0], d[1], augment_padding), d[2])
        x = normalize(x)
        if cutout:
            x = cut_out(x, d[3], d[4], cutout)
        yield x, y


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
