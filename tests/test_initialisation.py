"""gapcourse.initialisation and the recipe fields that use it (whiten, dirac): what each starting weight promises,
checked on data whose statistics are known."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from gapcourse import build_net
from gapcourse.data import Cifar10Split, normalize
from gapcourse.initialisation import WHITEN_EPS, convolutions, dirac_init, patch_whitening, whiten_first_conv
from gapcourse.recipes import PRESETS, Recipe
from gapcourse.train import fit


def correlated_images(n: int = 400, size: int = 16, seed: int = 0) -> torch.Tensor:
    """uint8 images whose neighbouring pixels and channels are correlated, as in photographs: smoothed noise."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, size + 4, size + 4, generator=g)
    smooth = F.avg_pool2d(noise, 5, stride=1) + 0.3 * noise.mean(1, keepdim=True)[..., 2:-2, 2:-2]
    return (128 + 60 * smooth / smooth.std()).clamp(0, 255).to(torch.uint8)


def patches_of(images: torch.Tensor) -> torch.Tensor:
    return F.unfold(normalize(images).double(), 3).transpose(1, 2).reshape(-1, 27)


def test_patch_whitening_returns_the_eigenpairs_of_the_patch_covariance_largest_first():
    images = correlated_images()
    eigenvalues, filters = patch_whitening(normalize(images), 3)
    assert filters.shape == (27, 3, 3, 3) and eigenvalues.shape == (27,)
    assert torch.all(eigenvalues[:-1] >= eigenvalues[1:])  # descending
    p = patches_of(images)
    covariance = p.T @ p / len(p)
    v = filters.reshape(27, 27)
    # each filter (as a vector) is an eigenvector with its eigenvalue: C v = λ v
    assert torch.allclose(v @ covariance, eigenvalues[:, None] * v, atol=1e-8 * eigenvalues[0])
    chunked, chunked_filters = patch_whitening(normalize(images), 3, chunk_size=7)  # memory bounded by the chunk
    assert torch.allclose(chunked, eigenvalues, rtol=1e-12)  # ... the same eigenvalues and the same directions
    cosines = (chunked_filters.reshape(27, 27) * v).sum(1).abs()  # (an eigenvector's sign is arbitrary)
    assert torch.allclose(cosines[:20], torch.ones(20, dtype=v.dtype), atol=1e-9)


def test_whitened_first_conv_gives_outputs_of_unit_variance_in_plus_minus_pairs():
    images = correlated_images()
    model = build_net(width=1.0)
    conv = whiten_first_conv(model, images)
    assert conv is convolutions(model)[0] and torch.count_nonzero(conv.bias) == 0
    w = conv.weight.detach()
    eigenvalues, filters = patch_whitening(normalize(images), 3)
    leading = (filters[:16] / (eigenvalues[:16] + WHITEN_EPS).sqrt().view(-1, 1, 1, 1)).float()
    assert torch.allclose(w[:16], leading, rtol=1e-6)  # the 16 leading directions, each scaled by 1/√(λ + ε)
    assert torch.equal(w[16:], -w[:16])  # 16 pairs: ReLU keeps one sign of each, together the whole signal
    with torch.no_grad():  # valid positions only (no padding), as the statistics were taken
        z = F.conv2d(normalize(images), w).double()
    per_channel = z.transpose(0, 1).reshape(32, -1)
    variance = per_channel.pow(2).mean(1)  # the filters see the same images: second moment ≈ 1 (eps shrinks it a bit)
    assert torch.all(variance[:16] > 0.6) and torch.all(variance[:16] <= 1.0 + 1e-6), variance[:16]
    moments = per_channel[:16] @ per_channel[:16].T / per_channel.shape[1]  # uncentred, as whitening computes them
    cosines = moments / torch.outer(variance[:16], variance[:16]).sqrt()  # the 16 directions are uncorrelated
    assert (cosines - torch.eye(16, dtype=cosines.dtype)).abs().max() < 1e-4


def test_whitening_refuses_what_it_cannot_measure_with_a_message():
    model = build_net(width=1.0)
    images = correlated_images()
    with pytest.raises(ValueError, match="first convolution reading the images' 3 colour channels"):
        whiten_first_conv(torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3)), images)
    for wrong, why in [(images.float() / 255, "got torch.float32"), (images.permute(0, 2, 3, 1), "permute"),
                       (images[:, :, :2, :2], "only \\(2, 2\\) px")]:
        with pytest.raises(ValueError, match=why):
            whiten_first_conv(model, wrong)
    with pytest.raises(ValueError, match="has no nn.Conv2d"):
        whiten_first_conv(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10)),
                          correlated_images())


def test_dirac_filters_pass_the_input_through_at_the_start():
    model = build_net(width=0.5)
    changed = dirac_init(model)
    convs = convolutions(model)
    assert changed == 5  # every conv but the first (each has at least as many outputs as inputs)
    x = torch.randn(2, convs[2].in_channels, 8, 8)
    with torch.no_grad():
        y = convs[2](x)
    assert torch.allclose(y[:, :convs[2].in_channels], x, atol=1e-6)  # first in_channels outputs: the input itself
    assert not torch.allclose(y[:, convs[2].in_channels:], torch.zeros(()))  # the others keep a random start
    torch.manual_seed(1)
    kept, asked = build_net(width=0.5), None
    torch.manual_seed(1)
    asked = build_net(width=0.5)
    start = convolutions(kept)[0].weight.detach().clone()
    dirac_init(kept)
    dirac_init(asked, skip_first=False)
    assert torch.equal(convolutions(kept)[0].weight, start)  # the first conv is left alone by default ...
    assert torch.equal(convolutions(asked)[0].weight[:3, :, 1, 1], torch.eye(3))  # ... and changed when asked


def test_recipe_validates_and_names_the_initialisation_only_when_used():
    with pytest.raises(ValueError, match="whiten='yes'"):
        replace(PRESETS["cpu"], whiten="yes")
    with pytest.raises(ValueError, match="dirac='no'"):
        replace(PRESETS["cpu"], dirac="no")  # a string would otherwise count as True
    assert "whiten" not in PRESETS["gpu"].describe() and "dirac" not in PRESETS["gpu"].describe()
    described = replace(PRESETS["gpu"], whiten="frozen", dirac=True).describe()
    assert described.endswith("whiten=frozen, dirac=True")


def tiny_split(images: torch.Tensor) -> Cifar10Split:
    labels = torch.arange(len(images)) % 10
    return Cifar10Split(images=images, labels=labels, split="train", source="smoothed noise for a test")


def test_fit_starts_from_the_whitening_filters_keeps_them_fixed_and_lets_them_train_afterwards():
    images = F.interpolate(correlated_images(200).float(), size=32).to(torch.uint8)
    train = tiny_split(images)
    recipe = Recipe("t", epochs=1, batch_size=50, lr=0.05, width=0.25, precision="fp32", whiten="frozen",
                    dirac=True)
    model = build_net(width=0.25)
    expected = whiten_first_conv(build_net(width=0.25), images).weight.detach().clone()
    fit(model, train, None, recipe, epochs=2, progress=False)
    first, second = convolutions(model)[:2]
    assert torch.equal(first.weight.detach(), expected)  # trained two epochs, the filters unchanged
    centre = second.weight.detach()[:, :, 1, 1].diagonal()  # conv 2 started from identity filters ...
    assert torch.all((centre - 1).abs() < 0.2), centre  # ... and after 2 short epochs is still near them
    assert first.weight.requires_grad  # ... and the returned model trains as any other
    assert not torch.equal(first.bias.detach(), torch.zeros_like(first.bias))  # the bias did train
    moved = build_net(width=0.25)
    random_start = convs_first_weight(moved).clone()
    fit(moved, train, None, replace(recipe, whiten="init"), epochs=2, progress=False)
    trained = convs_first_weight(moved)
    assert not torch.equal(trained, expected)  # "init": the filters trained from ...
    assert (trained - expected).norm() < 0.1 * (random_start - expected).norm()  # ... the whitening start
    held = build_net(width=0.25)
    convolutions(held)[0].weight.requires_grad_(False)  # frozen by the caller: fit leaves it so
    fit(held, train, None, recipe, epochs=1, progress=False)
    assert not convolutions(held)[0].weight.requires_grad


def convs_first_weight(model) -> torch.Tensor:
    return convolutions(model)[0].weight.detach()


def test_fit_gives_frozen_filters_their_gradient_back_when_the_run_breaks_off(monkeypatch):
    import gapcourse.train as train_module

    images = F.interpolate(correlated_images(100).float(), size=32).to(torch.uint8)
    recipe = Recipe("t", epochs=1, batch_size=50, lr=0.05, width=0.25, precision="fp32", whiten="frozen")
    model = build_net(width=0.25)

    def interrupted(*_args, **_kwargs):
        assert not convs_first_weight_param(model).requires_grad  # frozen while the run trains
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(model, tiny_split(images), None, recipe, epochs=1, progress=False)
    assert convs_first_weight_param(model).requires_grad


def convs_first_weight_param(model) -> torch.nn.Parameter:
    return convolutions(model)[0].weight
