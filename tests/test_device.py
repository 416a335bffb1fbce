"""gapcourse.device: the device a learner asks for, understood or refused with what to change."""

from __future__ import annotations

import pytest
import torch

from gapcourse.device import pick_device


def test_a_device_index_is_understood(monkeypatch):
    with pytest.raises(RuntimeError, match="not available here"):
        pick_device("cuda:1", announce=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1", announce=False) == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match="2 CUDA GPUs"):
        pick_device("cuda:2", announce=False)


def test_a_missing_device_says_how_it_was_asked_for_and_what_to_change(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GAPCOURSE_DEVICE", raising=False)
    with pytest.raises(RuntimeError) as asked:
        pick_device("cuda", announce=False)
    assert "(argument)" in str(asked.value) and "Leave the device out" in str(asked.value)
    assert "GAPCOURSE_DEVICE" not in str(asked.value)  # not set: not the thing to change
    monkeypatch.setenv("GAPCOURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="Unset GAPCOURSE_DEVICE to pick automatically"):
        pick_device(announce=False)
