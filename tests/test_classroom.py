"""Classroom mode: student copies are generated from the solutions, leak no answer, and run to the end with
nothing filled in, showing "not attempted" for each exercise."""

from __future__ import annotations

from pathlib import Path
import os
import pytest

import nbformat

from gapcourse.__main__ import main
from gapcourse.checks import CHECKS
from gapcourse.classroom.copies import BEGIN_SOLUTION, MarkerError, exercise_count, make_student_copy, strip_cell, write_student_copies

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_committed_student_copies_are_exactly_what_the_generator_writes():
    stale = write_student_copies(ROOT, check=True)
    assert not stale, f"run `python -m gapcourse student-copies`: {stale}"
    assert sorted(p.name for p in (ROOT / "notebooks" / "student").glob("*.ipynb")) == [p.name for p in SOLUTIONS]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_notebook_has_exercises_with_checks_and_no_answer_leaks(path):
    solution = nbformat.read(path, as_version=4)
    n = exercise_count(solution)
    assert 2 <= n <= 4
    student = nbformat.read(path.parent / "student" / path.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert BEGIN_SOLUTION not in text and "BEGIN HIDDEN TESTS" not in text and "assert result.passed" not in text
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    assert code.count("raise NotImplementedError()") == n
    answers = [line.strip() for c in solution.cells if c.cell_type == "code" and BEGIN_SOLUTION in c.source
               for line in c.source.split(BEGIN_SOLUTION)[1].split("### END SOLUTION")[0].splitlines()
               if line.strip()]
    for line in answers:
        assert line not in text, f"answer line leaked into the student copy: {line}"
    checked = {name for name in CHECKS if f"checks.{name}(" in text}
    assert len(checked) == n, "each exercise is followed by its check"
    for cell in student.cells:
        if cell.cell_type == "code" and "raise NotImplementedError()" in cell.source:
            assert "raises-exception" in cell.metadata.get("tags", [])


def test_all_ten_checks_are_used_somewhere():
    text = "\n".join(p.read_text() for p in SOLUTIONS)
    assert all(f"checks.{name}(" in text for name in CHECKS)


def test_strip_cell_keeps_indentation_and_drops_hidden_tests():
    src = ("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
           "r = check(f)\n### BEGIN HIDDEN TESTS\nassert r.passed\n### END HIDDEN TESTS\nr")
    assert strip_cell(src) == ("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nr = check(f)\nr")
    for broken in ("### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                   "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION"):
        with pytest.raises(MarkerError):
            strip_cell(broken, "test")


def test_student_badge_and_note_point_at_the_copy():
    nb = make_student_copy(nbformat.read(SOLUTIONS[0], as_version=4), "notebooks/student/01_gap_by_hand.ipynb")
    assert "blob/main/notebooks/student/01_gap_by_hand.ipynb" in nb.cells[0].source
    assert "Student copy" in nb.cells[0].source


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_gap_by_hand.ipynb", "02_adaptive_avg_pool.ipynb"])
def test_a_fresh_student_copy_runs_through_and_says_not_attempted(name, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "student" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in c.get("outputs", []))
               for c in nb.cells if c.cell_type == "code"]
    def meant_to_fail(cell):  # the lessons' deliberate errors, not the exercises
        return "raises-exception" in cell.metadata.get("tags", []) and "NotImplementedError()" not in cell.source

    errors = [(o.ename, c.source[:60]) for c in nb.cells if c.cell_type == "code" and not meant_to_fail(c)
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    placeholders = sum(c.source.count("raise NotImplementedError()") for c in nb.cells if c.cell_type == "code")
    not_attempted = [o for o in outputs if "⏳" in o and "Not attempted yet" in o]
    assert placeholders >= 2 and len(not_attempted) == placeholders
    assert sum("Using the course's reference" in o for o in outputs) == placeholders  # later cells fall back
    assert not any("✅" in o for o in outputs)
    assert os.environ.get("GAPCOURSE_PROFILE") == "fast"


@pytest.fixture
def course(tmp_path) -> Path:
    """A copy of the course's notebooks with its student copies, to write into."""
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "Untitled*"))
    write_student_copies(tmp_path, force=True)  # in step with the solutions, whatever the checkout holds
    import subprocess  # committed, as in the course's repository: what the generator last wrote is known

    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True)
    return tmp_path


def test_a_learners_answers_are_skipped_said_and_kept_unless_force(course, capsys):
    from gapcourse.__main__ import main

    mine = course / "notebooks" / "student" / "01_gap_by_hand.ipynb"
    nb = nbformat.read(mine, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("def global_avg_pool("))
    cell.source = "def global_avg_pool(x):\n    return x.mean((2, 3))  # my answer"
    nbformat.write(nb, mine)
    before = mine.read_text()
    solution = course / "notebooks" / "02_adaptive_avg_pool.ipynb"  # another copy the run must still update
    sol = nbformat.read(solution, as_version=4)
    sol.cells[-1].source += "\n"
    nbformat.write(sol, solution)
    assert main(["student-copies", "--root", str(course)]) == 1
    out, err = capsys.readouterr()
    assert "wrote notebooks/student/02_adaptive_avg_pool.ipynb" in out
    assert err.startswith("skipped notebooks/student/01_gap_by_hand.ipynb: it holds cells that are not the "
                          "handout's (def global_avg_pool(x):): a learner's answers") and "--force" in err
    assert mine.read_text() == before
    assert main(["student-copies", "--root", str(course), "--force"]) == 0
    assert "wrote notebooks/student/01_gap_by_hand.ipynb" in capsys.readouterr().out
    assert "my answer" not in mine.read_text()


def test_an_unreadable_student_notebook_is_skipped_too(course, capsys):
    from gapcourse.__main__ import main

    mine = course / "notebooks" / "student" / "01_gap_by_hand.ipynb"
    mine.write_text(mine.read_text()[:5000])  # an editor stopped half-way
    assert main(["student-copies", "--root", str(course)]) == 1
    assert "skipped notebooks/student/01_gap_by_hand.ipynb: it holds cells that are not the handout's (the whole " \
           "notebook: it is not a readable notebook)" in capsys.readouterr().err
    assert len(mine.read_text()) == 5000


def test_only_the_courses_own_notebooks_are_copied(course):
    for name in ("Untitled.ipynb", "01_gap_by_hand-Copy1.ipynb", "07 mine.ipynb"):
        shutil_copy = (course / "notebooks" / "01_gap_by_hand.ipynb").read_text()
        (course / "notebooks" / name).write_text(shutil_copy)
    write_student_copies(course)
    assert sorted(p.name for p in (course / "notebooks" / "student").glob("*.ipynb")) == [p.name for p in SOLUTIONS]


def test_a_learners_notes_and_added_cells_are_kept_too(course, capsys):
    """Not only the exercise cells: a note or a new code cell the learner added is their work (careless-user
    review: both were lost while the placeholder cell was untouched)."""
    from gapcourse.__main__ import main

    mine = course / "notebooks" / "student" / "01_gap_by_hand.ipynb"
    nb = nbformat.read(mine, as_version=4)
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("My notes: GAP averages each map."))
    nb.cells.append(nbformat.v4.new_code_cell("def global_avg_pool(x):\n    return x.mean((2, 3))"))
    nbformat.write(nb, mine)
    before = mine.read_text()
    solution = course / "notebooks" / "01_gap_by_hand.ipynb"  # the instructor changes the handout meanwhile
    sol = nbformat.read(solution, as_version=4)
    sol.cells[-1].source += "\n"
    nbformat.write(sol, solution)
    assert main(["student-copies", "--root", str(course)]) == 1
    err = capsys.readouterr().err
    assert "My notes: GAP averages each map." in err and "def global_avg_pool(x):" in err
    assert mine.read_text() == before


def test_a_copy_as_last_committed_is_the_generators_and_is_updated(tmp_path):
    """In a git checkout, a student copy whose cells are all the committed copy's is the generator's own work
    (an instructor changed the solution): it is rewritten without --force."""
    import subprocess

    from gapcourse.classroom.copies import answered_cells, committed_sources

    repo = tmp_path / "repo"
    (repo / "notebooks" / "student").mkdir(parents=True)
    old = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("old")])
    path = repo / "notebooks" / "student" / "01_x.ipynb"
    nbformat.write(old, path)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True)
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 2"), nbformat.v4.new_markdown_cell("new")])
    assert answered_cells(path, new, committed_sources(repo, "notebooks/student/01_x.ipynb")) == []
    assert answered_cells(path, new) == ["x = 1", "old"]  # without the committed copy, unknown cells are kept


# 8 ------------------------------------------------------------------------------------------------------------------
def test_student_copies_check_fails_when_there_is_nothing_to_check(tmp_path, capsys):
    assert main(["student-copies", "--check", "--root", str(tmp_path)]) == 2
    assert "No solution notebooks" in capsys.readouterr().err


# Careless-user review: a folder in a copy's place, a broken solution, and half a set of copies ---------------------------
def _change_solution(course: Path, name: str) -> Path:
    """Change the solution ``name`` so that its student copy is out of date; returns that copy."""
    solution = course / "notebooks" / name
    sol = nbformat.read(solution, as_version=4)
    sol.cells[-1].source += "\n# changed"
    nbformat.write(sol, solution)
    return course / "notebooks" / "student" / name


def _one_sentence(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("check", [False, True], ids=["write", "check"])
def test_a_folder_where_a_copy_goes_is_refused_and_nothing_is_written(course, capsys, check):
    first = _change_solution(course, "01_gap_by_hand.ipynb")
    before = first.read_text()
    folder = course / "notebooks" / "student" / "02_adaptive_avg_pool.ipynb"
    folder.unlink()
    folder.mkdir()
    assert main(["student-copies", "--root", str(course)] + (["--check"] if check else [])) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "notebooks/student/02_adaptive_avg_pool.ipynb is a folder" in err and "move it away" in err
    assert first.read_text() == before and folder.is_dir()


@pytest.mark.parametrize("broken", ["{broken\n", '{"cells": "none"}\n', ""], ids=["not json", "not a notebook", "empty"])
def test_a_broken_solution_is_named_with_how_to_restore_it_and_nothing_is_written(course, capsys, broken):
    first = _change_solution(course, "01_gap_by_hand.ipynb")  # a copy the run would rewrite before reaching 03
    before = first.read_text()
    (course / "notebooks" / "03_cifar10_gap_cnn.ipynb").write_text(broken)
    assert main(["student-copies", "--root", str(course)]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "notebooks/03_cifar10_gap_cnn.ipynb" in err and "git checkout -- notebooks/03_cifar10_gap_cnn.ipynb" in err
    assert first.read_text() == before, "a copy was rewritten before the run stopped"


def test_a_copy_the_guard_refuses_stops_the_run_before_any_copy_is_written(course, capsys):
    """Every output is checked before the first is written: a student copy that is a link to its solution (writing
    it would destroy the solution) stops `--force` before the out-of-date copy 01 is touched."""
    first = _change_solution(course, "01_gap_by_hand.ipynb")
    before = first.read_text()
    solution = course / "notebooks" / "02_adaptive_avg_pool.ipynb"
    kept = solution.read_text()
    link = course / "notebooks" / "student" / "02_adaptive_avg_pool.ipynb"
    link.unlink()
    link.symlink_to(solution)
    assert main(["student-copies", "--root", str(course), "--force"]) == 2
    assert "02_adaptive_avg_pool.ipynb" in _one_sentence(capsys.readouterr().err)
    assert first.read_text() == before and solution.read_text() == kept
    link.unlink()
    assert main(["student-copies", "--root", str(course)]) == 0
    assert "# changed" in first.read_text() and link.is_file()
