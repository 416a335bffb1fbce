"""gapcourse.regimes: a trained network is saved once per head, recipe, profile, data and seed, and never loaded for another."""

from __future__ import annotations

from dataclasses import replace

import torch

from gapcourse.config import profile
from gapcourse.data import Cifar10Split, synthetic_cifar10
from gapcourse.recipes import PRESETS
from gapcourse.regimes import architecture_fingerprint, checkpoint_path, train_or_load


FAST = profile("fast", announce=False)
TINY_RECIPE = replace(PRESETS["cpu"], batch_size=10, width=0.25, precision="fp32", ema=0.0, channels_last=False,
                      tta="none", epochs=1)


def split_like(template: Cifar10Split, seed: int) -> Cifar10Split:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, template.images.shape, dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, template.labels.clone(), template.split, f"seed {seed}")


# 1 ------------------------------------------------------------------------------------------------------------------
def test_a_network_trained_on_other_data_of_the_same_size_is_never_loaded(capsys):
    synthetic = synthetic_cifar10("train", per_class=3)
    real = split_like(synthetic, seed=1)  # same size and labels, other pixels: what the fast profile's real data is
    assert len(real) == len(synthetic)
    assert checkpoint_path("gap_linear", TINY_RECIPE, FAST, synthetic) != checkpoint_path("gap_linear", TINY_RECIPE,
                                                                                         FAST, real)
    _, _, loaded = train_or_load("gap_linear", TINY_RECIPE, FAST, synthetic, synthetic, device=torch.device("cpu"),
                                 progress=False)
    assert not loaded
    _, _, loaded = train_or_load("gap_linear", TINY_RECIPE, FAST, real, real, device=torch.device("cpu"),
                                 progress=False)
    assert not loaded, "the synthetic network must not be loaded for other data"
    _, _, loaded = train_or_load("gap_linear", TINY_RECIPE, FAST, real, real, device=torch.device("cpu"),
                                 progress=False)
    assert loaded, "the same data and recipe do reuse the saved network"


def test_a_changed_architecture_changes_the_checkpoint_name(monkeypatch):
    before = architecture_fingerprint("gap_mlp", 0.5)
    assert before != architecture_fingerprint("gap_linear", 0.5) != architecture_fingerprint("gap_mlp", 0.25)
    from gapcourse import models

    original = models.make_head
    monkeypatch.setattr(models, "make_head", lambda *a, **k: torch.nn.Sequential(torch.nn.Dropout(0.1),
                                                                                 *original(*a, **k)))
    assert architecture_fingerprint("gap_mlp", 0.5) != before
