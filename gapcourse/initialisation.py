"""Data-aware starting weights for the seed network: patch whitening for the first convolution and identity (Dirac)
filters for the others. Used by :func:`gapcourse.train.fit` when a recipe asks for them (``whiten``, ``dirac``);
introduced by the gpu preset's study (docs/studies/gpu-preset.md: "The bar and the steps").

Both change only where training starts, never the layers: the network is still the seed's.

* **Patch whitening** (Page, "How to train your ResNet", 2018; Jordan, airbench, arXiv 2404.00498). The first
  convolution sees 3×3×3 = 27 numbers per position. Neighbouring pixels are strongly correlated, so most of the
  patches' variance lies in a few smooth directions. The eigenvectors of the patches' (uncentred) covariance, taken
  over the first :data:`WHITEN_IMAGES` training images, are those directions; a filter equal to an eigenvector
  divided by the square root of its eigenvalue λ gives an output whose mean square along it is λ/(λ + ε), just under
  1. The first conv gets the leading eigenvectors (16 of the 27 at full width) and their negatives: ReLU keeps the
  positive part of each, so each pair passes its direction on whole (relu(z) − relu(−z) = z); the trailing
  directions, of tiny variance, are left out.
* **Dirac filters** (airbench): a convolution with at least as many outputs as inputs starts with its first
  ``in_channels`` filters equal to the identity (the centre tap of filter i reads channel i), the others random, so
  those outputs start as a copy of its input: exactly so after the ReLU that follows, where the input is itself a
  ReLU's output (the second conv of each block); where the input comes from a BatchNorm (the first conv of the
  second and third blocks), the ReLU keeps its positive part. The copies sit beside the random outputs; nothing is
  added, as in a residual network.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import normalize

WHITEN_IMAGES = 5000  # the first this many training images give the patch statistics (no random draws)
WHITEN_EPS = 5e-4  # added to each eigenvalue before the square root: bounds the gain on directions of tiny variance


def convolutions(model: nn.Module) -> list[nn.Conv2d]:
    """The model's 2-D convolutions in the order they run (module order in the seed network)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def patch_whitening(images: torch.Tensor, kernel_size: int, *, chunk_size: int = 500
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (as ``c·k²×c×k×k`` filters, same order) of the (uncentred)
    covariance of every ``kernel_size``² patch of ``images`` (normalised float N×C×H×W), accumulated in float64,
    ``chunk_size`` images at a time."""
    c, d = images.shape[1], images.shape[1] * kernel_size * kernel_size
    covariance, count = torch.zeros(d, d, dtype=torch.float64, device=images.device), 0
    for chunk in images.split(chunk_size):  # 500 images of 32 px: 450 000 patches, 97 MB in float64 at a time
        patches = chunk.double().unfold(2, kernel_size, 1).unfold(3, kernel_size, 1)  # n×C×H'×W'×k×k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, d)
        covariance += patches.T @ patches
        count += len(patches)
    covariance /= count
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    order = eigenvalues.argsort(descending=True)
    return eigenvalues[order], eigenvectors[:, order].T.reshape(-1, c, kernel_size, kernel_size)


@torch.no_grad()
def whiten_first_conv(model: nn.Module, train_images: torch.Tensor, *, eps: float = WHITEN_EPS) -> nn.Conv2d:
    """Set the first convolution's filters to whitening filters of the training images' patches (±, see the module
    docstring) and its bias to 0. ``train_images``: uint8 N×3×H×W (the first :data:`WHITEN_IMAGES` are used).
    Filters beyond twice the number of patch directions (27 for 3×3 colour patches) keep their random start.
    Returns the convolution."""
    if train_images.dtype != torch.uint8 or train_images.ndim != 4 or train_images.shape[1] != 3:
        raise ValueError(f"whitening measures uint8 training images N×3×H×W (0..255, as Cifar10Split.images), got "
                         f"{train_images.dtype} of shape {tuple(train_images.shape)}. Pass split.images; for "
                         "N×H×W×3 arrays use images.permute(0, 3, 1, 2).")
    convs = convolutions(model)
    if not convs:
        raise ValueError(f"whitening sets the first convolution's filters, but {type(model).__name__} has no "
                         "nn.Conv2d.")
    conv = convs[0]
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.in_channels != 3:
        raise ValueError(f"whitening needs a square first convolution reading the images' 3 colour channels, got "
                         f"{conv}.")
    if min(train_images.shape[2:]) < conv.kernel_size[0]:
        raise ValueError(f"whitening measures {conv.kernel_size[0]}×{conv.kernel_size[0]} patches, but the images are "
                         f"only {tuple(train_images.shape[2:])} px.")
    # On a CUDA GPU the statistics are computed there (float64 is fine for this little arithmetic); elsewhere on
    # the CPU (Apple's MPS has no float64).
    sample = train_images[:WHITEN_IMAGES]
    sample = normalize(sample if sample.device.type == "cuda" else sample.cpu())
    eigenvalues, filters = patch_whitening(sample, conv.kernel_size[0])
    pairs = min(conv.out_channels // 2, len(eigenvalues))
    scaled = filters[:pairs] / (eigenvalues[:pairs] + eps).sqrt().view(-1, 1, 1, 1)
    if not torch.isfinite(scaled).all():
        raise ValueError("the whitening filters are not finite: the images' patches have no usable statistics "
                         "(all images alike?).")
    weight = conv.weight
    weight[:2 * pairs] = torch.cat([scaled, -scaled]).to(weight.dtype).to(weight.device)
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


@torch.no_grad()
def dirac_init(model: nn.Module, *, skip_first: bool = True) -> int:
    """Give every convolution with ``out_channels ≥ in_channels`` identity filters for its first ``in_channels``
    outputs (the rest keep their random start; biases of those outputs become 0). ``skip_first`` leaves the first
    convolution alone (it reads colours, not features). Returns how many convolutions were changed."""
    changed = 0
    for i, conv in enumerate(convolutions(model)):
        if (skip_first and i == 0) or conv.out_channels < conv.in_channels or conv.groups != 1:
            continue
        nn.init.dirac_(conv.weight[:conv.in_channels])
        if conv.bias is not None:
            conv.bias[:conv.in_channels].zero_()
        changed += 1
    return changed
