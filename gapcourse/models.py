"""The course's CIFAR-10 network: its body with a choice of heads. Introduced in notebook 01, built step by
step in notebook 03, its heads compared in notebook 04.

The body, exactly as the course's source article lists it (all convs 3×3, padding 1, each followed by ReLU)::

    conv 3→32, conv 32→64, MaxPool2d(2, 2), BatchNorm2d(64)        32×32 → 16×16
    conv 64→128, conv 128→128, MaxPool2d(2, 2), BatchNorm2d(128)   16×16 →  8×8
    conv 128→256, conv 256→256, MaxPool2d(2, 2), BatchNorm2d(256)   8×8  →  4×4

The heads (``HEADS``):

* ``gap_mlp``: the course's own head: AdaptiveAvgPool2d((1, 1)), Flatten, Linear 256→128→56→10 with ReLU between.
* ``gap_linear``: AdaptiveAvgPool2d((1, 1)), Flatten, one Linear 256→10 (the head CAM needs).
* ``nin``: Network in Network's head (Lin et al. 2014, §3): an *mlpconv* stack of 1×1 convs, C→C, ReLU, C→C,
  ReLU, C→10 (one map per class), then global average pooling; the 10 averages are the scores.
* ``gmp_linear``: global *max* pooling (AdaptiveMaxPool2d((1, 1))), Flatten, one Linear C→10: GAP's alternative that
  Zhou et al. (2016) argue localises worse; measured in notebooks 04 and 05.
* ``concat_linear``: average and max pooling side by side (:class:`ConcatPool`, fastai's default head pools this way),
  Flatten, one Linear 2C→10; measured against the others in notebooks 04 and 05.
* ``flatten_fc``: the classic head: Flatten 256×4×4 → Linear 4096→128→56→10. Tied to one input size.
* ``flatten_fc_dropout``: the same with Dropout(0.5) after each hidden layer.

``width`` multiplies every conv's channel count (the layer structure stays the course's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

HEADS = ("gap_mlp", "gap_linear", "nin", "gmp_linear", "concat_linear", "flatten_fc", "flatten_fc_dropout")
ANY_SIZE_HEADS = ("gap_mlp", "gap_linear", "nin", "gmp_linear", "concat_linear")  # global pooling: any input size
BODY_CHANNELS = (32, 64, 128, 128, 256, 256)
DOWNSAMPLE = 8  # three MaxPool2d(2, 2)


def conv_relu(c_in: int, c_out: int) -> list[nn.Module]:
    """A 3×3 convolution that keeps the spatial size (padding 1), then ReLU."""
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]


def seed_body(width: float = 1.0) -> nn.Sequential:
    """The course's feature extractor: three blocks of (conv, conv, MaxPool, BatchNorm). (The name comes from the
    course's starting point, the source article's network; elsewhere "seed" means a random seed.)"""
    c1, c2, c3, c4, c5, c6 = (max(1, round(c * width)) for c in BODY_CHANNELS)
    return nn.Sequential(
        *conv_relu(3, c1), *conv_relu(c1, c2), nn.MaxPool2d(2, 2), nn.BatchNorm2d(c2),
        *conv_relu(c2, c3), *conv_relu(c3, c4), nn.MaxPool2d(2, 2), nn.BatchNorm2d(c4),
        *conv_relu(c4, c5), *conv_relu(c5, c6), nn.MaxPool2d(2, 2), nn.BatchNorm2d(c6),
    )


class ConcatPool(nn.Module):
    """Global average and global max pooling side by side: N×C×H×W → N×2C×1×1 (the C averages first, then the C
    maxima). The head ``concat_linear`` uses it; fastai calls its version ``AdaptiveConcatPool2d``."""

    def __init__(self):
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.max = nn.AdaptiveMaxPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.avg(x), self.max(x)], dim=1)


class CheckedFlatten(nn.Flatten):
    """``nn.Flatten`` that first checks the feature maps have the one size the next Linear layer was built for."""

    def __init__(self, channels: int, height: int, width: int, input_size: int):
        super().__init__()
        self.expected = (channels, height, width)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.expected:
            c, h, w = self.expected
            raise ValueError(
                f"This flatten + FC head was built for {c}×{h}×{w} feature maps ({self.input_size}×{self.input_size} "
                f"input images), but got {'×'.join(map(str, x.shape[1:]))}. A flatten head is tied to one input "
                f"size: resize the images to {self.input_size}×{self.input_size}, or use a GAP head "
                f"({', '.join(repr(h) for h in ANY_SIZE_HEADS)}), which accepts any size."
            )
        return super().forward(x)


def make_head(name: str, channels: int, num_classes: int = 10, input_size: int = 32) -> nn.Sequential:
    """Build one of :data:`HEADS` for ``channels`` input feature maps."""
    if name == "gap_mlp":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(channels, 128), nn.ReLU(inplace=True),
            nn.Linear(128, 56), nn.ReLU(inplace=True),
            nn.Linear(56, num_classes),
        )
    if name == "gap_linear":
        return nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels, num_classes))
    if name == "nin":
        return nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_classes, kernel_size=1),  # one map per class
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        )
    if name == "gmp_linear":
        return nn.Sequential(nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten(), nn.Linear(channels, num_classes))
    if name == "concat_linear":
        return nn.Sequential(ConcatPool(), nn.Flatten(), nn.Linear(2 * channels, num_classes))
    if name in ("flatten_fc", "flatten_fc_dropout"):
        if input_size % DOWNSAMPLE:
            raise ValueError(f"input_size must be a multiple of {DOWNSAMPLE} (three 2×2 max pools), got {input_size}.")
        side = input_size // DOWNSAMPLE
        drop = name == "flatten_fc_dropout"
        return nn.Sequential(
            CheckedFlatten(channels, side, side, input_size),
            nn.Linear(channels * side * side, 128), nn.ReLU(inplace=True), *([nn.Dropout(0.5)] if drop else []),
            nn.Linear(128, 56), nn.ReLU(inplace=True), *([nn.Dropout(0.5)] if drop else []),
            nn.Linear(56, num_classes),
        )
    raise ValueError(f"Unknown head {name!r}; expected one of {HEADS}.")


class CifarNet(nn.Module):
    """``body`` (the course's conv blocks) followed by ``head``; checks its input before running."""

    def __init__(self, head: str = "gap_mlp", width: float = 1.0, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        self.head_name = head
        self.width = width
        self.body = seed_body(width)
        channels = self.body[-1].num_features
        self.head = make_head(head, channels, num_classes, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise TypeError(f"CifarNet expects normalised float images, got {x.dtype} (shape {tuple(x.shape)}). "
                            "Convert uint8 images with gapcourse.data.normalize(images) first.")
        if x.ndim != 4:
            raise ValueError(f"CifarNet expects a batch of images N×3×H×W (rank 4), got rank {x.ndim} with shape "
                             f"{tuple(x.shape)}. For one image use x.unsqueeze(0).")
        if x.shape[1] != 3:
            raise ValueError(f"CifarNet expects 3 colour channels in dimension 1 (N×3×H×W), got {x.shape[1]} "
                             f"(shape {tuple(x.shape)}). Channels-last data? Use x.permute(0, 3, 1, 2).")
        if min(x.shape[2:]) < DOWNSAMPLE:
            raise ValueError(f"Images must be at least {DOWNSAMPLE}×{DOWNSAMPLE} (three 2×2 max pools), "
                             f"got {tuple(x.shape[2:])}.")
        return self.head(self.body(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps (N×C×H/8×W/8), before the head."""
        return self.body(x)


def build_net(head: str = "gap_mlp", width: float = 1.0, num_classes: int = 10, input_size: int = 32) -> CifarNet:
    """The course's network: its body with the chosen head (``gap_mlp`` is the course's own)."""
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}; expected one of {HEADS}.")
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}.")
    return CifarNet(head, width, num_classes, input_size)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@dataclass
class TraceRow:
    layer: str
    output_shape: tuple[int, ...]
    parameters: int


def shape_trace(model: nn.Module, x: torch.Tensor) -> list[TraceRow]:
    """Run ``x`` through every leaf layer of ``model`` and record each output shape and parameter count."""
    rows: list[TraceRow] = []
    hooks = []
    for name, layer in model.named_modules():
        if len(list(layer.children())) == 0:
            def record(mod, _inp, out, name=name):
                rows.append(TraceRow(f"{name}: {mod.__class__.__name__}", tuple(out.shape), count_parameters(mod)))
            hooks.append(layer.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rows


def format_trace(rows: list[TraceRow]) -> str:
    """A plain-text table of :func:`shape_trace` rows."""
    lines = [f"{'layer':<34}{'output shape':<24}{'parameters':>12}", "-" * 70]
    for r in rows:
        lines.append(f"{r.layer:<34}{' × '.join(map(str, r.output_shape)):<24}{r.parameters:>12,}")
    lines.append("-" * 70)
    lines.append(f"{'total':<58}{sum(r.parameters for r in rows):>12,}")
    return "\n".join(lines)
