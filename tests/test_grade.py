"""`python -m gapcourse grade`: a class's student notebooks, each run in its own kernel, tabulated per exercise.

The submissions are made here from the student copy of notebook 01: right, wrong, empty (as handed out), broken
(a syntax error, a renamed function, a SystemExit), one that kills its kernel, one that loops forever inside an
answer, one that loops forever and ignores the interrupt, and a file that is not a notebook. Each costs its own rows.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import nbformat
import pytest

from gapcourse import checks
from gapcourse.classroom import grade
from gapcourse.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "notebooks" / "student"
RIGHT = {
    "flatten_head_params": "def flatten_head_params(channels, side, hidden=(128, 56), classes=10):\n"
                           "    sizes = [channels * side * side, *hidden, classes]\n"
                           "    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))",
    "global_avg_pool": "def global_avg_pool(x):\n    return x.mean((2, 3))",
}
WRONG = {
    "flatten_head_params": "def flatten_head_params(channels, side, hidden=(128, 56), classes=10):\n"
                           "    sizes = [channels * side * side, *hidden, classes]\n"
                           "    return sum(a * b for a, b in zip(sizes, sizes[1:]))  # no biases",
    "global_avg_pool": "def global_avg_pool(x):\n    return x.sum((2, 3))",
}


def handout() -> nbformat.NotebookNode:
    return nbformat.read(STUDENT / "01_gap_by_hand.ipynb", as_version=4)


def exercise_cell(nb: nbformat.NotebookNode, name: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(f"def {name}("))


def answered(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    for name, source in answers.items():
        nb.cells[exercise_cell(nb, name)].source = source
    return nb


def small(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The title, the setup cell, and each exercise with its check cell: a quick notebook to run."""
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "from gapcourse import" in c.source
                 and "nbval-skip" not in c.metadata.get("tags", []))  # the setup cell, not the Colab install cell
    keep = [0, setup]
    for name in RIGHT:
        i = exercise_cell(nb, name)
        keep += [i, i + 1]
    nb.cells = [nb.cells[i] for i in keep]
    return nb


def wrong_message(name: str) -> str:
    space: dict = {}
    exec(WRONG[name], space)  # noqa: S102 - the test's own wrong answer, to ask the check what it says
    return checks.CHECKS[name](space[name]).message


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("submissions")
    nbformat.write(answered(handout(), RIGHT), folder / "right.ipynb")
    nbformat.write(small(answered(handout(), WRONG)), folder / "wrong.ipynb")
    nbformat.write(handout(), folder / "empty.ipynb")
    broken = small(handout())
    broken.cells[exercise_cell(broken, "global_avg_pool")].source = "def global_avg_pool(x)\n    return x.mean((2, 3))"
    i = exercise_cell(broken, "flatten_head_params")
    broken.cells[i].source = RIGHT["flatten_head_params"].replace("def flatten_head_params", "def flatten_params")
    broken.cells.insert(2, nbformat.v4.new_code_cell('raise SystemExit("I am done")'))
    nbformat.write(broken, folder / "broken.ipynb")
    quits = small(answered(handout(), RIGHT))
    quits.cells.insert(2, nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    nbformat.write(quits, folder / "quits.ipynb")
    (folder / "garbage.ipynb").write_text("this is not a notebook")
    return folder


@pytest.fixture(scope="module")
def rows(class_folder, tmp_path_factory) -> dict[tuple[str, str], grade.Row]:
    out = tmp_path_factory.mktemp("out") / "class.csv"
    result = grade.grade([str(class_folder)], timeout=600, csv_path=str(out))
    with open(out, newline="") as fh:
        written = list(csv.DictReader(fh))
    assert written == [r.as_dict() for r in result]  # the CSV is the table, row for row
    return {(Path(r.submission).stem, r.exercise): r for r in result}


@pytest.mark.slow
def test_right_answers_pass(rows):
    for name in RIGHT:
        assert rows["right", name].status == grade.PASSED, rows["right", name]
    assert rows["right", "global_avg_pool"].run == "ran"


@pytest.mark.slow
def test_wrong_answers_carry_the_checks_message(rows):
    for name in WRONG:
        row = rows["wrong", name]
        assert (row.status, row.message) == (grade.WRONG, wrong_message(name))
    assert "biases are missing" in rows["wrong", "flatten_head_params"].message


@pytest.mark.slow
def test_the_handout_as_it_is_is_not_attempted(rows):
    for name in RIGHT:
        assert rows["empty", name].status == grade.NOT_ATTEMPTED


@pytest.mark.slow
def test_a_broken_notebook_costs_its_own_rows(rows):
    syntax, renamed = rows["broken", "global_avg_pool"], rows["broken", "flatten_head_params"]
    assert syntax.status == renamed.status == grade.DID_NOT_RUN
    assert "SyntaxError" in syntax.message
    assert "no cell defines `flatten_head_params`" in renamed.message
    assert syntax.run.startswith("errors in cells 2")  # the SystemExit cell; the run went on past it


@pytest.mark.slow
def test_a_kernel_that_exits_costs_its_own_rows(rows):
    for name in RIGHT:
        row = rows["quits", name]
        assert row.status == grade.DID_NOT_RUN and "kernel stopped" in row.message


@pytest.mark.slow
def test_a_file_that_is_not_a_notebook_is_one_row(rows):
    row = rows["garbage", "-"]
    assert row.status == grade.DID_NOT_RUN and "not a readable notebook" in row.message


@pytest.mark.slow
def test_the_summary_has_one_line_per_submission(rows):
    text = grade.summary(list(rows.values()))
    for stem in ("right", "wrong", "empty", "broken", "quits", "garbage"):
        assert len(re.findall(rf"^{stem}\.ipynb ", text, re.M)) == 1
    marks = re.search(r"^6 submissions, (\d+) marks \(one per exercise.*\): (\d+) passed, (\d+) wrong, "
                      r"(\d+) not attempted, (\d+) did not run\.$", text, re.M)
    assert marks, text.splitlines()[-2]
    total, *by_status = map(int, marks.groups())
    assert total == len(rows) == sum(by_status)  # every mark counted once, under its status
    assert by_status == [sum(r.status == s for r in rows.values()) for s in grade.MARKS]


@pytest.mark.slow
def test_endless_notebooks_cost_time_not_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(grade, "CHECK_SECONDS", 10)
    loops = small(answered(handout(), {**RIGHT, "global_avg_pool": "def global_avg_pool(x):\n"
                                                                  "    while True:\n        pass"}))
    nbformat.write(loops, tmp_path / "endless.ipynb")
    stuck = small(handout())
    stuck.cells.insert(2, nbformat.v4.new_code_cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                    "while True:\n    pass"))
    nbformat.write(stuck, tmp_path / "stuck.ipynb")
    result = grade.grade([str(tmp_path / "endless.ipynb"), str(tmp_path / "stuck.ipynb")], timeout=45)
    got = {(Path(r.submission).stem, r.exercise): r for r in result}
    # interrupted inside the check cell of the looping answer; the other exercise is still graded
    assert got["endless", "flatten_head_params"].status == grade.PASSED
    loop = got["endless", "global_avg_pool"]
    assert loop.status == grade.DID_NOT_RUN and "did not finish in 10 s" in loop.message
    assert loop.run.startswith("timed out at cell 5")
    # ignores the interrupt: its kernel is shut down, both exercises did not run, and the run went on
    for name in RIGHT:
        row = got["stuck", name]
        assert row.status == grade.DID_NOT_RUN and row.message.startswith("timed out at cell 2")


@pytest.mark.parametrize("path", sorted(STUDENT.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_the_exercise_table_matches_the_student_copies(path):
    nb = nbformat.read(path, as_version=4)
    number = grade.which_notebook(nb, Path("renamed-by-the-learner.ipynb"))
    assert number == path.name[:2]
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "checks.report(" in c.source]
    reports = [node for source in cells for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Call) and ast.unparse(node.func) == "checks.report"]
    assert len(reports) == 1, "each student copy ends with one checks.report(...) cell"
    wanted = {kw.arg: ast.unparse(kw.value) for kw in reports[0].keywords}
    assert dict(grade.exercises_of(nb, number)) == wanted
    for name, var in wanted.items():
        assert any(c.cell_type == "code" and grade._defines(c.source, var) for c in nb.cells), var


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--timeout", "60"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no notebooks to grade" in err
    (tmp_path / "x.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path / "x.ipynb"), "--timeout", "0"]) == 2
    assert "--timeout must be a positive number" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "x.ipynb"), "--timeout", "nan"]) == 2  # NaN is not a number of seconds
    assert "--timeout must be a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("csv_in", ["folder", "under_a_file", "empty"])
def test_a_csv_path_that_cannot_be_written_is_refused_before_any_grading(tmp_path, capsys, monkeypatch, csv_in):
    (tmp_path / "x.ipynb").write_text("{}")
    (tmp_path / "a_file").write_text("")
    csv_path = {"folder": str(tmp_path), "under_a_file": str(tmp_path / "a_file" / "g.csv"), "empty": " "}[csv_in]
    graded = []
    monkeypatch.setattr(grade, "grade_notebook", lambda *a, **k: graded.append(a) or [])
    if csv_in == "empty":  # refused with the command's usage, as train's, bench's and the studies' empty --output
        with pytest.raises(SystemExit) as stop:
            main(["grade", str(tmp_path / "x.ipynb"), "--csv", csv_path])
        assert stop.value.code == 2 and "argument --csv: needs a file name" in capsys.readouterr().err
    else:
        assert main(["grade", str(tmp_path / "x.ipynb"), "--csv", csv_path]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --csv") and err.count("\n") == 0
    assert graded == [], "nothing may be graded before the CSV's place is known to work"


def test_a_mistyped_submission_path_is_an_error_not_a_learners_row(tmp_path, capsys, monkeypatch):
    (tmp_path / "x.ipynb").write_text("{}")
    monkeypatch.setattr(grade, "grade_notebook", lambda *a, **k: [])
    assert main(["grade", str(tmp_path / "x.ipynb"), str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "missing.ipynb" in err


def test_a_notebook_given_twice_is_graded_once(tmp_path, capsys):
    nb = tmp_path / "a.ipynb"
    nb.write_text("{}")
    files = grade.submissions([str(nb), str(tmp_path), str(tmp_path / "." / "a.ipynb")])
    assert files == [nb]
    assert "given more than once: each is graded once" in capsys.readouterr().out


def test_a_csv_path_that_even_root_cannot_write_is_refused_before_grading(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="cannot be written"):
        grade.check_csv_path(Path("/proc/grades.csv"))  # os.access says yes to root; opening it fails
    ok = tmp_path / "new.csv"
    grade.check_csv_path(ok)
    assert not ok.exists()  # the check leaves nothing behind


def test_two_submissions_with_one_file_name_are_told_apart():
    rows = [grade.Row(f"class/{who}/01_gap_by_hand.ipynb", "01", "global_avg_pool", grade.PASSED)
            for who in ("alice", "bob")] + [grade.Row("class/carol/02.ipynb", "02", "gap_module", grade.WRONG, "x")]
    text = grade.summary(rows)
    assert re.search(r"^alice/01_gap_by_hand\.ipynb +\(01\)", text, re.M), text
    assert re.search(r"^bob/01_gap_by_hand\.ipynb +\(01\)", text, re.M), text
    assert re.search(r"^02\.ipynb +\(02\)", text, re.M), text  # a name of its own stays short
    assert grade.labels(["a/x/s.ipynb", "b/x/s.ipynb", "s.ipynb"]) == {
        "a/x/s.ipynb": "a/x/s.ipynb", "b/x/s.ipynb": "b/x/s.ipynb", "s.ipynb": "s.ipynb"}


@pytest.mark.slow
def test_a_notebook_that_timed_out_before_the_answers_says_so(tmp_path):
    slow = small(answered(handout(), RIGHT))
    slow.cells.insert(1, nbformat.v4.new_code_cell("import time\ntime.sleep(600)"))
    nbformat.write(slow, tmp_path / "slow.ipynb")
    got = {r.exercise: r for r in grade.grade([str(tmp_path / "slow.ipynb")], timeout=20)}
    for name in RIGHT:
        row = got[name]
        assert row.status == grade.DID_NOT_RUN and row.run.startswith("timed out at cell 1"), row
        assert f"`{name}` was never defined: the notebook timed out at cell 1 (limit 20 s), and its cell" in \
            row.message and "comes later" in row.message and "after running the notebook" not in row.message, row


@pytest.mark.slow
def test_cheats_and_the_course_reference_do_not_pass_the_grader(tmp_path, capsys):
    cheat = answered(small(handout()), {
        "flatten_head_params": 'flatten_head_params = checks.answer_or_reference("flatten_head_params", None)',
        "global_avg_pool": "def global_avg_pool(x):\n    torch.allclose = lambda *a, **k: True\n"
                           "    return x[:, :, 0, 0]"})
    cheat.cells.append(nbformat.v4.new_code_cell("import torch\ntorch.equal = lambda *a, **k: True"))  # last cell
    nbformat.write(cheat, tmp_path / "cheat.ipynb")
    got = {r.exercise: r for r in grade.grade([str(tmp_path / "cheat.ipynb")], timeout=300)}
    reference, patched = got["flatten_head_params"], got["global_avg_pool"]
    assert reference.status == grade.NOT_ATTEMPTED, reference
    assert "Your answer is the course's reference (checks.ref_flatten_head_params)" in reference.message
    assert patched.status == grade.WRONG and "it replaces torch.allclose" in patched.message, patched
    assert "(Before this check, an earlier cell had replaced torch.equal; the check put PyTorch's own back" \
        in patched.message  # the notebook's last cell, put back too
    assert "flatten_head_params: Your answer is the course's reference" in capsys.readouterr().out  # in the summary


@pytest.mark.parametrize("name", ["-h.ipynb", "-x.ipynb"])
def test_a_submission_named_like_an_option_gets_advice(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("{}")
    assert main(["grade", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {name!r} starts with '-', so it reads as an option, not a notebook: write ./{name}, or "
                   f"put -- before the submissions (grade --timeout 600 -- {name})")
    assert grade.dash_named(["grade", "--timeout", "60", "--", name]) is None
    assert grade.dash_named(["grade", f"./{name}"]) is None


def test_a_submission_that_a_glob_put_after_csv_is_neither_overwritten_nor_skipped(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("01_alice.ipynb", "01_bob.ipynb"):
        (folder / name).write_text('{"cells": [], "nbformat": 4}')
    graded = []
    monkeypatch.setattr(grade, "grade_notebook", lambda *a, **k: graded.append(a) or [])
    alice = folder / "01_alice.ipynb"
    # what the shell makes of `grade --timeout 60 --csv class/*.ipynb`
    assert main(["grade", "--timeout", "60", "--csv", str(alice), str(folder / "01_bob.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "named as a notebook" in err and "Put --csv FILE before the submissions" in err
    assert alice.read_text() == '{"cells": [], "nbformat": 4}' and graded == []
    assert main(["grade", "--csv", str(alice), str(folder)]) == 2  # the folder holds it: an input
    assert "also one of this command's inputs" in capsys.readouterr().err and graded == []


def test_a_csv_that_fails_after_grading_loses_no_grades(tmp_path, capsys, monkeypatch, isolated_cache):
    nb = tmp_path / "01_alice.ipynb"
    nb.write_text("{}")
    row = grade.Row(str(nb), "01", "global_avg_pool", grade.PASSED, "", "ran")
    monkeypatch.setattr(grade, "grade_notebook", lambda *a, **k: [row])
    assert main(["grade", "--csv", "/dev/full", str(nb)]) == 2
    captured = capsys.readouterr()
    assert "1 submission, 1 mark" in captured.out  # the summary came first
    kept = Path(re.search(r"is kept in (\S+)\. ", captured.err).group(1))
    assert "Could not write the grades CSV /dev/full (No space left on device)" in captured.err
    assert list(csv.DictReader(kept.open()))[0]["status"] == grade.PASSED
