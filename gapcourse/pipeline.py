"""Batches straight from the uint8 tensors: shuffle, augment whole batches, normalise. Introduced in notebook 03.

Why not a ``DataLoader`` with per-image PIL transforms? CIFAR-10 fits in memory (150 MB as uint8), and a random crop
plus flip done on a whole batch of tensors at once is about ten times faster per core than the same transforms done
image by image (see ``python -m gapcourse bench``). The randomness is still per image: each image in a batch gets its
own shift and its own coin flip.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .data import Cifar10Split, normalize


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each side by ``padding`` (reflect) and cut a random H×W window per image: a shift of up to ±padding px."""
    if padding == 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images.float() if images.dtype == torch.uint8 else images, (padding,) * 4, mode="reflect")
    padded = padded.to(images.dtype)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # n×1×h×1
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # n×1×1×w
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def augment(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """The course's training augmentation: random shift (crop after reflect padding) then random mirror."""
    return random_flip(random_crop(images, padding, generator), generator)


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
    same batches and the same augmentations.
    """
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size].to(data.images.device)  # data may already live on the GPU
        x = data.images[idx].to(device, non_blocking=True)
        y = data.labels[idx].to(device, non_blocking=True)
        if augment_padding is not None:
            x = augment(x, augment_padding, generator)
        yield normalize(x), y


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
