"""Images moved, resized, placed on larger canvases and diluted by background: how notebook 04 tests what a head
accepts (any input size, translation) and, in its section 7, what global pooling averages over. Introduced in
notebook 04."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .data import Cifar10Split, normalize
from .models import ANY_SIZE_HEADS, CifarNet
from .recipes import Recipe
from .train import predict_logits


RESIZED = (24, 40, 48, 64)  # test images resized to these sides (the object's scale changes)

CANVASES = (40, 48, 64)  # test images at native scale, centred on a canvas of this side (the object's scale kept)

TRANSLATE_CANVAS = 48  # translation: the 32 px image placed at (d, d) on a 48 px canvas ...

OFFSETS = (0, 4, 8, 12, 16)  # ... for these d: from the top-left corner to the bottom-right one, nothing cropped

CROP_SHIFTS = (0, 2, 4, 8)  # the older test: moved within the 32 px frame, so the border is cut off

ROBUSTNESS_IMAGES = 2_000  # test images (200 per class) for the size and translation measurements

def shift_images(images: torch.Tensor, shift: int) -> torch.Tensor:
    """Move each normalised image ``shift`` px right and ``shift`` px down within its own frame; the uncovered border
    gets 0 (the mean colour) and what leaves the frame is lost: a crop, not only a translation."""
    if shift == 0:
        return images
    out = torch.zeros_like(images)
    out[..., shift:, shift:] = images[..., :-shift, :-shift]
    return out

def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of normalised N×3×H×W images to size×size (the objects' scale changes with it)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

def place_on_canvas(images: torch.Tensor, side: int, top: int | None = None, left: int | None = None) -> torch.Tensor:
    """Normalised N×3×h×w images placed at (``top``, ``left``) on a ``side``×``side`` canvas of 0 (the mean colour,
    as in notebook 05); centred by default. The objects keep their trained scale and nothing is cropped."""
    n, c, h, w = images.shape
    top = (side - h) // 2 if top is None else top
    left = (side - w) // 2 if left is None else left
    if not (0 <= top <= side - h and 0 <= left <= side - w):
        raise ValueError(f"A {h}×{w} image at ({top}, {left}) does not fit on a {side}×{side} canvas.")
    canvas = images.new_zeros(n, c, side, side)
    canvas[:, :, top:top + h, left:left + w] = images
    return canvas

def accuracy_with(model: CifarNet, data: Cifar10Split, transform: Callable[[torch.Tensor], torch.Tensor], *,
                  device: torch.device, recipe: Recipe | None = None, batch_size: int = 500) -> float | None:
    """Test accuracy (one view) after applying ``transform`` to each normalised batch; ``None`` when the head
    cannot run on the transformed images (a flatten head at another size)."""
    correct = 0
    single = replace(recipe, tta="none") if recipe is not None else None
    try:
        for start in range(0, len(data), batch_size):
            x = transform(normalize(data.images[start:start + batch_size]))
            logits = predict_logits(model, x, device=device, recipe=single, batch_size=batch_size)
            correct += (logits.argmax(1) == data.labels[start:start + batch_size].cpu()).sum().item()
    except ValueError as err:
        if "built for" in str(err):  # CheckedFlatten's message: this head is tied to one input size
            return None
        raise
    return correct / len(data)

def robustness_subset(test: Cifar10Split, n: int = ROBUSTNESS_IMAGES) -> Cifar10Split:
    per_class = max(1, min(n // len(test.classes), min(test.class_counts())))
    return test.subset(per_class)

DILUTION_SIDE = 64  # the canvas on which the average-pooling heads fall and global max pooling holds

FILLS = ("mean colour", "reflected image", "noise")  # what surrounds the 32 px image on the canvas

def fill_canvas(images: torch.Tensor, side: int, fill: str, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Normalised N×3×32×32 ``images`` centred on a ``side``×``side`` canvas whose border is one of :data:`FILLS`:
    ``"mean colour"`` (0 after normalisation, :func:`place_on_canvas`), ``"reflected image"`` (the image mirrored
    outwards: the border carries the object's own texture) or ``"noise"`` (standard normal noise, texture of no
    class). Introduced in notebook 04, section 7."""
    n, _, h, w = images.shape
    pad = (side - h) // 2
    if side - h != 2 * pad or h != w:
        raise ValueError(f"fill_canvas centres square images with an even margin: {h}×{w} on {side} px does not fit. "
                         f"Use a side of {h} + an even number.")
    if fill == "mean colour":
        return place_on_canvas(images, side)
    if fill == "reflected image":
        if pad >= h:
            raise ValueError(f"A reflected border must be narrower than the image ({pad} ≥ {h} px): use a side below "
                             f"{3 * h}.")
        return F.pad(images, (pad, pad, pad, pad), mode="reflect")
    if fill == "noise":
        canvas = torch.randn(n, images.shape[1], side, side, generator=generator).to(images)
        canvas[..., pad:pad + h, pad:pad + w] = images
        return canvas
    raise ValueError(f"Unknown fill {fill!r}: expected one of {', '.join(FILLS)}.")

@dataclass
class Dilution:
    """What :func:`dilution_test` measured for one network (accuracies as fractions of ``n`` test images)."""

    head: str
    side: int
    n: int
    accuracy: dict[str, float]  # "32 px", each of FILLS, and "object cells only"
    blank_class: int  # the class the network gives a canvas with no object at all
    wrong_as_blank: float  # share of the wrong answers on the mean-colour canvas that are blank_class

def dilution_test(model: CifarNet, data: Cifar10Split, side: int = DILUTION_SIDE, *, batch_size: int = 250,
                  seed: int = 0) -> Dilution:
    """Test the dilution hypothesis on a trained global-pooling network (evaluation only, on the CPU): accuracy at
    32 px; on a ``side`` px canvas with each of :data:`FILLS` around the image; and with the head's global pooling
    restricted to the feature-map cells that cover the object ("object cells only": the head run on those cells of
    the mean-colour canvas's maps). Introduced in notebook 04, section 7."""
    if model.head_name not in ANY_SIZE_HEADS:
        raise ValueError(f"dilution_test needs a global-pooling head ({', '.join(ANY_SIZE_HEADS)}); "
                         f"{model.head_name!r} cannot run on a {side} px canvas.")
    model = model.cpu().float().eval()
    generator = torch.Generator().manual_seed(seed)
    hits = {k: 0 for k in ("32 px", *FILLS, "object cells only")}
    wrong = wrong_blank = 0
    with torch.no_grad():
        blank_class = int(model(torch.zeros(1, 3, side, side)).argmax(1))
        for start in range(0, len(data), batch_size):
            x = normalize(data.images[start:start + batch_size]).float()
            y = data.labels[start:start + batch_size]
            hits["32 px"] += int((model(x).argmax(1) == y).sum())
            for fill in FILLS:
                canvas = fill_canvas(x, side, fill, generator=generator)
                maps = model.body(canvas)
                pred = model.head(maps).argmax(1)
                hits[fill] += int((pred == y).sum())
                if fill == "mean colour":
                    stride = side // maps.shape[-1]
                    first, last = (side - x.shape[-1]) // 2, (side + x.shape[-1]) // 2
                    if first % stride or last % stride:
                        raise ValueError(f"The object's edges ({first}, {last} px) do not fall on the {stride} px "
                                         "grid of the feature map: choose a canvas side 32 + a multiple of 16.")
                    cells = slice(first // stride, last // stride)
                    hits["object cells only"] += int((model.head(maps[..., cells, cells]).argmax(1) == y).sum())
                    wrong += int((pred != y).sum())
                    wrong_blank += int(((pred != y) & (pred == blank_class)).sum())
    return Dilution(model.head_name, side, len(data), {k: v / len(data) for k, v in hits.items()}, blank_class,
                    wrong_blank / max(1, wrong))
