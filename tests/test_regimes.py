"""gapcourse.regimes: a trained network is saved once per head, recipe, profile, data and seed, and never loaded for another."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import TINY_RECIPE, split_like
from gapcourse import regimes
from gapcourse.canvas import CANVASES, CROP_SHIFTS, OFFSETS, RESIZED, robustness_subset
from gapcourse.checkpoints import architecture_fingerprint, checkpoint_path
from gapcourse.config import profile
from gapcourse.data import synthetic_cifar10
from gapcourse.models import build_net
from gapcourse.recipes import PRESETS
from gapcourse.regimes import measure, REGIMES, train_or_load
from gapcourse.stats import unpack_correctness
from gapcourse.train import evaluate


FAST = profile("fast", announce=False)


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


def test_measure_records_every_number_of_one_network_and_the_size_tests_only_with_augmentation(monkeypatch):
    """regimes.measure: notebook 04's tables and `compare-heads` (gapcourse.studies.heads) record what it returns."""
    train, test = synthetic_cifar10("train", per_class=3), synthetic_cifar10("test", per_class=2)
    cpu, recipe = torch.device("cpu"), replace(TINY_RECIPE, tta="flip")
    one_view = replace(recipe, tta="none")
    torch.manual_seed(0)
    net = build_net("gap_linear", width=0.25)
    monkeypatch.setattr(regimes, "TRAIN_ACC_IMAGES", 10)  # the training accuracy is read on a subset of this size
    plain = measure(net, train, test, recipe, REGIMES["no_augmentation"], device=cpu)
    assert set(plain) == {"train_acc", "test_acc", "test_acc_single_view", "train_minus_test", "test_correct",
                          "test_sha256"}
    scored = evaluate(net, test, device=cpu, recipe=recipe)
    right = unpack_correctness(plain["test_correct"], len(test))  # each test image, as the paired interval needs
    assert right == (scored.predictions == scored.labels).int().tolist() and sum(right) / len(test) == pytest.approx(plain["test_acc"])
    assert plain["test_sha256"] == test.fingerprint()
    assert plain["train_acc"] == evaluate(net, robustness_subset(train, 10), device=cpu, recipe=one_view).accuracy
    assert plain["test_acc"] == evaluate(net, test, device=cpu, recipe=recipe).accuracy  # with the recipe's TTA
    assert plain["test_acc_single_view"] == evaluate(net, test, device=cpu, recipe=one_view).accuracy
    assert plain["train_minus_test"] == plain["train_acc"] - plain["test_acc_single_view"]

    full = measure(net, train, test, recipe, REGIMES["augmented"], device=cpu)
    assert {k: full[k] for k in plain} == plain and full["robustness_images"] == len(test)
    assert set(full["resized"]) == {str(s) for s in RESIZED} and set(full["canvas"]) == {str(s) for s in CANVASES}
    assert set(full["translated"]) == {str(d) for d in OFFSETS}
    assert set(full["crop_shift"]) == {str(d) for d in CROP_SHIFTS} and full["crop_shift"]["0"] == full["at_32"]
    flat = measure(build_net("flatten_fc", width=0.25), train, test, recipe, REGIMES["augmented"], device=cpu)
    assert set(flat["canvas"].values()) == {None} and flat["crop_shift"]["8"] is not None  # cannot run: None


def test_regimes_differ_only_where_they_say():
    base = PRESETS["cpu"]
    aug, plain = REGIMES["augmented"].recipe(base), REGIMES["no_augmentation"].recipe(base)
    assert aug.augment_padding == base.augment_padding and aug.tta == base.tta and aug.low_res_epochs == 0
    assert plain.augment_padding is None and plain.label_smoothing == 0 and plain.ema == 0 and plain.tta == "none"
    assert (plain.lr, plain.width, plain.batch_size) == (base.lr, base.width, base.batch_size)
