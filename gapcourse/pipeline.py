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
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One epoch's random draws as a 4×n int64 CPU tensor: the order of the images, and for each position in that
    order a row offset, a column offset (0..2·padding) and a mirror coin (0/1). Same generator state → same plan."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    if augment_padding is None:
        zeros = torch.zeros(n, dtype=torch.int64)
        return torch.stack([order, zeros, zeros, zeros])
    span = 2 * augment_padding + 1
    offsets = torch.randint(0, span, (2, n), generator=generator)
    flip = (torch.rand(n, generator=generator) < 0.5).long()
    return torch.cat([order[None], offsets, flip[None]])


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
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield normalised float batches ``(x, y)`` on ``device``.

    ``augment_padding`` (e.g. 4) turns on random crop + flip. Pass a seeded ``generator`` and the same seed gives the
    same batches and the same augmentations. The epoch's draws reach the device in one transfer; if ``data`` already
    lives on ``device`` (as in :func:`gapcourse.train.fit` on a GPU), no other copy is made.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive number of images, got {batch_size}.")
    device = torch.device(device)
    n = len(data)
    plan = epoch_plan(n, shuffle=shuffle, augment_padding=augment_padding, generator=generator)
    index_plan = _to(plan[0], data.images.device)  # where the images are indexed
    draws = _to(plan[1:], device) if augment_padding is not None else None  # where they are augmented
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = index_plan[start:start + batch_size]
        x = _to(data.images[idx], device)
        y = _to(data.labels[idx], device)
        if draws is not None:
            d = draws[:, start:start + batch_size]
            x = mirror(shift_crop(x, d[0], d[1], augment_padding), d[2])
        yield normalize(x), y


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
