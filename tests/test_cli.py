"""The command line and the benchmark's bookkeeping (no timing is asserted: speed is the benchmark's job)."""

from __future__ import annotations

from pathlib import Path
import pytest

import torch

from conftest import real_copy
from gapcourse import data
from gapcourse.__main__ import main
from gapcourse.checkpoints import load_checkpoint
from gapcourse.studies.bench import Row, format_table, time_to_accuracy


def test_info_names_versions_device_and_data(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "gapcourse 0.1.0" in out and "torch" in out and "Device:" in out and "GAPCOURSE_DATA" in out


@pytest.mark.slow
def test_train_command_saves_a_loadable_checkpoint(tmp_path, capsys):
    if real_copy() is None:
        pytest.skip("no local CIFAR-10 copy")
    out_file = tmp_path / "net.pt"
    assert main(["train", "--profile", "fast", "--epochs", "1", "--head", "gap_linear", "--output",
                 str(out_file)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    model, meta = load_checkpoint(out_file)
    assert model.head_name == "gap_linear" and 0.0 <= meta["test_accuracy"] <= 1.0
    assert len(meta["history"]["step_loss"]) == 2000 // 256


def test_time_to_accuracy_takes_the_first_epoch_over_the_line():
    seconds, accs = [10.0, 20.0, 30.0, 40.0], [0.5, 0.72, 0.69, 0.85]
    assert time_to_accuracy(seconds, accs, 0.70) == 20.0
    assert time_to_accuracy(seconds, accs, 0.80) == 40.0
    assert time_to_accuracy(seconds, accs, 0.90) is None


def test_table_has_one_row_per_preset_and_the_pipeline_ratio():
    rows = [Row("cpu", 0.5, "bf16", 2500.0, 9000.0, 4000.0, 0.05, {0.7: 55.0, 0.8: 143.0, 0.9: None}, 0.868, 249.0,
                1400.0),
            Row("plain", 1.0, "fp32", 330.0, 1200.0, 1200.0, 0.01)]
    table = format_table(rows, pil=3800.0, tensor=33000.0, header="Device: test")
    lines = table.splitlines()
    assert lines[0] == "Device: test"
    assert "to 92 %" in table and "to 93 %" in table
    assert any(line.startswith("| cpu | 0.5 | bf16 | 2,500 | 9,000 | 4,000 | 5.0% | 55 s | 143 s | – |")
               and "| 86.80% | 249 s | 1,400 MB |" in line for line in lines)
    assert any(line.startswith("| plain | 1.0 | fp32 | 330 |") and line.count("–") == 10 for line in lines)
    assert "**8.7×**" in table


@pytest.mark.parametrize("args", [["train", "--seed", "-1"], ["budget-table", "--seed", "1.5"],
                                  ["compare-heads", "--seeds", "0", "-2"], ["ablate", "--seeds", "x"]])
def test_a_bad_seed_is_refused_before_any_data_is_loaded(args, capsys):
    from gapcourse.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2 and "expected a whole number from 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ablate", "budget-table", "compare-heads", "train", "bench"])
@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_output_name_is_refused_not_taken_for_the_default(command, name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--output", name])
    assert stop.value.code == 2 and "--output: needs a file name" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["ablate", "--preset", "cpu-cutout"], ["ablate", "--preset", "gpu"],
                                     ["budget-table"], ["compare-heads"]])
def test_a_bad_output_is_refused_before_any_data_is_loaded(command, tmp_path, monkeypatch, capsys):
    from gapcourse import data as data_mod

    monkeypatch.setattr(data_mod, "load_cifar10", lambda *a, **k: pytest.fail("loaded data before refusing"))
    assert main([*command, "--output", str(tmp_path)]) == 2  # a folder
    assert "is a folder; the results file must be a file" in capsys.readouterr().err
    not_results = tmp_path / "notes.json"
    not_results.write_text("[1, 2]")
    assert main([*command, "--output", str(not_results)]) == 2
    assert not_results.read_text() == "[1, 2]"


# ---- the output guard on the command line (gapcourse.outputs; every case of every writer: tests/test_outputs.py) ----

def test_train_and_bench_refuse_committed_files_before_any_work(monkeypatch, capsys):
    from gapcourse.studies import bench
    from gapcourse import config
    from gapcourse import data, train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(data, "load_cifar10", lambda *a, **k: pytest.fail("loaded data before refusing"))
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    monkeypatch.setattr(bench, "load_cifar10", lambda *a, **k: pytest.fail("loaded data before refusing"))
    weights = config.PACKAGE_DIR / "weights" / "gap_mlp.pt"
    results = config.RESULTS_DIR / "heads.json"
    record = config.RESULTS_DIR / "bench_cpu.json"
    before = {p: p.read_bytes() for p in (weights, results, record)}
    for argv, said in ((["train", "--epochs", "1", "--output", str(weights)], "`train` may not change it"),
                       (["train", "--output", str(results)], "`train` may not change it"),
                       # bench writes bench_cpu.json itself, with --record; never its Markdown table into it
                       (["bench", "--train", "--output", str(record)], "named as a JSON results file")):
        assert main(argv) == 2, argv
        assert said in capsys.readouterr().err
    assert all(p.read_bytes() == b for p, b in before.items())


def test_an_ablation_into_a_budget_table_file_is_refused_before_training(tmp_path, monkeypatch, capsys):
    from gapcourse.studies import ablation
    from gapcourse import config

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(ablation, "fit", lambda *a, **k: pytest.fail("trained before refusing"))
    table = tmp_path / "budget.json"
    table.write_text((config.RESULTS_DIR / "budget_table.json").read_text())
    before = table.read_bytes()
    for preset in (["--preset", "gpu", "--only", "baseline", "--seeds", "0"], ["--preset", "cpu-cutout"], []):
        assert main(["ablate", "--profile", "fast", *preset, "--output", str(table)]) == 2
        assert "it holds 'rows'" in capsys.readouterr().err
    assert table.read_bytes() == before


def test_an_output_with_a_tilde_names_one_file_throughout(tmp_path, monkeypatch, capsys):
    import json

    from gapcourse.studies import ablation

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "p.json").write_text(json.dumps({"runs": [{"step": "baseline", "seed": 0, "what": "x",
                                                           "recipe": "name=gpu"}]}))
    seen = []
    monkeypatch.setattr(ablation, "run_gpu_study", lambda *a, output, **k: seen.append(output) or
                        json.loads(Path(output).read_text()))  # the run was recorded already: nothing new
    monkeypatch.setattr(ablation, "gpu_study_markdown", lambda payload: "")
    assert main(["ablate", "--profile", "fast", "--preset", "gpu", "--only", "baseline", "--seeds", "0",
                 "--output=~/p.json"]) == 0
    out = capsys.readouterr().out
    assert seen == [tmp_path / "p.json"] and f"nothing new written to {tmp_path / 'p.json'}" in out, out


@pytest.mark.parametrize("argv, saved", [(["ablate", "--preset", "gpu"], True), (["train", "--preset", "gpu"], False),
                                         (["budget-table"], False)])
def test_an_interrupt_promises_saved_epochs_only_where_they_are_saved(argv, saved, monkeypatch, capsys):
    from gapcourse import __main__ as cli

    def interrupted(_args):
        raise KeyboardInterrupt

    for name in ("_ablate", "_train", "_budget_table"):
        monkeypatch.setattr(cli, name, interrupted)
    assert main(argv) == 130
    assert ("finished epochs are saved" in capsys.readouterr().err) is saved


# 4 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_nonsense_epochs_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--epochs", bad])
    assert stop.value.code == 2 and "whole number ≥ 1" in capsys.readouterr().err


@pytest.mark.slow
def test_explicit_epochs_are_obeyed_in_the_fast_profile(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")  # the epoch count is what is tested, not the data
    out_file = tmp_path / "net.pt"
    assert main(["train", "--profile", "fast", "--epochs", "2", "--head", "gap_linear",
                 "--output", str(out_file)]) == 0
    assert "(2 epochs" in capsys.readouterr().out


def test_info_reports_a_bad_profile_instead_of_crashing(monkeypatch, capsys):
    monkeypatch.setenv("GAPCOURSE_PROFILE", "quick")
    assert main(["info"]) == 1
    assert "profile: PROBLEM" in capsys.readouterr().out


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


@pytest.mark.parametrize("argv", [["train"], ["compare-heads"], ["bench"], ["ablate"], ["ablate", "--preset", "gpu"]],
                         ids=lambda a: " ".join(a))
def test_an_unavailable_device_is_one_line_and_exit_2_in_every_command(argv, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(data, "_load_real", lambda *a, **k: pytest.fail("data was loaded"))
    monkeypatch.setenv("GAPCOURSE_DEVICE", "cuda:1")
    assert main([*argv, "--profile", "fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Device 'cuda:1'") and "not available here" in err and err.count("\n") == 1


def test_train_refuses_an_unwritable_output_before_training(tmp_path, monkeypatch, capsys):
    from gapcourse import train

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained before the output was checked"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["train", "--profile", "fast", "--output", str(blocker / "net.pt")]) == 2
    assert "Cannot write the checkpoint" in capsys.readouterr().err
    assert main(["train", "--profile", "fast", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_the_default_checkpoint_name_keeps_seed_epochs_and_data(monkeypatch, capsys, isolated_cache):
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


def test_compare_heads_seeds_without_a_value_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare-heads", "--seeds"])
    assert stop.value.code == 2 and "--seeds" in capsys.readouterr().err


@pytest.mark.parametrize("argv, named", [(["--answers", "hide"], "invalid choice: 'hide'"),
                                         (["--answers"], "expected one argument"),
                                         (["--out"], "expected one argument")])
def test_student_copies_answers_takes_keep_or_drop_and_out_a_folder(argv, named, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["student-copies", *argv])
    assert stop.value.code == 2 and named in capsys.readouterr().err


def test_student_copies_keeps_the_answers_by_default():
    from gapcourse.__main__ import build_parser

    args = build_parser().parse_args(["student-copies"])
    assert (args.answers, args.out) == ("keep", None)
