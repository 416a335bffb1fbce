"""Regression tests for the defects found by trying the course as a careless or hostile user (one test per defect;
each failed on the code before the fix)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest
import torch
from conftest import expected_tensors, write_batches, write_imagefolder, write_tarball

from gapcourse import build_net, checks, data, viz
from gapcourse.__main__ import main
from gapcourse.bench import measure_throughput, peak_rss_mb
from gapcourse.checkpoints import CheckpointError, save_checkpoint
from gapcourse.config import CacheError, profile
from gapcourse.data import Cifar10Split, DataError, load_cifar10, synthetic_cifar10
from gapcourse.device import pick_device
from gapcourse.experiments import architecture_fingerprint, checkpoint_path, train_or_load
from gapcourse.train import PRESETS

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
FULL = profile("full", announce=False)
FAST = profile("fast", announce=False)
TINY_RECIPE = replace(PRESETS["cpu"], batch_size=10, width=0.25, precision="fp32", ema=0.0, channels_last=False,
                      tta="none", epochs=1)


def split_like(template: Cifar10Split, seed: int) -> Cifar10Split:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, template.images.shape, dtype=torch.uint8, generator=gen)
    return Cifar10Split(images, template.labels.clone(), template.split, f"seed {seed}")


# 1 ------------------------------------------------------------------------------------------------------------------
def test_1_a_network_trained_on_other_data_of_the_same_size_is_never_loaded(capsys):
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


def test_1_a_changed_architecture_changes_the_checkpoint_name(monkeypatch):
    before = architecture_fingerprint("gap_mlp", 0.5)
    assert before != architecture_fingerprint("gap_linear", 0.5) != architecture_fingerprint("gap_mlp", 0.25)
    from gapcourse import models

    original = models.make_head
    monkeypatch.setattr(models, "make_head", lambda *a, **k: torch.nn.Sequential(torch.nn.Dropout(0.1),
                                                                                 *original(*a, **k)))
    assert architecture_fingerprint("gap_mlp", 0.5) != before


# 2 ------------------------------------------------------------------------------------------------------------------
def test_2_make_course_exits_non_zero_when_a_notebook_fails(tmp_path):
    import nbformat

    bad = tmp_path / "99_broken.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('broken on purpose')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, bad)
    run = subprocess.run(["make", "-s", "course", "SKIP_INSTALL=1", f"PY={sys.executable}", f"NOTEBOOKS={bad}",
                          f"HTML_DIR={tmp_path / 'html'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "FAILED" in run.stderr and "99_broken" in run.stderr


# 3 ------------------------------------------------------------------------------------------------------------------
def test_3_bench_throughput_runs_on_a_small_dataset():
    small = synthetic_cifar10("train", per_class=30)  # 300 images: fewer than 15 batches of 256
    recipe = replace(PRESETS["cpu"], precision="fp32")
    train_ips, eval_ips, eval_tta_ips, share = measure_throughput(recipe, small, torch.device("cpu"), steps=4)
    assert train_ips > 0 and eval_ips > 0 and eval_tta_ips > 0 and 0 <= share < 1


def test_3_peak_memory_units_follow_the_platform():
    assert peak_rss_mb(2048 * 1024, system="linux") == 2048  # KiB on Linux
    assert peak_rss_mb(2048 * 2**20, system="darwin") == 2048  # bytes on macOS


# 4 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_4_nonsense_epochs_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--epochs", bad])
    assert stop.value.code == 2 and "whole number ≥ 1" in capsys.readouterr().err


def test_4_explicit_epochs_are_obeyed_in_the_fast_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")  # the epoch count is what is tested, not the data
    out_file = tmp_path / "net.pt"
    assert main(["train", "--profile", "fast", "--epochs", "2", "--head", "gap_linear",
                 "--output", str(out_file)]) == 0
    assert "(2 epochs" in capsys.readouterr().out


# 5 ------------------------------------------------------------------------------------------------------------------
def test_5_an_interrupted_tarball_extraction_is_repaired(tmp_path, tiny_sizes, monkeypatch, isolated_cache, capsys):
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
def test_6_a_truncated_image_is_named_with_what_to_do(tmp_path, tiny_sizes):
    root = write_imagefolder(tmp_path / "jpg")
    victim = sorted((root / "train" / "cat").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:60])
    with pytest.raises(DataError) as err:
        load_cifar10("train", source=root, profile=FULL)
    assert str(victim) in str(err.value) and "damaged or truncated" in str(err.value)
    assert victim.stat().st_size == 60, "the user's file is left as it was"


# 7 ------------------------------------------------------------------------------------------------------------------
def test_7_a_cache_path_that_is_a_file_is_explained_and_local_data_still_loads(tmp_path, tiny_sizes, monkeypatch,
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


def test_7_a_cache_that_cannot_be_written_keeps_the_decoded_data(tmp_path, tiny_sizes, monkeypatch, isolated_cache,
                                                                 capsys):
    def refuse(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(data.torch, "save", refuse)
    got = load_cifar10("test", source=write_imagefolder(tmp_path / "jpg"), profile=FULL)
    assert torch.equal(got.images, expected_tensors("test")[0])
    out = capsys.readouterr().out
    assert "Read-only file system" in out and "from memory" in out and "GAPCOURSE_CACHE" in out
    assert not list(isolated_cache.rglob("*.tmp*")), "no temporary file is left behind"


# 8 ------------------------------------------------------------------------------------------------------------------
def test_8_student_copies_check_fails_when_there_is_nothing_to_check(tmp_path, capsys):
    assert main(["student-copies", "--check", "--root", str(tmp_path)]) == 2
    assert "No solution notebooks" in capsys.readouterr().err


# 9 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, 0, 2.5, True])
def test_9_bad_per_class_is_refused(bad):
    with pytest.raises(ValueError, match="per_class"):
        load_cifar10("test", source="synthetic", per_class=bad)


def test_9_a_device_index_is_understood(monkeypatch):
    with pytest.raises(RuntimeError, match="not available here"):
        pick_device("cuda:1", announce=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1", announce=False) == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match="2 CUDA GPUs"):
        pick_device("cuda:2", announce=False)


def test_9_an_answer_that_destroys_its_input_fails_its_check():
    def zeroing(x):
        out = x.detach().mean((2, 3))
        x.data.zero_()
        return out

    result = checks.global_avg_pool(zeroing)
    assert not result.passed and "in place" in result.message

    def zeroing_counts(predictions, labels, k):
        out = checks.ref_per_class_accuracy(predictions, labels, k)
        labels.zero_()
        return out

    assert "in place" in checks.per_class_accuracy(zeroing_counts).message


def test_9_a_float64_answer_is_told_about_its_dtype_not_that_it_raised():
    result = checks.global_avg_pool(lambda x: x.double().mean((2, 3)))
    assert not result.passed and "float64" in result.message and "raised" not in result.message


def test_9_a_squeezing_answer_fails_on_a_batch_of_one():
    result = checks.global_avg_pool(lambda x: x.mean((2, 3)).squeeze())
    assert not result.passed and "squeeze" in result.message


def test_9_plots_say_what_shape_they_expected():
    with pytest.raises(ValueError, match=r"N×3×H×W.*unsqueeze"):
        viz.show_images(torch.zeros(3, 32, 32, dtype=torch.uint8), [0])
    with pytest.raises(ValueError, match="C×H×W"):
        viz.show_feature_maps(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="K×K"):
        viz.plot_confusion(torch.zeros(10))


def test_9_uint8_images_into_the_network_say_call_normalize():
    with pytest.raises(TypeError, match="normalize"):
        build_net(width=0.25)(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_9_a_second_corrupt_cache_does_not_overwrite_the_first(tmp_path, tiny_sizes, isolated_cache):
    root = write_imagefolder(tmp_path / "jpg")
    load_cifar10("test", source=root, profile=FULL)
    cache = next((isolated_cache / "data").glob("cifar10-test-*.pt"))
    for junk in (b"first", b"second"):
        cache.write_bytes(junk)
        load_cifar10("test", source=root, profile=FULL)
    kept = sorted(p.read_bytes() for p in cache.parent.glob(cache.name + ".corrupt-*"))
    assert kept == [b"first", b"second"]


def test_9_a_failed_checkpoint_save_leaves_nothing_behind(tmp_path, monkeypatch):
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


def test_9_info_reports_a_bad_profile_instead_of_crashing(monkeypatch, capsys):
    monkeypatch.setenv("GAPCOURSE_PROFILE", "quick")
    assert main(["info"]) == 1
    assert "profile: PROBLEM" in capsys.readouterr().out


def test_9_the_readme_says_what_the_cache_hash_does_not_protect_against():
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "not against deliberate edits" in readme


def test_9_the_license_file_exists_and_matches_pyproject():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()


# Found while probing beyond the list ---------------------------------------------------------------------------------
def test_an_unknown_head_is_refused_before_any_data_is_loaded(capsys, monkeypatch):
    monkeypatch.setattr(data, "_load_real", lambda *a, **k: pytest.fail("data was loaded"))
    assert main(["train", "--head", "resnet", "--profile", "fast"]) == 2
    assert "Unknown head 'resnet'" in capsys.readouterr().err


def test_missing_data_on_the_command_line_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAPCOURSE_DATA", str(tmp_path / "nowhere"))
    assert main(["prepare-data"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and "Traceback" not in err


def test_recipes_refuse_nonsense_with_the_field_named():
    with pytest.raises(ValueError, match="epochs=0"):
        replace(PRESETS["cpu"], epochs=0)
    with pytest.raises(ValueError, match="tta='mirror'"):
        replace(PRESETS["cpu"], tta="mirror")
    with pytest.raises(ValueError, match="precision='fp8'"):
        replace(PRESETS["cpu"], precision="fp8")


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


def test_the_course_index_records_a_headline_written_from_another_folder(tmp_path, monkeypatch):
    """`make course` runs kernels in notebooks/: the headline file must not depend on the kernel's folder."""
    from gapcourse import runlog

    monkeypatch.chdir(tmp_path)
    code = "import os; import gapcourse.runlog as r; os.chdir('/'); r.headline('88.4 % test accuracy')"
    assert runlog.run_and_log(Path("html/runs.tsv"), "notebooks/03.ipynb", [sys.executable, "-c", code]) == 0
    rows = runlog.read_log(Path("html/runs.tsv"))
    assert rows[0]["headline"] == "88.4 % test accuracy" and rows[0]["status"] == "ok"
    runlog.write_index(Path("html"))
    assert "88.4 % test accuracy" in (tmp_path / "html" / "index.html").read_text()
    assert (tmp_path / "html" / "course_times.json").exists()
