"""gapcourse.config and gapcourse.device: the profile switch, the cache folder, device choice, seeds."""

from __future__ import annotations

import pytest
import torch

from gapcourse.config import cache_dir, profile
from gapcourse.device import pick_device, seed_everything


def test_profile_comes_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("GAPCOURSE_PROFILE", "fast")
    assert profile().is_fast and "fast" in capsys.readouterr().out
    monkeypatch.setenv("GAPCOURSE_PROFILE", "FULL")
    assert profile(announce=False).name == "full"
    monkeypatch.delenv("GAPCOURSE_PROFILE")
    assert profile(announce=False).name == "full"


def test_unknown_profile_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("GAPCOURSE_PROFILE", "quick")
    with pytest.raises(ValueError, match=r"'quick'.*\['fast', 'full'\]"):
        profile()


def test_cache_dir_follows_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("GAPCOURSE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_device_choice_is_printed_and_overridable(monkeypatch, capsys):
    assert pick_device("cpu").type == "cpu"
    assert "Device: cpu" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("GAPCOURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="not available here"):
            pick_device()


def test_seed_everything_repeats_draws():
    g1 = seed_everything(3)
    a = (torch.rand(3), torch.randperm(10, generator=g1))
    g2 = seed_everything(3)
    b = (torch.rand(3), torch.randperm(10, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
