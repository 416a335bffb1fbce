"""gapcourse.checkpoints: round trip, and every untrustworthy file is refused with a reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gapcourse import build_net
from gapcourse.checkpoints import checkpoint_path, CheckpointError, load_checkpoint, save_checkpoint
from gapcourse.config import profile
from gapcourse.data import Cifar10Split
from gapcourse.recipes import PRESETS


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = build_net("gap_linear", width=0.25).eval()
    path = save_checkpoint(net, tmp_path / "net.pt", test_accuracy=0.5, recipe="cpu")
    return net, path


def test_round_trip_gives_identical_outputs(saved):
    net, path = saved
    again, meta = load_checkpoint(path)
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(net(x), again.eval()(x))
    assert meta == {"test_accuracy": 0.5, "recipe": "cpu"}
    assert again.head_name == "gap_linear" and again.width == 0.25


def test_modified_weights_are_refused(saved):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] += 1e-3
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="modified or damaged"):
        load_checkpoint(path)


def test_truncated_file_is_refused(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "state_dict": Payload()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True refuses"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a gapcourse checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_failed_checkpoint_save_leaves_nothing_behind(tmp_path, monkeypatch):
    from gapcourse import checkpoints

    target = tmp_path / "net.pt"
    target.write_bytes(b"the previous checkpoint")

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", fail)
    with pytest.raises(CheckpointError, match="No space left"):
        save_checkpoint(build_net(width=0.25), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]
    assert target.read_bytes() == b"the previous checkpoint"


def test_a_failing_cleanup_does_not_hide_the_checkpoint_error(tmp_path, monkeypatch):
    from gapcourse import checkpoints

    def read_only(*_a, **_k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(checkpoints.torch, "save", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(CheckpointError, match="Read-only file system"):
        save_checkpoint(build_net(width=0.25), tmp_path / "net.pt")
    with pytest.raises(CheckpointError, match="Could not write the checkpoint"):  # its folder cannot be made
        (tmp_path / "file").write_text("x")
        save_checkpoint(build_net(width=0.25), tmp_path / "file" / "net.pt")


FAST = profile("fast", announce=False)


def tiny_split(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, torch.arange(n) % 10, "test", "t")


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
