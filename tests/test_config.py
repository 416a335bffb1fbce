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


def test_the_fast_profile_names_the_data_it_runs_on(monkeypatch, capsys):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    profile("fast")
    assert "the SYNTHETIC stand-in" in capsys.readouterr().out  # not "a small subset of CIFAR-10"
    monkeypatch.delenv("GAPCOURSE_DATA")
    profile("fast")
    assert "a small subset of CIFAR-10" in capsys.readouterr().out


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


# Issue 19, item 8: environment values ---------------------------------------------------------------------------------
def test_19_8_spaces_around_the_cache_path_are_removed_and_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAPCOURSE_CACHE", f"  {tmp_path / 'c'} ")
    assert cache_dir() == tmp_path / "c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"], "no folder named ' ' in the working directory"
    assert "has spaces around it" in capsys.readouterr().out


def test_19_8_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GAPCOURSE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert cache_dir() == tmp_path / "home" / ".cache" / "gapcourse"
    assert not (tmp_path / "~").exists()
    assert "relative path, which the XDG specification says to ignore" in capsys.readouterr().out
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gapcourse"


def test_a_relative_cache_variable_is_read_from_the_current_folder_and_said(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAPCOURSE_CACHE", "cache")
    assert cache_dir() == tmp_path / "cache"
    out = capsys.readouterr().out
    assert f"is a relative path, read from the current folder: using {tmp_path / 'cache'}" in out
    assert "set an absolute path" in out
    monkeypatch.chdir(tmp_path / "notebooks")  # where a notebook runs: another folder, said again
    assert cache_dir() == tmp_path / "notebooks" / "cache"
    assert str(tmp_path / "notebooks" / "cache") in capsys.readouterr().out


def test_19_8_a_tilde_in_the_cache_variable_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GAPCOURSE_CACHE", "~/gc")
    assert cache_dir() == tmp_path / "home" / "gc"
