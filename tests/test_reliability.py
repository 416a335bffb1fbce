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
from gapcourse.studies.bench import measure_throughput, peak_rss_mb
from gapcourse.checkpoints import CheckpointError, save_checkpoint
from gapcourse.config import CacheError, profile
from gapcourse.data import Cifar10Split, DataError, load_cifar10, synthetic_cifar10
from gapcourse.device import pick_device
from gapcourse.regimes import architecture_fingerprint, checkpoint_path, train_or_load
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


def test_9_a_missing_device_says_how_it_was_asked_for_and_what_to_change(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("GAPCOURSE_DEVICE", raising=False)
    with pytest.raises(RuntimeError) as asked:
        pick_device("cuda", announce=False)
    assert "(argument)" in str(asked.value) and "Leave the device out" in str(asked.value)
    assert "GAPCOURSE_DEVICE" not in str(asked.value)  # not set: not the thing to change
    monkeypatch.setenv("GAPCOURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="Unset GAPCOURSE_DEVICE to pick automatically"):
        pick_device(announce=False)


def test_9_an_answer_that_destroys_its_input_fails_its_check():
    def zeroing(x):
        out = x.detach().mean((2, 3))
        x.data.zero_()
        return out

    result = checks.global_avg_pool(zeroing)
    assert not result.passed and "in place" in result.message

    def zeroing_counts(predictions, labels, k):  # the learner's own code (calling the reference is not an attempt)
        out = [(predictions[labels == c] == c).float().mean().item() for c in range(k)]
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
    from gapcourse.studies import runlog

    monkeypatch.chdir(tmp_path)
    code = "import os; import gapcourse.studies.runlog as r; os.chdir('/'); r.headline('88.4 % test accuracy')"
    assert runlog.run_and_log(Path("html/runs.tsv"), "notebooks/03.ipynb", [sys.executable, "-c", code]) == 0
    rows = runlog.read_log(Path("html/runs.tsv"))
    assert rows[0]["headline"] == "88.4 % test accuracy" and rows[0]["status"] == "ok"
    runlog.write_index(Path("html"))
    assert "88.4 % test accuracy" in (tmp_path / "html" / "index.html").read_text()
    assert (tmp_path / "html" / "course_times.json").exists()


# Issue 19 -------------------------------------------------------------------------------------------------------------
# (each test failed on the code before the fix; the numbers are the items)
from gapcourse.studies import provenance as prov_mod  # noqa: E402
from gapcourse.config import RESULTS_DIR  # noqa: E402
from gapcourse.outputs import ResultsError  # noqa: E402

COMMITTED = sorted(RESULTS_DIR.glob("*.json"))


@pytest.fixture
def committed_results_unchanged():
    """Snapshot every committed results file; after the test, assert none changed (and put any back)."""
    before = {p: p.read_bytes() for p in COMMITTED}
    yield
    changed = [p.name for p, b in before.items() if not p.exists() or p.read_bytes() != b]
    for p, b in before.items():
        p.write_bytes(b)
    assert not changed, f"a committed results file was changed: {changed}"


def _fake_throughput(*_a, **_k):
    return 1000.0, 2000.0, 1500.0, 0.1


def test_19_1_a_fast_compare_heads_never_touches_the_committed_results(monkeypatch, capsys, isolated_cache,
                                                                       committed_results_unchanged):
    from gapcourse.studies import experiments
    from gapcourse import train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(experiments, "train_or_load", lambda head, *a, **k: (  # what is written is tested, not training
        build_net(head, width=0.25), train.History(epoch=[1], seconds=[1.0]), False))
    assert main(["compare-heads", "--profile", "fast", "--heads", "gap_linear", "--seeds", "0", "--regimes",
                 "no_augmentation"]) == 0
    out = capsys.readouterr().out
    written = next(line for line in out.splitlines() if line.startswith("written:")).split(": ", 1)[1]
    assert Path(written).is_relative_to(isolated_cache) and "fast" in Path(written).name
    assert "may not change the committed heads.json" in out


def test_19_1_the_library_refuses_a_fast_run_into_the_committed_file_before_training(monkeypatch):
    from gapcourse.studies import ablation, experiments

    monkeypatch.setattr(experiments, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    small = synthetic_cifar10("train", per_class=20)
    with pytest.raises(ResultsError, match="fast-profile run may not change the committed heads.json"):
        experiments.compare_heads(small, small, FAST, device=torch.device("cpu"), output=experiments.RESULTS_FILE)
    with pytest.raises(ResultsError, match="may not change the committed recipe_ablation.json"):
        ablation.run_ablation(small, small, FAST, device=torch.device("cpu"), output=ablation.RESULTS_FILE)
    with pytest.raises(ResultsError, match="synthetic stand-in may not change"):
        ablation.run_gpu_study(small, small, FULL, device=torch.device("cpu"), output=ablation.GPU_RESULTS_FILE)


def test_19_1_a_fast_ablate_goes_to_the_cache_folder(monkeypatch, capsys, isolated_cache):
    from gapcourse.studies import ablation

    seen = {}
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(ablation, "run_ablation", lambda *a, output, **k: seen.setdefault("cpu", output) and
                        {"runs": [], "provenance": {"profile": "fast"}})
    monkeypatch.setattr(ablation, "run_gpu_study", lambda *a, output, **k: seen.setdefault("gpu", output) and
                        {"runs": []})
    assert main(["ablate", "--profile", "fast"]) == 0
    assert main(["ablate", "--profile", "fast", "--preset", "gpu"]) == 0
    assert all(Path(p).is_relative_to(isolated_cache) for p in seen.values()), seen


def test_19_1_a_fast_bench_record_never_replaces_the_committed_record(monkeypatch, capsys, isolated_cache,
                                                                      committed_results_unchanged):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", _fake_throughput)
    monkeypatch.setattr(bench, "pil_vs_tensor", lambda data: (100.0, 800.0))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--train", "--record"]) == 0
    out = capsys.readouterr().out
    recorded = Path(next(line for line in out.splitlines() if line.startswith("recorded:")).split(": ", 1)[1])
    assert recorded.is_relative_to(isolated_cache)
    import json

    prov = json.loads(recorded.read_text())["provenance"]
    assert prov["profile"] == "fast" and prov["synthetic"] is True and len(prov["train_sha256"]) == 64


def test_19_1_impossible_values_are_refused_when_written(tmp_path, monkeypatch, capsys):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: (-5.0, 2000.0, 1500.0, 0.1))
    monkeypatch.setattr(bench, "pil_vs_tensor", lambda data: (100.0, 800.0))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--train", "--record"]) == 2
    assert "impossible values rows[0].train_ips = -5.0" in capsys.readouterr().err


def test_19_1_no_writer_puts_a_fast_profile_payload_into_the_committed_folder():
    """The last guard, for any writer that bypasses write_results (e.g. a new command's own record)."""
    target = RESULTS_DIR / "bench_made_by_a_test.json"
    with pytest.raises(ResultsError, match="fast-profile run may not change the committed"):
        prov_mod.write_json(target, {"provenance": {"profile": "fast"}, "rows": []})
    assert not target.exists()


def test_19_2_runs_on_other_data_are_not_counted_as_seeds():
    from gapcourse.measured import runs_of

    run = {"head": "gap_linear", "regime": "augmented", "profile": "fast", "test_acc": 0.2}
    payload = {"provenance": {"profile": "fast", "train_sha256": "real"},
               "runs": [{**run, "seed": 0, "split_sha256": "synthetic", "test_acc": 0.9},
                        {**run, "seed": 0, "split_sha256": "real"}]}
    assert [r["test_acc"] for r in runs_of(payload, "augmented", "gap_linear")] == [0.2]


def test_19_2_compare_heads_on_other_data_refuses_to_join_the_first_datas_file(tmp_path, monkeypatch):
    from gapcourse.studies import experiments

    synthetic = synthetic_cifar10("train", per_class=3)
    other = split_like(synthetic, seed=1)  # same size and labels, other pixels
    base = replace(TINY_RECIPE, tta="none")
    out = tmp_path / "heads.json"
    first = experiments.compare_heads(synthetic, synthetic, FAST, device=torch.device("cpu"), heads=("gap_linear",),
                                      seeds=(0,), regimes=("no_augmentation",), base=base, output=out, progress=False)
    assert first["provenance"]["train_sha256"] == synthetic.fingerprint() == first["runs"][0]["split_sha256"]
    monkeypatch.setattr(experiments, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(ResultsError, match="another experiment's results"):
        experiments.compare_heads(other, other, FAST, device=torch.device("cpu"), heads=("gap_linear",), seeds=(0,),
                                  regimes=("no_augmentation",), base=base, output=out, progress=False)


def test_19_2_ablate_does_not_skip_runs_made_on_other_data(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    from gapcourse.studies import ablation

    synthetic = synthetic_cifar10("train", per_class=3)
    real = split_like(synthetic, seed=1)
    runs = [{"step": k, "seed": s, "recipe": replace(r, precision="fp32").describe(), "profile": "fast",
             "n_train": len(synthetic), "train_sha256": synthetic.fingerprint()}
            for k, _, r in ablation.steps() for s in (0, 1, 2)]
    out = tmp_path / "ablation.json"
    out.write_text(json.dumps({"provenance": {"profile": "fast", "train_sha256": synthetic.fingerprint()},
                               "runs": runs}))

    class Trained(Exception):
        pass

    def fit(*_a, **_k):
        raise Trained

    monkeypatch.setattr(ablation, "fit", fit)
    monkeypatch.setattr(ablation, "resolve_precision", lambda recipe, device: SimpleNamespace(mode="fp32"))
    with pytest.raises(ResultsError, match="another experiment's results"):  # refused, not 11 runs "skipped"
        ablation.run_ablation(real, real, FAST, device=torch.device("cpu"), output=out)
    legacy = tmp_path / "legacy.json"  # a file from before fingerprints: its runs do not stand for this data's
    legacy.write_text(json.dumps({"provenance": {"profile": "fast"},
                                  "runs": [{k: v for k, v in r.items() if k != "train_sha256"} for r in runs]}))
    with pytest.raises(Trained):
        ablation.run_ablation(real, real, FAST, device=torch.device("cpu"), output=legacy)


def test_one_studys_results_file_is_refused_by_another_study_before_any_training(tmp_path, monkeypatch):
    """A careless --output (the gpu study's file given to the cpu-cutout check, the cutout file to the gpu study, the
    gpu file to the cpu ablation or the head comparison) is refused before training: appending would leave a file
    that neither study can read (found by a careless-user review: a KeyError after the training)."""
    import json

    from gapcourse.studies import ablation, experiments

    data = synthetic_cifar10("train", per_class=3)
    prov = {"profile": "fast", "train_sha256": data.fingerprint(), "command": "python -m gapcourse ablate X"}
    gpu_run = {"step": "baseline", "seed": 0, "recipe": ablation.GPU_BASELINE.describe()}
    files = {}
    for name, run in [("gpu", gpu_run), ("cutout", {"arm": "with", "seed": 0, "recipe": "name=cpu"}),
                      ("cpu", {"step": "baseline", "seed": 0, "recipe": "name=cpu-v1"})]:
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps({"provenance": prov, "runs": [run]}))
    before = {name: f.read_bytes() for name, f in files.items()}
    monkeypatch.setattr(ablation, "_train_and_measure", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(experiments, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    cpu = torch.device("cpu")
    calls = {"cutout": lambda out: ablation.run_cutout_check(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "gpu": lambda out: ablation.run_gpu_study(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "cpu": lambda out: ablation.run_ablation(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "heads": lambda out: experiments.compare_heads(data, data, FAST, device=cpu, heads=("gap_linear",),
                                                            seeds=(0,), regimes=("no_augmentation",), output=out,
                                                            progress=False)}
    for study, theirs in [("cutout", "gpu"), ("gpu", "cutout"), ("gpu", "cpu"), ("cpu", "gpu"), ("heads", "gpu")]:
        with pytest.raises(ResultsError, match=r"holds results that are not .*studies never share a file"):
            calls[study](files[theirs])
    assert {name: f.read_bytes() for name, f in files.items()} == before  # every file untouched

    class Trained(Exception):
        pass

    def trained(*_a, **_k):
        raise Trained

    monkeypatch.setattr(ablation, "_train_and_measure", trained)
    with pytest.raises(Trained):  # its own file passes the check, and training starts
        ablation.run_gpu_study(data, data, FAST, device=cpu, output=files["gpu"], seeds=(1,), only=("baseline",),
                               progress=False)


@pytest.mark.parametrize("argv", [["train"], ["compare-heads"], ["bench"], ["ablate"], ["ablate", "--preset", "gpu"]],
                         ids=lambda a: " ".join(a))
def test_19_3_an_unavailable_device_is_one_line_and_exit_2_in_every_command(argv, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(data, "_load_real", lambda *a, **k: pytest.fail("data was loaded"))
    monkeypatch.setenv("GAPCOURSE_DEVICE", "cuda:1")
    assert main([*argv, "--profile", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Device 'cuda:1'") and "not available here" in err and err.count("\n") == 1


def test_19_4_train_refuses_an_unwritable_output_before_training(tmp_path, monkeypatch, capsys):
    from gapcourse import train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained before the output was checked"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["train", "--profile", "fast", "--output", str(blocker / "net.pt")]) == 2
    assert "Cannot write the checkpoint" in capsys.readouterr().err
    assert main(["train", "--profile", "fast", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_19_4_a_failing_cleanup_does_not_hide_the_checkpoint_error(tmp_path, monkeypatch):
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


def test_19_4_bench_checks_both_outputs_before_measuring(tmp_path, monkeypatch, capsys):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: pytest.fail("measured before checking"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["bench", "--profile", "fast", "--record", "--output", str(blocker / "table.md")]) == 2
    assert "Cannot write the Markdown table" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare-heads", "ablate"])
def test_19_4_a_folder_or_a_json_list_as_output_is_one_line_before_training(command, tmp_path, monkeypatch, capsys):
    from gapcourse.studies import ablation, experiments

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(experiments, "train_or_load", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained"))
    assert main([command, "--profile", "fast", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    assert main([command, "--profile", "fast", "--output", str(listing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "JSON list" in err and err.count("\n") == 1
    assert listing.read_text() == "[1, 2]"


def test_19_9_the_default_checkpoint_name_keeps_seed_epochs_and_data(monkeypatch, capsys, isolated_cache):
    from types import SimpleNamespace

    from gapcourse import train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(train, "fit", lambda *a, epochs=None, **k: train.History(  # the name is tested, not training
        epoch=list(range(1, (epochs or 1) + 1)), train_loss=[1.0] * (epochs or 1)))
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: SimpleNamespace(accuracy=0.5))
    saved = []
    for extra in (["--epochs", "3"], ["--epochs", "1"], ["--epochs", "1", "--seed", "1"]):
        assert main(["train", "--profile", "fast", "--head", "gap_linear", *extra]) == 0
        saved.append(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("saved ")))
    assert len(set(saved)) == 3, saved
    assert "seed0_3ep" in saved[0] and "seed0_1ep" in saved[1] and "seed1_1ep" in saved[2]


def test_19_9_compare_heads_seeds_without_a_value_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare-heads", "--seeds"])
    assert stop.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_19_9_prepare_data_fails_when_nothing_could_be_cached(tmp_path, tiny_sizes, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("mine")
    monkeypatch.setenv("GAPCOURSE_CACHE", str(blocker))
    assert main(["prepare-data", "--source", str(write_imagefolder(tmp_path / "jpg"))]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the decoding progress bar
    assert last.startswith("error: nothing could be cached") and "GAPCOURSE_CACHE" in last


def test_19_9_a_webp_file_is_named_not_called_a_partial_copy(tmp_path, tiny_sizes):
    from PIL import Image

    root = write_imagefolder(tmp_path / "jpg")
    victim = sorted((root / "train" / "cat").iterdir())[0]
    Image.open(victim).save(victim.with_suffix(".webp"), lossless=True)
    victim.unlink()
    with pytest.raises(DataError) as err:
        load_cifar10("train", source=root, profile=FULL)
    message = str(err.value)
    assert ".webp" in message and "does not read" in message and "partial" not in message
