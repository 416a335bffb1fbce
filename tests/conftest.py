"""Fixtures: miniature CIFAR-10 copies in both layouts, written by the tests themselves."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gapcourse import data

TINY_SIZES = {"train": 30, "test": 10}  # 3 and 1 images per class


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache folder, so no test sees another's (or the user's) cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GAPCOURSE_CACHE", str(folder))
    return folder


@pytest.fixture
def tiny_sizes(monkeypatch):
    """Make the loader expect the miniature split sizes instead of 50 000 / 10 000."""
    monkeypatch.setattr(data, "SPLIT_SIZES", dict(TINY_SIZES))
    return TINY_SIZES


def tiny_arrays(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """N×32×32×3 uint8 images and balanced labels (class order, as in an ImageFolder listing)."""
    rng = np.random.default_rng(seed + (split == "test"))
    n = TINY_SIZES[split]
    labels = np.repeat(np.arange(10), n // 10)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, labels


def write_imagefolder(root: Path, *, skip: tuple[str, int] | None = None, resize: tuple[str, int] | None = None,
                      move: tuple[int, int] | None = None) -> Path:
    """Write train/ and test/ as lossless PNGs. ``skip=(split, i)`` leaves one image out, ``resize`` writes one at
    33×33, ``move=(from_class, to_class)`` moves one train image between classes (unbalanced, same total)."""
    for split in ("train", "test"):
        images, labels = tiny_arrays(split)
        for cls in data.CLASSES:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i, (img, lab) in enumerate(zip(images, labels)):
            if skip == (split, i):
                continue
            cls = int(lab)
            if move and split == "train" and cls == move[0] and i % 3 == 0:
                cls = move[1]
            pic = Image.fromarray(img)
            if resize == (split, i):
                pic = pic.resize((33, 33))
            pic.save(root / split / data.CLASSES[cls] / f"{i:04d}.png")
    return root


def write_batches(folder: Path, monkeypatch) -> Path:
    """Write torchvision-style pickled batches (one train batch, one test batch) and point the md5 list at them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, name in (("train", "data_batch_1"), ("test", "test_batch")):
        images, labels = tiny_arrays(split)
        entry = {"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), "labels": labels.tolist()}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)
        files[split] = [(name, hashlib.md5((folder / name).read_bytes()).hexdigest())]
    monkeypatch.setattr(data, "_BATCH_FILES", files)
    return folder


def write_tarball(path: Path, batches: Path, monkeypatch) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    monkeypatch.setattr(data, "_TARBALL", (path.name, hashlib.md5(path.read_bytes()).hexdigest()))
    return path


def expected_tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = tiny_arrays(split)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


def real_copy() -> str | None:
    """The real CIFAR-10 copy this machine has (GAPCOURSE_DATA or the shared folder), if any."""
    where = os.environ.get("GAPCOURSE_DATA")
    return where if where and where != "synthetic" and Path(where).exists() else None


@pytest.fixture
def committed_results_unchanged():
    """Every committed results file and shipped weight, byte for byte, before and after the test; a changed one is
    put back (atomically: a test run beside this one never reads a half-written file) and the test fails."""
    from gapcourse.atomic import replacing
    from gapcourse.config import PACKAGE_DIR

    files = sorted((PACKAGE_DIR / "results").glob("*.json")) + sorted((PACKAGE_DIR / "weights").glob("*"))
    before = {p: p.read_bytes() for p in files}
    yield
    changed = [p for p, b in before.items() if not p.exists() or p.read_bytes() != b]
    for p in changed:
        with replacing(p) as tmp:
            tmp.write_bytes(before[p])
    assert not changed, f"a committed file was changed: {[p.name for p in changed]}"


# A one-epoch tiny recipe, and a split of random images shaped like another (other data of the same size): shared by
# tests/test_provenance.py and tests/test_regimes.py.
def _tiny_recipe():
    from dataclasses import replace

    from gapcourse.recipes import PRESETS

    return replace(PRESETS["cpu"], batch_size=10, width=0.25, precision="fp32", ema=0.0, channels_last=False,
                   tta="none", epochs=1)


TINY_RECIPE = _tiny_recipe()


def split_like(template, seed: int):
    """Random uint8 images shaped like ``template``'s, with its labels: other data of the same size."""
    from gapcourse.data import Cifar10Split

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, template.images.shape, dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, template.labels.clone(), template.split, f"seed {seed}")
