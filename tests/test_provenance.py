"""The studies' results files (gapcourse.studies.provenance, the runner's store): a fast or synthetic run never
changes a committed file, runs on other data are never counted as seeds, and every bad output is refused before
any training."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import TINY_RECIPE, split_like
from gapcourse import build_net
from gapcourse.__main__ import main
from gapcourse.config import profile, RESULTS_DIR
from gapcourse.data import synthetic_cifar10
from gapcourse.outputs import ResultsError
from gapcourse.studies import provenance as prov_mod


FULL = profile("full", announce=False)
FAST = profile("fast", announce=False)


def test_a_fast_compare_heads_never_touches_the_committed_results(monkeypatch, capsys, isolated_cache,
                                                                       committed_results_unchanged):
    from gapcourse.studies import heads
    from gapcourse import train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(heads, "train_or_load", lambda head, *a, **k: (  # what is written is tested, not training
        build_net(head, width=0.25), train.History(epoch=[1], seconds=[1.0]), False))
    assert main(["compare-heads", "--profile", "fast", "--heads", "gap_linear", "--seeds", "0", "--regimes",
                 "no_augmentation"]) == 0
    out = capsys.readouterr().out
    written = next(line for line in out.splitlines() if line.startswith("written:")).split(": ", 1)[1]
    assert Path(written).is_relative_to(isolated_cache) and "fast" in Path(written).name
    assert "may not change the committed heads.json" in out


def test_the_library_refuses_a_fast_run_into_the_committed_file_before_training(monkeypatch):
    from gapcourse.studies import ablation, heads

    monkeypatch.setattr(heads, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    small = synthetic_cifar10("train", per_class=20)
    with pytest.raises(ResultsError, match="fast-profile run may not change the committed heads.json"):
        heads.compare_heads(small, small, FAST, device=torch.device("cpu"), output=heads.RESULTS_FILE)
    with pytest.raises(ResultsError, match="may not change the committed recipe_ablation.json"):
        ablation.run_ablation(small, small, FAST, device=torch.device("cpu"), output=ablation.RESULTS_FILE)
    with pytest.raises(ResultsError, match="synthetic stand-in may not change"):
        ablation.run_gpu_study(small, small, FULL, device=torch.device("cpu"), output=ablation.GPU_RESULTS_FILE)


def test_a_fast_ablate_goes_to_the_cache_folder(monkeypatch, capsys, isolated_cache):
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


def test_impossible_values_are_refused_when_written(tmp_path, monkeypatch, capsys):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: (-5.0, 2000.0, 1500.0, 0.1))
    monkeypatch.setattr(bench, "pil_vs_tensor", lambda data: (100.0, 800.0))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--train", "--record"]) == 2
    assert "impossible values rows[0].train_ips = -5.0" in capsys.readouterr().err


def test_no_writer_puts_a_fast_profile_payload_into_the_committed_folder():
    """The last guard, for any writer that bypasses write_results (e.g. a new command's own record)."""
    target = RESULTS_DIR / "bench_made_by_a_test.json"
    with pytest.raises(ResultsError, match="fast-profile run may not change the committed"):
        prov_mod.write_json(target, {"provenance": {"profile": "fast"}, "rows": []})
    assert not target.exists()


def test_runs_on_other_data_are_not_counted_as_seeds():
    from gapcourse.measured import runs_of

    run = {"head": "gap_linear", "regime": "augmented", "profile": "fast", "test_acc": 0.2}
    payload = {"provenance": {"profile": "fast", "train_sha256": "real"},
               "runs": [{**run, "seed": 0, "split_sha256": "synthetic", "test_acc": 0.9},
                        {**run, "seed": 0, "split_sha256": "real"}]}
    assert [r["test_acc"] for r in runs_of(payload, "augmented", "gap_linear")] == [0.2]


def test_compare_heads_on_other_data_refuses_to_join_the_first_datas_file(tmp_path, monkeypatch):
    from gapcourse.studies import heads

    synthetic = synthetic_cifar10("train", per_class=3)
    other = split_like(synthetic, seed=1)  # same size and labels, other pixels
    base = replace(TINY_RECIPE, tta="none")
    out = tmp_path / "heads.json"
    first = heads.compare_heads(synthetic, synthetic, FAST, device=torch.device("cpu"), heads=("gap_linear",),
                                      seeds=(0,), regimes=("no_augmentation",), base=base, output=out, progress=False)
    assert first["provenance"]["train_sha256"] == synthetic.fingerprint() == first["runs"][0]["split_sha256"]
    monkeypatch.setattr(heads, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    with pytest.raises(ResultsError, match="another experiment's results"):
        heads.compare_heads(other, other, FAST, device=torch.device("cpu"), heads=("gap_linear",), seeds=(0,),
                                  regimes=("no_augmentation",), base=base, output=out, progress=False)


def test_ablate_does_not_skip_runs_made_on_other_data(tmp_path, monkeypatch):
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

    from gapcourse.studies import ablation, heads

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
    monkeypatch.setattr(heads, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    cpu = torch.device("cpu")
    calls = {"cutout": lambda out: ablation.run_cutout_check(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "gpu": lambda out: ablation.run_gpu_study(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "cpu": lambda out: ablation.run_ablation(data, data, FAST, device=cpu, output=out, seeds=(0,)),
             "heads": lambda out: heads.compare_heads(data, data, FAST, device=cpu, heads=("gap_linear",),
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


@pytest.mark.parametrize("command", ["compare-heads", "ablate"])
def test_a_folder_or_a_json_list_as_output_is_one_line_before_training(command, tmp_path, monkeypatch, capsys):
    from gapcourse.studies import ablation, heads

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(heads, "train_or_load", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained"))
    assert main([command, "--profile", "fast", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    assert main([command, "--profile", "fast", "--output", str(listing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "JSON list" in err and err.count("\n") == 1
    assert listing.read_text() == "[1, 2]"


def test_a_changed_results_file_does_not_mark_the_commit_but_changed_code_does(tmp_path):
    """A study adds its runs to gapcourse/results one by one: its own writes must not mark its later runs +changes."""
    import subprocess

    from gapcourse.studies.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("gapcourse/results/heads.json", "gapcourse/weights/manifest.json", "gapcourse/models.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "gapcourse/results/heads.json").write_text('{"runs": []}\n')
    (tmp_path / "gapcourse/weights/manifest.json").write_text('{"weights": []}\n')
    assert git_commit(tmp_path) == clean
    (tmp_path / "gapcourse/models.py").write_text("# changed\n")
    assert git_commit(tmp_path) == clean + "+changes"
