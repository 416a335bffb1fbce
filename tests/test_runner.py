"""gapcourse.studies.runner: the one study runner and results store. A recorded run is skipped; each finished run is
written at once with its provenance; another process's lock is waited for (its runs kept) or refused, as the study
asks; a write that fails keeps the trained run and says where; every committed results file reads as it is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gapcourse.outputs import ResultsError
from gapcourse.studies.runner import Run, Shape, open_store, read_results, run_plan

ROOT = Path(__file__).resolve().parent.parent
SHAPE = Shape("toy results file", "the toy study", "a JSON object with a 'runs' list of toy runs",
              own=lambda run: "toy" in run)
DATA = {"profile": "fast", "n_train": 20, "train_sha256": "f" * 64, "train_source": "synthetic", "synthetic": True}


def made_by(payload: dict) -> dict:
    return {"command": "test", "seconds": float(len(payload["runs"]))}


def toy(seed: int, label: str | None = None, **kw) -> Run:
    return Run({"toy": "a", "seed": seed}, label or f"toy seed {seed}", **kw)


def trainer(trained: list):
    def train(run: Run) -> dict:
        trained.append(run.identity["seed"])
        return {**run.identity, "test_acc": 0.5}
    return train


def test_each_run_is_written_as_it_ends_and_a_rerun_skips_what_is_recorded(tmp_path, capsys):
    out, trained = tmp_path / "toy.json", []

    def train_then_stop(run: Run) -> dict:
        if run.identity["seed"] == 1:
            assert [r["seed"] for r in json.loads(out.read_text())["runs"]] == [0]  # seed 0 already on disk
            raise KeyboardInterrupt
        return trainer(trained)(run)

    with pytest.raises(KeyboardInterrupt):
        run_plan(open_store(out, SHAPE, DATA, writer="train"), [toy(0), toy(1)], train_then_stop, provenance=made_by)
    payload = run_plan(open_store(out, SHAPE, DATA, writer="train"), [toy(0), toy(1)], trainer(trained),
                       provenance=made_by)
    assert trained == [0, 1] and [r["seed"] for r in payload["runs"]] == [0, 1]
    assert "toy seed 0: already in toy.json, skipped" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written == payload and written["provenance"]["seconds"] == 2.0
    assert written["provenance"]["train_sha256"] == DATA["train_sha256"]  # the data's provenance on every write


def test_a_run_is_the_same_run_by_the_identitys_keys_the_study_names(tmp_path):
    out, trained = tmp_path / "toy.json", []
    store = open_store(out, SHAPE, DATA, writer="train")
    run_plan(store, [toy(0, label="first name")], trainer(trained), provenance=made_by)
    renamed = Run({"toy": "renamed", "seed": 0}, "another label", same=("seed",))  # a label that changes no network
    other = Run({"toy": "renamed", "seed": 0}, "another run")
    run_plan(store, [renamed, other], trainer(trained), provenance=made_by)
    assert trained == [0, 0] and len(store.read()["runs"]) == 2


def test_a_file_of_another_shape_is_refused_before_any_work_and_left_as_it_is(tmp_path):
    for content in ['{"rows": []}', '{"runs": [{"step": "x"}]}', '{"runs": {}}', "[1, 2]", "not json"]:
        out = tmp_path / "other.json"
        out.write_text(content)
        with pytest.raises(ResultsError):
            open_store(out, SHAPE, DATA, writer="train")
        assert out.read_text() == content
    rows = Shape("row file", "the row study", "'rows' of rows", items="rows", own=lambda r: "row" in r)
    out.write_text('{"rows": [{"other": 1}]}')
    with pytest.raises(ResultsError, match=r"is not a row file \(expected 'rows' of rows\)"):
        read_results(out, rows)
    assert read_results(tmp_path / "absent.json", rows) == {"rows": []}


def test_every_committed_results_file_reads_as_it_is_through_its_studys_shape():
    from gapcourse.config import RESULTS_DIR
    from gapcourse.studies import ablation, budget_recipe, budget_table, heads

    shapes = {"heads.json": heads.SHAPE, "recipe_ablation.json": ablation.ABLATION,
              "gpu_preset_study.json": ablation.GPU_STUDY, "cpu_cutout_check.json": ablation.CUTOUT_CHECK,
              "budget_table.json": budget_table.SHAPE, "budget_recipe.json": budget_recipe.SHAPE}
    for name, shape in shapes.items():
        before = (RESULTS_DIR / name).read_bytes()
        payload = read_results(RESULTS_DIR / name, shape)
        assert payload[shape.items] and payload == json.loads(before), name
        assert (RESULTS_DIR / name).read_bytes() == before
        others = [s for n, s in shapes.items() if n != name and s.items == shape.items]
        assert not any(all(o.own(r) for r in payload[shape.items]) for o in others), f"{name} is another study's"


HOLD = """
import sys, time
from gapcourse.outputs import locked
with locked(sys.argv[1], suffix=sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def _held_by_another_process(path: Path, suffix: str = ".lock") -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), suffix], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.slow
def test_an_exclusive_study_is_refused_while_another_process_writes_its_file(tmp_path):
    out, trained = tmp_path / "toy.json", []
    store = open_store(out, SHAPE, DATA, writer="budget-recipe", exclusive=True)
    holder = _held_by_another_process(out)
    try:
        with pytest.raises(ResultsError, match=f"Another budget-recipe run is writing {re.escape(str(out))}; wait"):
            run_plan(store, [toy(0)], trainer(trained), provenance=made_by)
    finally:
        holder.communicate("")
    assert trained == [] and not out.exists()
    with store.session():  # free again; a session inside a session (the study's own) holds the one lock
        run_plan(store, [toy(0)], trainer(trained), provenance=made_by)
    assert trained == [0] and len(store.read()["runs"]) == 1


ADD_SLOWLY = """
import sys, time
from gapcourse.studies.runner import Run, Shape, open_store
shape = Shape("toy results file", "the toy study", "toy runs", own=lambda run: "toy" in run)
data = {"profile": "fast", "n_train": 20, "train_sha256": "f" * 64, "train_source": "synthetic", "synthetic": True}
store = open_store(sys.argv[1], shape, data, writer="train")
def slowly(payload):
    print("holding", flush=True)
    time.sleep(1.5)  # holds the file's lock meanwhile
    return {"command": "the other process"}
store.add(Run({"toy": "b", "seed": 9}, "other"), {"toy": "b", "seed": 9}, slowly)
"""


@pytest.mark.slow
def test_a_write_waits_for_another_processs_write_and_both_runs_are_kept(tmp_path):
    out, trained = tmp_path / "toy.json", []
    store = open_store(out, SHAPE, DATA, writer="train")
    other = subprocess.Popen([sys.executable, "-c", ADD_SLOWLY, str(out)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    assert other.stdout.readline().strip() == "holding"
    started = time.perf_counter()
    payload = run_plan(store, [toy(0)], trainer(trained), provenance=made_by)
    waited = time.perf_counter() - started
    assert other.wait(timeout=60) == 0
    assert sorted(r["seed"] for r in payload["runs"]) == [0, 9] and waited > 0.5  # it waited, then kept both
    assert json.loads(out.read_text()) == payload


@pytest.mark.slow
def test_a_resumable_run_another_process_claims_is_skipped_and_one_recorded_loses_its_state(tmp_path, capsys):
    out, trained = tmp_path / "toy.json", []
    resume = tmp_path / "resume" / "toy-seed0.pt"
    store = open_store(out, SHAPE, DATA, writer="train")
    resume.parent.mkdir()
    holder = _held_by_another_process(resume, ".claim")
    try:
        payload = run_plan(store, [toy(0, resume=resume)], trainer(trained), provenance=made_by)
    finally:
        holder.communicate("")
    assert trained == [] and payload["runs"] == []
    assert "toy seed 0: another process is training this run (it holds toy-seed0.pt.claim)" in capsys.readouterr().out

    def train_with_state(run: Run) -> dict:
        run.resume.write_bytes(b"state after an epoch")
        return trainer(trained)(run)

    run_plan(store, [toy(0, resume=resume)], train_with_state, provenance=made_by)
    assert trained == [0] and not resume.exists()  # recorded: its state is gone
    resume.write_bytes(b"left by a run that ended between its results and its clean-up")
    run_plan(store, [toy(0, resume=resume)], trainer(trained), provenance=made_by)
    assert trained == [0] and not resume.exists()


def test_a_write_that_fails_keeps_the_trained_run_and_says_where(tmp_path, isolated_cache):
    out = tmp_path / "toy.json"
    store = open_store(out, SHAPE, DATA, writer="train")

    def train_then_lose_the_file(run: Run) -> dict:
        out.mkdir()  # the output became a folder while training
        return {**run.identity, "test_acc": 0.5}

    with pytest.raises(ResultsError, match=r"is a folder.*the trained run \(toy seed 0\) is kept in") as err:
        run_plan(store, [toy(0)], train_then_lose_the_file, provenance=made_by)
    kept = json.loads(Path(re.search(r"is kept in (\S+)\. ", str(err.value)).group(1)).read_text())
    assert kept["runs"] == [{"toy": "a", "seed": 0, "test_acc": 0.5}]
    assert kept["provenance"]["command"] == "test" and kept["provenance"]["profile"] == "fast"

    resumable = tmp_path / "r.json"
    resume = tmp_path / "r-seed0.pt"

    def train_then_refuse(run: Run) -> dict:
        resume.write_bytes(b"the trained run's state")
        resumable.write_text('{"runs": [{"other": "study"}]}')  # another study's file now
        return {**run.identity, "test_acc": 0.5}

    with pytest.raises(ResultsError, match=r"The trained run is kept in .*r-seed0\.pt: once the results file is"):
        run_plan(open_store(resumable, SHAPE, DATA, writer="train"), [toy(0, resume=resume)], train_then_refuse,
                 provenance=made_by)
    assert resume.read_bytes() == b"the trained run's state"


def test_a_store_without_a_file_keeps_the_results_in_memory(tmp_path):
    trained = []
    store = open_store(None, SHAPE, DATA, writer="train")
    payload = run_plan(store, [toy(0), toy(0), toy(1)], trainer(trained), provenance=made_by)
    assert trained == [0, 1] and payload["provenance"]["profile"] == "fast" and len(payload["runs"]) == 2
    assert list(tmp_path.iterdir()) == []
