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
from gapcourse.classroom.copies import ANSWERS_TAG, AnswerKeyError, answer_key_problems, is_answer_key, numbered_items
from gapcourse.classroom import colab

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


# Issue 32, deliverable 5: answer keys the instructor keeps (default) or drops ------------------------------------------

KEY = ("<details>\n<summary><b>Answers</b> (open after you have tried the questions)</summary>\n\n{items}\n\n"
       "</details>")


def _key_cell(n: int) -> nbformat.NotebookNode:
    items = "\n".join(f"{i}. Answer {i}: two sentences, citing section {i}." for i in range(1, n + 1))
    return nbformat.v4.new_markdown_cell(KEY.format(items=items), metadata={"tags": [ANSWERS_TAG]})


def _questions_index(nb: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Questions"))


def _with_key(path: Path) -> nbformat.NotebookNode:
    """The solution notebook at ``path`` with a complete answer key after its questions (whatever it holds now)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if not is_answer_key(c)]
    q = _questions_index(nb)
    nb.cells.insert(q + 1, _key_cell(len(numbered_items(nb.cells[q].source))))
    return nb


def test_keep_copies_the_answer_key_verbatim_and_drop_removes_all_and_only_answer_cells():
    solution = _with_key(SOLUTIONS[0])
    q = _questions_index(solution)
    other = nbformat.v4.new_markdown_cell("A second key.", metadata={"tags": ["answers", "extra"]})
    solution.cells.insert(5, other)  # a second tagged cell, anywhere: drop removes it too
    lookalikes = [nbformat.v4.new_markdown_cell("Answers are in the key below.", metadata={"tags": ["answer"]}),
                  nbformat.v4.new_markdown_cell("<details><summary>Hints</summary>\n\n1. x\n\n</details>")]
    solution.cells[7:7] = lookalikes  # not tagged `answers` (nor a block of Answers): kept by both
    rel = "notebooks/student/01_gap_by_hand.ipynb"
    kept = make_student_copy(solution, rel)
    dropped = make_student_copy(solution, rel, answers="drop")
    key = solution.cells[q + 4]  # (two look-alikes and the second key inserted before it)
    assert key.metadata["tags"] == [ANSWERS_TAG]
    copied = next(c for c in kept.cells if c.get("id") == key.get("id"))
    assert copied == key, "keep copies the answer-key cell exactly (source, metadata, id)"
    assert sum(map(is_answer_key, kept.cells)) == 2 and not any(map(is_answer_key, dropped.cells))
    assert [c for c in kept.cells if not is_answer_key(c)] == dropped.cells, "drop removes only the tagged cells"
    assert all(any(c.source == l.source for c in dropped.cells) for l in lookalikes)
    assert make_student_copy(solution, rel, answers="keep") == kept  # the default is keep
    with pytest.raises(ValueError, match="keep, drop"):
        make_student_copy(solution, rel, answers="hide")
    untagged = nbformat.v4.new_markdown_cell("<details>\n<summary><b>Answers</b> (open after)</summary>\n\n1. x"
                                             "\n\n</details>")  # a key that lost its tag: drop would hand it out
    solution.cells.insert(9, untagged)
    assert any(c.source == untagged.source for c in make_student_copy(solution, rel).cells), "keep copies it"
    with pytest.raises(AnswerKeyError, match=r"notebooks/01_gap_by_hand.ipynb cell 9 holds a <details> block of "
                                             r"<b>Answers</b> but is not tagged 'answers'"):
        make_student_copy(solution, rel, answers="drop", source="notebooks/01_gap_by_hand.ipynb")


@pytest.mark.parametrize("answers", ["keep", "drop"])
def test_an_answer_key_holding_a_solution_block_is_refused_and_code_cells_are_still_stripped(answers):
    solution = _with_key(SOLUTIONS[0])
    q = _questions_index(solution)
    copy = make_student_copy(solution, "notebooks/student/01_gap_by_hand.ipynb", answers=answers)
    code = "\n".join(c.source for c in copy.cells if c.cell_type == "code")
    assert BEGIN_SOLUTION not in code and "BEGIN HIDDEN TESTS" not in code
    assert code.count("raise NotImplementedError()") == exercise_count(solution)
    for marker in (BEGIN_SOLUTION, "### END HIDDEN TESTS"):
        leaky = nbformat.from_dict(solution)
        leaky.cells[q + 1].source = leaky.cells[q + 1].source.replace(
            "\n\n</details>", f"\n\n```python\n{marker}\nreturn x.mean((2, 3))\n```\n\n</details>")
        with pytest.raises(MarkerError, match=f"answer-key cell holds '{marker}'"):
            make_student_copy(leaky, "notebooks/student/01_gap_by_hand.ipynb", answers=answers)


def test_the_answer_key_checker_finds_a_missing_key_a_wrong_count_and_a_stray_tag():
    good = _with_key(SOLUTIONS[0])
    q = _questions_index(good)
    n = len([line for line in good.cells[q].source.splitlines() if line[:1].isdigit()])
    assert answer_key_problems(good) == []
    missing = nbformat.from_dict(good)
    del missing.cells[q + 1]
    assert any("is not a markdown cell tagged 'answers'" in p for p in answer_key_problems(missing))
    untagged = nbformat.from_dict(good)
    untagged.cells[q + 1].metadata = {}
    assert answer_key_problems(untagged)
    short = nbformat.from_dict(good)
    short.cells[q + 1] = _key_cell(n - 1)
    assert any(f"there are {n} questions" in p for p in answer_key_problems(short))
    skipped = nbformat.from_dict(good)
    skipped.cells[q + 1].source = skipped.cells[q + 1].source.replace("\n2. ", "\n3. ", 1)
    assert any("numbers its answers [1, 3, 3" in p for p in answer_key_problems(skipped))
    moved = nbformat.from_dict(good)
    moved.cells.insert(q + 1, nbformat.v4.new_markdown_cell("**Go further.** …"))
    assert any("do not follow the questions" in p for p in answer_key_problems(moved))
    bare = nbformat.from_dict(good)
    bare.cells[q + 1].source = "\n".join(f"{i}. An answer." for i in range(1, n + 1))
    assert any("<details>" in p for p in answer_key_problems(bare))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_solution_notebook_answers_each_of_its_questions(path):
    """The answer keys are complete: the cell after `## Questions` is tagged `answers` and answers 1..n."""
    problems = answer_key_problems(nbformat.read(path, as_version=4))
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.fixture
def keyed_course(course) -> Path:
    """The course copy with answer keys in notebooks 01 and 02 and its student copies (answers kept), committed."""
    import subprocess

    for name in ("01_gap_by_hand.ipynb", "02_adaptive_avg_pool.ipynb"):
        nbformat.write(_with_key(course / "notebooks" / name), course / "notebooks" / name)
    write_student_copies(course, force=True)
    subprocess.run(["git", "-C", str(course), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "keys"],
                   check=True)
    return course


def _keys_in(folder: Path) -> dict[str, int]:
    return {p.name: sum(map(is_answer_key, nbformat.read(p, as_version=4).cells))
            for p in sorted(folder.glob("*.ipynb"))}


def test_drop_into_the_committed_copies_is_refused_and_check_compares_with_the_chosen_option(keyed_course, capsys):
    student = keyed_course / "notebooks" / "student"
    before = {p.name: p.read_text() for p in student.glob("*.ipynb")}
    assert main(["student-copies", "--root", str(keyed_course), "--check"]) == 0  # the default: keep
    assert capsys.readouterr().out == "student copies are up to date\n"
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop"]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "committed copies keep them" in err and "--out" in err and "tests/test_classroom.py" in err
    # --check gives the write's refusal, not six copies "out of date" that the write would refuse to update
    assert main(["student-copies", "--root", str(keyed_course), "--check", "--answers", "drop"]) == 2
    out, check_err = capsys.readouterr()
    assert check_err == err and "out of date" not in out
    assert {p.name: p.read_text() for p in student.glob("*.ipynb")} == before, "nothing was written"
    assert _keys_in(student)["01_gap_by_hand.ipynb"] == 1


@pytest.mark.parametrize("inside", [False, True], ids=["outside the repository", "handout/ in the repository"])
def test_dropped_copies_go_to_an_out_folder_which_check_then_compares(keyed_course, tmp_path, capsys, inside):
    handout = keyed_course / "handout" if inside else tmp_path / "elsewhere" / "handout"
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote ") == len(SOLUTIONS) and ("wrote handout/01_gap_by_hand.ipynb" in out) == inside
    assert set(_keys_in(handout).values()) == {0} and len(_keys_in(handout)) == len(SOLUTIONS)
    first = nbformat.read(handout / "01_gap_by_hand.ipynb", as_version=4).cells[0].source
    assert "notebooks/student/" not in first, "the badge would open the committed copy, answers included"
    assert "Open In Colab" not in first, "a handout has no address on GitHub (handout/ is not committed)"
    assert first.count("Student copy") == 1
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout),
                 "--check"]) == 0
    capsys.readouterr()
    assert main(["student-copies", "--root", str(keyed_course), "--out", str(handout), "--check"]) == 2
    err = _one_sentence(capsys.readouterr().err)  # as the write would: the keep default would put the keys back
    assert f"python -m gapcourse student-copies --answers drop --out {handout} --check" in err
    assert _keys_in(keyed_course / "notebooks" / "student")["01_gap_by_hand.ipynb"] == 1, "the committed copies keep"


@pytest.mark.parametrize("where", ["notebooks", "notebooks/handout", "docs/handout", "gapcourse/x", "a file", "."])
def test_an_out_folder_among_the_courses_own_files_or_a_file_is_refused(keyed_course, capsys, where):
    target = keyed_course / where
    if where == "a file":
        target.write_text("not a folder\n")
    solutions = {p.name: p.read_text() for p in (keyed_course / "notebooks").glob("*.ipynb")}
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(target)]) == 2
    err = _one_sentence(capsys.readouterr().err)
    expected = {"a file": "is a file, not a folder", ".": "the course's own top folder"}
    assert expected.get(where, "outside the course's own folders") in err
    assert {p.name: p.read_text() for p in (keyed_course / "notebooks").glob("*.ipynb")} == solutions
    assert not (keyed_course / "notebooks" / "handout").exists()


def test_the_guard_still_protects_a_handout_that_is_not_a_notebook(keyed_course, tmp_path, capsys):
    handout = tmp_path / "handout"
    handout.mkdir()
    (handout / "01_gap_by_hand.ipynb").write_text('{"accuracy": 84.1}\n')  # some other JSON file by that name
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]) == 1
    assert "skipped " in capsys.readouterr().err  # not a readable notebook: kept as a learner's work, as ever
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout),
                 "--force"]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "01_gap_by_hand.ipynb already holds a JSON results file" in err and f"student-copies --out {handout}" in err
    assert (handout / "01_gap_by_hand.ipynb").read_text() == '{"accuracy": 84.1}\n'


def test_outside_git_drop_and_keep_replace_each_other_only_with_force(tmp_path):
    """No committed copies to protect (no git): --answers drop may write notebooks/student/, but switching a folder's
    copies from one option to the other needs --force (each way), and then replaces them."""
    (tmp_path / "notebooks").mkdir()
    for path in SOLUTIONS[:2]:
        nbformat.write(_with_key(path), tmp_path / "notebooks" / path.name)
    student = tmp_path / "notebooks" / "student"
    assert len(write_student_copies(tmp_path)) == 2 and set(_keys_in(student).values()) == {1}
    with pytest.raises(ValueError, match=r"made with --answers keep .*add --force"):
        write_student_copies(tmp_path, answers="drop")
    assert set(_keys_in(student).values()) == {1}
    skipped: list = []
    assert len(write_student_copies(tmp_path, answers="drop", force=True, skipped=skipped)) == 2 and not skipped
    assert set(_keys_in(student).values()) == {0}
    assert write_student_copies(tmp_path, answers="drop") == []  # the same option again: up to date
    with pytest.raises(ValueError, match=r"made with --answers drop .*student-copies --answers drop`"):
        write_student_copies(tmp_path)
    assert len(write_student_copies(tmp_path, force=True, skipped=skipped)) == 2 and not skipped
    assert set(_keys_in(student).values()) == {1}


# Careless-user review of `student-copies --answers drop` (issue 32) ---------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.ipynb"))} if folder.exists() else {}


@pytest.mark.parametrize("check", [False, True], ids=["write", "check"])
@pytest.mark.parametrize("lost", ["the tag", "its place"])
def test_drop_refuses_a_key_that_lost_its_tag_or_its_place_naming_the_notebook_and_cell(keyed_course, tmp_path,
                                                                                        capsys, lost, check):
    """Finding 1: the tag is all `drop` goes by, so a key without it would be handed out. Every solution's key is
    checked before anything is written (in --check too), and the refusal names the solution notebook and cell."""
    solution = keyed_course / "notebooks" / "02_adaptive_avg_pool.ipynb"
    nb = nbformat.read(solution, as_version=4)
    q = _questions_index(nb)
    if lost == "the tag":
        nb.cells[q + 1].metadata = {}
    else:
        nb.cells.insert(q + 1, nbformat.v4.new_markdown_cell("**Go further.** Try 64 px."))
    nbformat.write(nb, solution)
    handout = tmp_path / "handout"
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]
                + (["--check"] if check else [])) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert f"notebooks/02_adaptive_avg_pool.ipynb: cell {q + 1}, right after the questions (cell {q})" in err
    assert "Nothing was written" in err and "01_gap_by_hand" not in err
    assert _files(handout) == {}, "not even the copies of the notebooks whose key is fine"


def test_drop_refuses_a_copy_that_still_holds_a_block_of_answers(keyed_course, tmp_path, capsys):
    """Finding 1, the last net: a second, untagged <details> block of Answers anywhere (the tagged key is in place,
    so the key check passes) stops the run before any copy is written, naming the solution's cell."""
    solution = keyed_course / "notebooks" / "02_adaptive_avg_pool.ipynb"
    nb = nbformat.read(solution, as_version=4)
    key = next(c for c in nb.cells if is_answer_key(c))
    nb.cells.insert(3, nbformat.v4.new_markdown_cell(key.source))  # pasted without its tag
    nbformat.write(nb, solution)
    handout = tmp_path / "handout"
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "notebooks/02_adaptive_avg_pool.ipynb cell 3 holds a <details> block of <b>Answers</b>" in err
    assert _files(handout) == {}
    assert main(["student-copies", "--root", str(keyed_course), "--out", str(handout)]) == 0  # keep: it is a key


def test_keep_over_a_dropped_handout_is_refused_unless_force_and_the_reverse(keyed_course, tmp_path, capsys):
    """Finding 7: `--answers drop --out H`, later `--out H` (the default keep) would put the answers back."""
    handout = tmp_path / "handout"
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]) == 0
    dropped = _files(handout)
    capsys.readouterr()
    assert main(["student-copies", "--root", str(keyed_course), "--out", str(handout)]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "made with --answers drop" in err and "would put the answer keys back" in err
    assert f"`python -m gapcourse student-copies --answers drop --out {handout}`" in err and "--force" in err
    assert _files(handout) == dropped
    assert main(["student-copies", "--root", str(keyed_course), "--out", str(handout), "--force"]) == 0
    assert set(_keys_in(handout).values()) == {1}
    capsys.readouterr()
    assert main(["student-copies", "--root", str(keyed_course), "--answers", "drop", "--out", str(handout)]) == 2
    err = _one_sentence(capsys.readouterr().err)
    assert "made with --answers keep" in err and "would take the answer keys out" in err
    assert f"`python -m gapcourse student-copies --out {handout}`" in err
    assert set(_keys_in(handout).values()) == {1}


def test_a_key_new_in_one_solution_is_not_taken_for_the_other_option(keyed_course, capsys):
    """A solution that gains its first key, while the other copies keep theirs: an update, not a switch of option."""
    copy = keyed_course / "notebooks" / "student" / "02_adaptive_avg_pool.ipynb"
    nb = nbformat.read(copy, as_version=4)
    nb.cells = [c for c in nb.cells if not is_answer_key(c)]  # as written before the solution had a key
    nbformat.write(nb, copy)
    assert main(["student-copies", "--root", str(keyed_course)]) == 0
    assert _keys_in(copy.parent)["02_adaptive_avg_pool.ipynb"] == 1


def test_a_marker_in_the_answer_key_names_the_solution_to_edit(keyed_course, tmp_path, capsys):
    """Finding 12: the message names the solution notebook (the file to edit), not the copy."""
    solution = keyed_course / "notebooks" / "01_gap_by_hand.ipynb"
    nb = nbformat.read(solution, as_version=4)
    key = next(i for i, c in enumerate(nb.cells) if is_answer_key(c))
    nb.cells[key].source = nb.cells[key].source.replace("\n\n</details>", "\n\n### BEGIN SOLUTION\n\n</details>")
    nbformat.write(nb, solution)
    for extra in ([], ["--answers", "drop", "--out", str(tmp_path / "handout")]):
        assert main(["student-copies", "--root", str(keyed_course), *extra]) == 2
        err = _one_sentence(capsys.readouterr().err)
        assert f"notebooks/01_gap_by_hand.ipynb cell {key}: the answer-key cell holds '### BEGIN SOLUTION'" in err
        assert "student/" not in err and "handout" not in err


def test_a_handout_in_the_repository_has_no_badge_and_no_message_suggests_one_there(keyed_course, capsys):
    """Finding 8: only notebooks/student/ is committed, so only its copies get an Open-in-Colab badge; refusals
    suggest ~/handout, not a handout/ folder in the repository (which .gitignore does not cover)."""
    solution = nbformat.read(SOLUTIONS[0], as_version=4)
    for where in ("handout/01_gap_by_hand.ipynb", "notebooks/student/more/01_gap_by_hand.ipynb", None):
        assert "Open In Colab" not in make_student_copy(solution, where).cells[0].source
    assert colab.badge_url("notebooks/student/01_gap_by_hand.ipynb") in make_student_copy(
        solution, "notebooks/student/01_gap_by_hand.ipynb").cells[0].source
    for where in ("docs/handout", "."):
        assert main(["student-copies", "--root", str(keyed_course), "--out", str(keyed_course / where)]) == 2
        err = _one_sentence(capsys.readouterr().err)
        assert "--out ~/handout" in err and "--out handout" not in err and "top of the repository" not in err
    text = (ROOT / "docs" / "instructors.md").read_text() + (ROOT / "gapcourse" / "__main__.py").read_text()
    assert "handout/` at the top" not in text and "handout/ at the top" not in text


def test_links_are_moved_for_the_copys_folder_or_point_at_github():
    """Finding 9: a solution's `](../docs/…)` is one level deeper from notebooks/student/; outside the repository
    it is the file's address on GitHub (the badge's repository and ref)."""
    from gapcourse.classroom.copies import moved_link, relinked

    github = f"https://github.com/{colab.GITHUB_REPO}/blob/{colab.REF}"
    md = ("See [the table](../docs/RESULTS.md#run-times), [the code](../gapcourse/models.py \"models\"), "
          "[notebook 02](02_adaptive_avg_pool.ipynb#top), [a picture](img/a.png), ![fig](../docs/fig.png), "
          "[web](https://example.org/x), [here](#section), <a href=\"../README.md\">readme</a>, `[i](../x)`, "
          "and\n```python\nm[0](../y)\n```")
    student = relinked(md, "notebooks/student")
    assert "[the table](../../docs/RESULTS.md#run-times)" in student
    assert "[the code](../../gapcourse/models.py \"models\")" in student
    assert "[notebook 02](02_adaptive_avg_pool.ipynb#top)" in student, "the student copy beside it"
    assert "[a picture](../img/a.png)" in student and "![fig](../../docs/fig.png)" in student
    assert "(https://example.org/x)" in student and "[here](#section)" in student
    assert '<a href="../../README.md">' in student
    assert "`[i](../x)`" in student and "m[0](../y)" in student, "code is not a link"
    assert relinked(md, "handout").count("](../docs/") == 2
    outside = relinked(md, None)
    assert f"[the table]({github}/docs/RESULTS.md#run-times)" in outside
    assert f'<a href="{github}/README.md">' in outside and "[notebook 02](02_adaptive_avg_pool.ipynb#top)" in outside
    assert f"![fig](https://raw.githubusercontent.com/{colab.GITHUB_REPO}/{colab.REF}/docs/fig.png)" in outside
    assert moved_link("../../elsewhere.md", "notebooks/student") == "../../elsewhere.md"  # outside the repository


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_relative_link_of_a_student_copy_reaches_a_file(path):
    """Finding 9: each relative link of the copy in notebooks/student/ (as the generator makes it) reaches a file of
    the repository, and a copy outside the repository has none left but links to its sibling copies."""
    import re
    from urllib.parse import unquote

    solution = nbformat.read(path, as_version=4)
    links = re.compile(r"\]\(\s*<?([^)\s>]+)|href=\"([^\"]+)\"")

    def relative(nb):
        return [target for c in nb.cells if c.cell_type == "markdown"
                for m in links.finditer(re.sub(r"`[^`\n]*`", "", c.source)) for target in [m.group(1) or m.group(2)]
                if not re.match(r"[a-z]+:|#", target)]

    rel = f"notebooks/student/{path.name}"
    for target in relative(make_student_copy(solution, rel)):
        assert (ROOT / "notebooks" / "student" / unquote(target.split("#")[0])).exists(), f"{rel}: {target}"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb(#.*)?", t) for t in relative(make_student_copy(solution, None)))
