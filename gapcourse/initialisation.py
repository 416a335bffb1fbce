"""Data-aware starting weights for the seed network: patch whitening for the first convolution and identity (Dirac)
filters for the others. Used by :func:`gapcourse.train.fit` when a recipe asks for them (``whiten``, ``dirac``);
introduced by the gpu preset's study (README: "the gpu preset, measured on a CPU").

Both change only where training starts, never the layers: the network is still the seed's.

* **Patch whitening** (Page, "How to train your ResNet", 2018; Jordan, airbench, arXiv 2404.00498). The first
  convolution sees 3×3×3 = 27 numbers per position. Neighbouring pixels are strongly correlated, so most of the
  patches' variance lies in a few smooth directions. The eigenvectors of the patches' covariance are those
  directions; a filter equal to an eigenvector divided by the square root of its eigenvalue gives an output of
  variance 1 along it. The first conv gets the leading eigenvectors and their negatives: ReLU keeps the positive
  part of each, so the pair passes the whole signal on (relu(z) − relu(−z) = z).
* **Dirac filters** (airbench): a convolution with at least as many outputs as inputs starts with its first
  ``in_channels`` filters equal to the identity (the centre tap of filter i reads channel i), the others random. A
  plain stack of convolutions then starts out close to passing its input through, as a residual network would.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import normalize

WHITEN_MODES = ("none", "init", "frozen")  # Recipe.whiten: off; initialise the first conv; initialise and freeze it
WHITEN_IMAGES = 5000  # the first this many training images give the patch statistics (no random draws)
WHITEN_EPS = 5e-4  # added to each eigenvalue before the square root: bounds the gain on directions of tiny variance


def convolutions(model: nn.Module) -> list[nn.Conv2d]:
    """The model's 2-D convolutions in the order they run (module order in the seed network)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def patch_whitening(images: torch.Tensor, kernel_size: int, *, chunk_size: int = 500
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (as ``k·c×c×k×k`` filters, same order) of the (uncentred)
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
    Filters beyond twice the patch size (wider networks) keep their random start. Returns the convolution."""
    convs = convolutions(model)
    if not convs:
        raise ValueError(f"whitening sets the first convolution's filters, but {type(model).__name__} has no nn.Conv2d.")
    conv = convs[0]
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.in_channels != train_images.shape[1]:
        raise ValueError(f"whitening needs a square first convolution reading the images' {train_images.shape[1]} "
                         f"channels, got {conv}.")
    # On a CUDA GPU the statistics are computed there (float64 is fine for this little arithmetic); elsewhere on
    # the CPU (Apple's MPS has no float64).
    sample = train_images[:WHITEN_IMAGES]
    sample = normalize(sample if sample.device.type == "cuda" else sample.cpu())
    eigenvalues, filters = patch_whitening(sample, conv.kernel_size[0])
    pairs = min(conv.out_channels // 2, len(eigenvalues))
    scaled = filters[:pairs] / (eigenvalues[:pairs] + eps).sqrt().view(-1, 1, 1, 1)
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
