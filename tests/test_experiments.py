"""gapcourse.experiments: the transforms behind notebook 04's table, its bookkeeping, and its files."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

from gapcourse import build_net
from gapcourse.config import profile
from gapcourse.data import Cifar10Split
from gapcourse.experiments import (HeadResult, checkpoint_path, measure_head, results_markdown, shift_images,
                                   write_results)
from gapcourse.train import PRESETS, History

FAST = profile("fast", announce=False)


def test_shift_moves_right_and_down_without_wrapping():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    s = shift_images(x, 2)
    assert torch.equal(s[..., 2:, 2:], x[..., :4, :4])
    assert s[..., :2, :].abs().sum() == 0 and s[..., :, :2].abs().sum() == 0  # border = mean colour, no wrap
    assert torch.equal(shift_images(x, 0), x)


def test_checkpoint_name_changes_with_every_ingredient():
    cpu = PRESETS["cpu"]
    data, other = tiny_split(40), tiny_split(40, seed=1)
    base = checkpoint_path("gap_mlp", cpu, FAST, data)
    assert base == checkpoint_path("gap_mlp", cpu, FAST, tiny_split(40))
    others = {checkpoint_path("nin", cpu, FAST, data), checkpoint_path("gap_mlp", replace(cpu, lr=0.1), FAST, data),
              checkpoint_path("gap_mlp", cpu, profile("full", announce=False), data),
              checkpoint_path("gap_mlp", cpu, FAST, tiny_split(30)), checkpoint_path("gap_mlp", cpu, FAST, data, seed=1),
              checkpoint_path("gap_mlp", cpu, FAST, other)}  # same size, other images
    assert base not in others and len(others) == 6
    with pytest.raises(TypeError, match="training split itself"):
        checkpoint_path("gap_mlp", cpu, FAST, 2000)


def tiny_split(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, torch.arange(n) % 10, "test", "t")


@pytest.mark.parametrize("head", ["gap_linear", "flatten_fc"])
def test_measure_head_records_what_a_head_can_and_cannot_do(head):
    torch.manual_seed(0)
    data = tiny_split()
    history = History(epoch=[1, 2], seconds=[3.0, 6.0])
    r = measure_head(build_net(head, width=0.25), history, data, data, device=torch.device("cpu"),
                     recipe=replace(PRESETS["plain"], width=0.25), sizes=(32, 64), shifts=(0, 4))
    assert r.seconds_per_epoch == 3.0 and r.epochs == 2
    assert r.train_acc == r.test_acc and r.overfit_gap == 0  # same data on both sides
    assert r.shift_acc[0] == pytest.approx(r.test_acc)
    if head == "flatten_fc":
        assert r.size_acc[64] is None and "built for" in r.size_errors[64]
    else:
        assert 0 <= r.size_acc[64] <= 1 and not r.size_errors


def test_results_are_written_as_json_csv_and_markdown(tmp_path):
    rows = [HeadResult("gap_mlp", 40690, 1167666, 0.9, 0.85, 0.05, {24: 0.5, 32: 0.85, 64: 0.3}, {},
                       {0: 0.85, 8: 0.6}, 18.0, 14),
            HeadResult("flatten_fc", 532210, 1659186, 0.99, 0.8, 0.19, {24: None, 32: 0.8, 64: None},
                       {24: "built for 256×4×4", 64: "built for 256×4×4"}, {0: 0.8, 8: 0.4}, 18.5, 14)]
    paths = write_results(rows, tmp_path, context="test run")
    assert [p.name for p in paths] == ["heads.json", "heads.csv", "heads.md"]
    data = json.loads(paths[0].read_text())
    assert data["context"] == "test run" and data["results"][1]["size_acc"]["24"] is None
    table = list(csv.DictReader(open(paths[1])))
    assert table[0]["test_acc"] == "0.8500" and table[1]["test_acc_64px"] == ""
    md = paths[2].read_text()
    assert "| flatten_fc | 532,210 |" in md and "cannot run" in md and md.startswith("test run")
    assert results_markdown(rows).count("\n") == 3
