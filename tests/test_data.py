"""gapcourse.data: both local layouts, the tarball, the cache, every bad input, the subset, the real copy."""

from __future__ import annotations

from pathlib import Path
import os
import pytest
import re
import socket
import subprocess
import sys

import torch

from conftest import expected_tensors, real_copy, write_batches, write_imagefolder, write_tarball
from gapcourse import data
from gapcourse.__main__ import main
from gapcourse.config import CacheError
from gapcourse.config import profile
from gapcourse.data import DataError, load_cifar10

FULL = profile("full", announce=False)


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("split", ["train", "test"])
def test_imagefolder_layout_gives_exact_pixels(tmp_path, tiny_sizes, split):
    root = write_imagefolder(tmp_path / "jpg")
    got = load_cifar10(split, source=root, profile=FULL)
    images, labels = expected_tensors(split)
    assert got.images.dtype == torch.uint8 and tuple(got.images.shape) == (len(labels), 3, 32, 32)
    assert torch.equal(got.images, images)
    assert torch.equal(got.labels, labels)
    assert got.classes == data.CLASSES and not got.synthetic


@pytest.mark.parametrize("split", ["train", "test"])
def test_batches_layout_matches_imagefolder(tmp_path, tiny_sizes, monkeypatch, split):
    batches = write_batches(tmp_path / "cifar-10-batches-py", monkeypatch)
    from_batches = load_cifar10(split, source=batches, profile=FULL)
    from_parent = load_cifar10(split, source=tmp_path, profile=FULL)  # the folder that contains it
    from_folder = load_cifar10(split, source=write_imagefolder(tmp_path / "jpg"), profile=FULL)
    assert torch.equal(from_batches.images, from_folder.images)
    assert torch.equal(from_batches.labels, from_folder.labels)
    assert torch.equal(from_parent.images, from_batches.images)


def test_tarball_is_extracted_into_the_cache_not_beside_it(tmp_path, tiny_sizes, monkeypatch, isolated_cache):
    batches = write_batches(tmp_path / "build" / "cifar-10-batches-py", monkeypatch)
    source = tmp_path / "source"
    source.mkdir()
    tarball = write_tarball(source / "cifar-10-python.tar.gz", batches, monkeypatch)
    before = snapshot(source)
    got = load_cifar10("train", source=source, profile=FULL)
    assert torch.equal(got.images, expected_tensors("train")[0])
    assert snapshot(source) == before, "the source folder must only be read"
    assert any(isolated_cache.rglob("data_batch_1"))
    tarball.write_bytes(tarball.read_bytes()[:100])  # a partial download
    data.clear_cache()
    with pytest.raises(DataError, match="md5"):
        load_cifar10("test", source=tarball, profile=FULL)


def test_cache_is_used_and_never_written_inside_the_source(tmp_path, tiny_sizes, monkeypatch, isolated_cache):
    root = write_imagefolder(tmp_path / "jpg")
    before = snapshot(root)
    first = load_cifar10("train", source=root, profile=FULL)
    assert snapshot(root) == before
    cached = list((isolated_cache / "data").glob("cifar10-train-*.pt"))
    assert len(cached) == 1

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded again although a valid cache exists")

    monkeypatch.setattr(data, "_decode_imagefolder", no_decoding)
    again = load_cifar10("train", source=root, profile=FULL)
    assert torch.equal(again.images, first.images)


def test_truncated_cache_is_moved_aside_and_rebuilt(tmp_path, tiny_sizes, isolated_cache, capsys):
    root = write_imagefolder(tmp_path / "jpg")
    good = load_cifar10("test", source=root, profile=FULL)
    cache = next((isolated_cache / "data").glob("cifar10-test-*.pt"))
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    rebuilt = load_cifar10("test", source=root, profile=FULL)
    out = capsys.readouterr().out
    assert "cannot be read" in out and "rebuilding" in out
    assert list(cache.parent.glob(cache.name + ".corrupt-*")), "the bad cache is kept for inspection, not deleted"
    assert torch.equal(rebuilt.images, good.images)


def test_tampered_cache_fails_its_digest_and_is_rebuilt(tmp_path, tiny_sizes, isolated_cache, capsys):
    root = write_imagefolder(tmp_path / "jpg")
    good = load_cifar10("test", source=root, profile=FULL)
    cache = next((isolated_cache / "data").glob("cifar10-test-*.pt"))
    payload = torch.load(cache, weights_only=True)
    payload["images"][0, 0, 0, 0] ^= 0xFF  # one changed pixel, digest left as it was
    torch.save(payload, cache)
    rebuilt = load_cifar10("test", source=root, profile=FULL)
    assert "SHA-256" in capsys.readouterr().out
    assert torch.equal(rebuilt.images, good.images)


def test_partial_imagefolder_is_refused(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg", skip=("train", 5))
    with pytest.raises(DataError, match=r"holds 29 images.*has 30.*partial"):
        load_cifar10("train", source=root, profile=FULL)


def test_unbalanced_classes_are_refused(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg", move=(0, 1))
    with pytest.raises(DataError, match="unbalanced"):
        load_cifar10("train", source=root, profile=FULL)


def test_wrong_image_size_names_the_file(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg", resize=("test", 3))
    with pytest.raises(DataError, match=r"0003\.png is 33x33.*32x32"):
        load_cifar10("test", source=root, profile=FULL)


def test_wrong_class_folders_are_named(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg")
    (root / "train" / "cat").rename(root / "train" / "kitten")
    with pytest.raises(DataError, match="kitten"):
        load_cifar10("train", source=root, profile=FULL)


def test_corrupt_batch_file_fails_md5(tmp_path, tiny_sizes, monkeypatch):
    batches = write_batches(tmp_path / "cifar-10-batches-py", monkeypatch)
    with open(batches / "test_batch", "ab") as fh:
        fh.write(b"junk")
    with pytest.raises(DataError, match="md5"):
        load_cifar10("test", source=batches, profile=FULL)


def test_unrecognised_or_missing_source_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="does not look like a CIFAR-10 copy.*GAPCOURSE_DATA"):
        load_cifar10("train", source=tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist.*GAPCOURSE_DATA") as err:
        load_cifar10("train", source=tmp_path / "nowhere")
    assert "relative path" not in str(err.value)


def test_a_missing_relative_source_names_the_folder_it_was_read_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAPCOURSE_DATA", "../data/cifar10")
    with pytest.raises(DataError, match=f"read from the current folder {re.escape(str(tmp_path))}, so it means "
                                        f"{re.escape(str(tmp_path / '..' / 'data' / 'cifar10'))} .*absolute path"):
        load_cifar10("train")


def test_offline_without_data_fails_fast_with_advice(monkeypatch):
    monkeypatch.delenv("GAPCOURSE_DATA", raising=False)

    probes = []

    def unreachable(address, timeout=None, *_args, **_kwargs):
        probes.append(timeout)
        raise OSError("Name or service not known")

    def download(*_args, **_kwargs):
        raise AssertionError("the download was attempted although the host could not be reached")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr("torchvision.datasets.CIFAR10", download)
    with pytest.raises(DataError, match=r"cannot be reached.*GAPCOURSE_DATA=/path/to/cifar10") as err:
        load_cifar10("test")
    # fast: one probe, with a timeout of seconds (no retries, no wait for the download's own timeouts)
    assert len(probes) == 1 and probes[0] is not None and 0 < probes[0] <= 10, probes
    assert "synthetic" in str(err.value)  # offers the stand-in, but does not fall back to it


def test_synthetic_only_on_request_and_loud(monkeypatch, capsys):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    with pytest.warns(data.SyntheticDataWarning):
        fake = load_cifar10("train", profile=FULL)
    assert "SYNTHETIC STAND-IN DATA" in capsys.readouterr().out
    assert fake.synthetic and "SYNTHETIC" in repr(fake)
    assert fake.class_counts() == [500] * 10


def test_subset_is_balanced_and_deterministic(tmp_path, tiny_sizes):
    full = load_cifar10("train", source=write_imagefolder(tmp_path / "jpg"), profile=FULL)
    a, b = full.subset(2), full.subset(2)
    assert a.class_counts() == [2] * 10
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="smallest class has 3"):
        full.subset(4)


def test_normalize_checks_shape_and_inverts():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    back = data.denormalize(data.normalize(x))
    assert torch.allclose(back, x.float() / 255, atol=1e-5)
    with pytest.raises(ValueError, match=r"N×3×H×W, got shape \(3, 8, 8\)"):
        data.normalize(x[0])


needs_real = pytest.mark.skipif(real_copy() is None, reason="no local CIFAR-10 copy (set GAPCOURSE_DATA)")


@pytest.mark.slow
@needs_real
def test_real_copy_is_complete_and_balanced():
    train = load_cifar10("train", source=real_copy(), profile=FULL)
    test = load_cifar10("test", source=real_copy(), profile=FULL)
    assert tuple(train.images.shape) == (50_000, 3, 32, 32) and train.class_counts() == [5_000] * 10
    assert tuple(test.images.shape) == (10_000, 3, 32, 32) and test.class_counts() == [1_000] * 10
    # The statistics the course normalises with describe these images (JPEG re-encoding moves them slightly).
    mean = (train.images[::10].float() / 255).mean((0, 2, 3))  # every 10th image: all classes
    assert torch.allclose(mean, torch.tensor(data.MEAN), atol=0.01)


@pytest.mark.slow
@needs_real
def test_fast_profile_takes_a_balanced_real_subset():
    fast = profile("fast", announce=False)
    train = load_cifar10("train", source=real_copy(), profile=fast)
    test = load_cifar10("test", source=real_copy(), profile=fast)
    assert train.class_counts() == [fast.train_per_class] * 10
    assert test.class_counts() == [fast.test_per_class] * 10
    assert not train.synthetic and os.fspath(real_copy()) in train.source


def test_19_8_spaces_around_the_data_path_are_removed_and_said(tmp_path, tiny_sizes, monkeypatch, capsys):
    root = write_imagefolder(tmp_path / "jpg")
    monkeypatch.setenv("GAPCOURSE_DATA", f"{root}  ")
    got = load_cifar10("test", profile=FULL)
    assert torch.equal(got.images, expected_tensors("test")[0])
    assert f"GAPCOURSE_DATA='{root}  ' has spaces around it; using '{root}'" in capsys.readouterr().out
    monkeypatch.setenv("GAPCOURSE_DATA", f"{tmp_path / 'nowhere'} ")
    with pytest.raises(DataError, match=f"source '{tmp_path / 'nowhere'}' does not exist"):
        load_cifar10("test", profile=FULL)


ROOT = Path(__file__).resolve().parents[1]


# 5 ------------------------------------------------------------------------------------------------------------------
def test_an_interrupted_tarball_extraction_is_repaired(tmp_path, tiny_sizes, monkeypatch, isolated_cache, capsys):
    batches = write_batches(tmp_path / "build" / "cifar-10-batches-py", monkeypatch)
    tarball = write_tarball(tmp_path / "cifar-10-python.tar.gz", batches, monkeypatch)
    load_cifar10("train", source=tarball, profile=FULL)
    extracted = next(isolated_cache.rglob("data_batch_1"))
    extracted.write_bytes(extracted.read_bytes()[:500])  # as if Ctrl-C had stopped the extraction
    data.clear_cache()
    got = load_cifar10("train", source=tarball, profile=FULL)
    assert torch.equal(got.images, expected_tensors("train")[0])
    assert "extracting" in capsys.readouterr().out


# 6 ------------------------------------------------------------------------------------------------------------------
def test_a_truncated_image_is_named_with_what_to_do(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg")
    victim = sorted((root / "train" / "cat").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.raises(DataError) as err:
        load_cifar10("train", source=root, profile=FULL)
    assert str(victim) in str(err.value) and "damaged or truncated" in str(err.value)
    assert victim.stat().st_size == 60, "the user's file is left as it was"


# 7 ------------------------------------------------------------------------------------------------------------------
def test_a_cache_path_that_is_a_file_is_explained_and_local_data_still_loads(tmp_path, tiny_sizes, monkeypatch,
                                                                               capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    monkeypatch.setenv("GAPCOURSE_CACHE", str(blocker))
    got = load_cifar10("test", source=write_imagefolder(tmp_path / "jpg"), profile=FULL)
    assert torch.equal(got.images, expected_tensors("test")[0])
    out = capsys.readouterr().out
    assert str(blocker) in out and "GAPCOURSE_CACHE" in out and "without caching" in out
    assert blocker.read_text() == "mine"
    monkeypatch.delenv("GAPCOURSE_DATA", raising=False)
    with pytest.raises(CacheError, match="is a file"):
        load_cifar10("test", profile=FULL)  # a download needs the cache


def test_a_cache_that_cannot_be_written_keeps_the_decoded_data(tmp_path, tiny_sizes, monkeypatch, isolated_cache,
                                                                 capsys):
    def refuse(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(data.torch, "save", refuse)
    got = load_cifar10("test", source=write_imagefolder(tmp_path / "jpg"), profile=FULL)
    assert torch.equal(got.images, expected_tensors("test")[0])
    out = capsys.readouterr().out
    assert "Read-only file system" in out and "from memory" in out and "GAPCOURSE_CACHE" in out
    assert not list(isolated_cache.rglob("*.tmp*")), "no temporary file is left behind"


# 9 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, 0, 2.5, True])
def test_bad_per_class_is_refused(bad):
    with pytest.raises(ValueError, match="per_class"):
        load_cifar10("test", source="synthetic", per_class=bad)


def test_a_second_corrupt_cache_does_not_overwrite_the_first(tmp_path, tiny_sizes, isolated_cache):
    root = write_imagefolder(tmp_path / "jpg")
    load_cifar10("test", source=root, profile=FULL)
    cache = next((isolated_cache / "data").glob("cifar10-test-*.pt"))
    for junk in (b"first", b"second"):
        cache.write_bytes(junk)
        load_cifar10("test", source=root, profile=FULL)
    kept = sorted(p.read_bytes() for p in cache.parent.glob(cache.name + ".corrupt-*"))
    assert kept == [b"first", b"second"]


@pytest.mark.slow
def test_two_processes_writing_the_same_cache_both_succeed(tmp_path, tiny_sizes, isolated_cache):
    """Two notebooks decoding into one cache at once: each writes its own temporary file and renames it."""
    root = write_imagefolder(tmp_path / "jpg")
    code = ("import sys; sys.path.insert(0, {tests!r}); from conftest import TINY_SIZES; from gapcourse import data;"
            "data.SPLIT_SIZES = dict(TINY_SIZES); from gapcourse.config import profile;"
            "d = data.load_cifar10('test', source={root!r}, profile=profile('full', announce=False));"
            "print(len(d))").format(tests=str(ROOT / "tests"), root=str(root))
    env = dict(os.environ, GAPCOURSE_CACHE=str(isolated_cache))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and all(o.strip().endswith("10") for o in outs)
    assert not list(isolated_cache.rglob("*.tmp*"))
    again = load_cifar10("test", source=root, profile=FULL)
    assert torch.equal(again.images, expected_tensors("test")[0])


def test_prepare_data_fails_when_nothing_could_be_cached(tmp_path, tiny_sizes, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    monkeypatch.setenv("GAPCOURSE_CACHE", str(blocker))
    assert main(["prepare-data", "--source", str(write_imagefolder(tmp_path / "jpg"))]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the decoding progress bar
    assert last.startswith("error: nothing could be cached") and "GAPCOURSE_CACHE" in last


def test_a_webp_file_is_named_not_called_a_partial_copy(tmp_path, tiny_sizes):
    from PIL import Image

    root = write_imagefolder(tmp_path / "jpg")
    victim = sorted((root / "train" / "cat").iterdir())[0]
    Image.open(victim).save(victim.with_suffix(".webp"), lossless=True)
    victim.unlink()
    with pytest.raises(DataError) as err:
        load_cifar10("train", source=root, profile=FULL)
    message = str(err.value)
    assert ".webp" in message and "does not read" in message and "partial" not in message
