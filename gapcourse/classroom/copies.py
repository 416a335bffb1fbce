"""Student copies from the solution notebooks. Introduced in docs/instructors.md (in short: the README).

The notebooks in ``notebooks/`` are the solutions and the source of truth. In their code cells, answers sit between
nbgrader's markers::

    ### BEGIN SOLUTION
    return x.mean((2, 3))
    ### END SOLUTION

and checks that only a solution must pass sit between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.
:func:`make_student_copy` replaces each solution with ``raise NotImplementedError()`` (at the same indentation,
under a ``# YOUR CODE HERE`` line, as nbgrader does), drops hidden tests and outputs, and points the Colab badge at
the copy. ``python -m gapcourse student-copies`` writes ``notebooks/student/``; ``tests/test_classroom.py`` fails if
the committed copies differ from what it writes. Learners work in ``notebooks/student/``: a copy there whose exercise
cells are not the handout's (a learner's answers) is skipped, and said, unless ``--force``. Only the course's own
notebooks (:data:`COURSE_NOTEBOOK`: ``notebooks/NN_name.ipynb``) are read and written, never a learner's
``Untitled.ipynb`` or ``01_gap_by_hand-Copy1.ipynb``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from . import colab
from ..outputs import OutputError, guard, write_text

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUDENT_DIR = "student"
COURSE_NOTEBOOK = re.compile(r"\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb")  # 01_gap_by_hand.ipynb; not Untitled, -Copy1
PLACEHOLDER = "raise NotImplementedError()"
_BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
STUDENT_NOTE = ("> **Student copy.** The exercises are yours to fill in: replace each `raise NotImplementedError()`, "
                "run the cell, then run the check below it. Unanswered exercises do not stop *Run all*: the "
                "notebook uses the course's reference answer and says so.")


class MarkerError(ValueError):
    """A solution or hidden-test marker without its partner."""


def strip_cell(source: str, where: str = "") -> str:
    """One code cell's source with solutions replaced by a placeholder and hidden tests removed."""
    out: list[str] = []
    inside: str | None = None
    for line in source.splitlines():
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside:
                raise MarkerError(f"{where}: '{marker}' inside an open '{inside}' block")
            inside = marker
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            continue
        if marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if inside != expected:
                raise MarkerError(f"{where}: '{marker}' without '{expected}'")
            inside = None
            continue
        if inside is None:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: '{inside}' is never closed")
    return "\n".join(out)


def make_student_copy(solution: nbformat.NotebookNode, student_path: str) -> nbformat.NotebookNode:
    """The student version of a solution notebook that will live at ``student_path`` (repository-relative)."""
    nb = nbformat.from_dict(solution)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_cell(cell.source, f"{student_path} cell {index}")
            cell.outputs = []
            cell.execution_count = None
    first = nb.cells[0]
    first.source = _BADGE.sub(colab.badge_markdown(student_path), first.source, count=1)
    first.source = first.source.replace("\n\n", f"\n\n{STUDENT_NOTE}\n\n", 1)
    return nb


def course_notebooks(folder: Path) -> list[Path]:
    """The course's own notebooks in ``folder`` (``NN_name.ipynb``, sorted), never a learner's other notebooks."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if COURSE_NOTEBOOK.fullmatch(p.name) and p.is_file())


def committed_sources(root: Path, rel: str) -> set[str]:
    """The cell sources of ``rel`` as last committed in the git checkout at ``root`` (empty when there is no git,
    no checkout or no committed copy): what the generator wrote there, as opposed to what a learner wrote since."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{rel}"], capture_output=True, text=True,
                              timeout=30)
        if done.returncode != 0:
            return set()
        return {c.source for c in nbformat.reads(done.stdout, as_version=4).cells}
    except Exception:  # noqa: BLE001 - no git, or a committed file that is not a notebook: nothing known
        return set()


def answered_cells(target: Path, handout: nbformat.NotebookNode, committed: set[str] | None = None) -> list[str]:
    """The cells of the student notebook at ``target`` that a learner wrote or changed, by their first line: cells
    (code or notes) that are neither in ``handout`` nor in the ``committed`` copy (:func:`committed_sources`), so an
    answer, an edited exercise or an added note all count; every cell if ``target`` cannot be read as a notebook."""
    known = {c.source for c in handout.cells} | (committed or set())
    try:
        have = nbformat.read(target, as_version=4).cells
    except Exception:  # noqa: BLE001 - a notebook the learner's editor left half-written is still their work
        return ["the whole notebook: it is not a readable notebook"]
    return [(c.source.strip().splitlines() or ["(an empty cell)"])[0] for c in have
            if c.source not in known and c.source.strip()]


def exercise_count(nb: nbformat.NotebookNode) -> int:
    return sum(c.source.count(BEGIN_SOLUTION) for c in nb.cells if c.cell_type == "code")


def write_student_copies(root: str | Path, *, check: bool = False, force: bool = False,
                         skipped: list[tuple[Path, list[str]]] | None = None) -> list[Path]:
    """Write ``notebooks/student/NN_name.ipynb`` for every solution notebook ``notebooks/NN_name.ipynb`` under
    ``root``; returns the copies written.

    A copy holding cells that are neither the new handout's nor the committed copy's (:func:`answered_cells`: a
    learner's answers or notes) is not overwritten unless ``force``: it goes into ``skipped`` with those cells. With ``check=True`` nothing is written; the return value lists the copies that would change.
    Every copy is read and made, and every output checked (:func:`gapcourse.outputs.guard`), before the first is
    written, so an unreadable solution or a folder in a copy's place stops the run with nothing changed
    (:class:`~gapcourse.outputs.OutputError`, naming the file).
    """
    root = Path(root)
    solutions = course_notebooks(root / "notebooks")
    if not solutions:
        raise FileNotFoundError(
            f"No solution notebooks (notebooks/NN_*.ipynb) under {root.resolve()}: nothing to "
            f"{'check' if check else 'write'}. Run this in the course repository, or pass --root /path/to/gapcourse.")
    plan: list[tuple[Path, str]] = []  # every copy read and made before the first is written (no half-made set)
    for solution_path in solutions:
        student_rel = f"notebooks/{STUDENT_DIR}/{solution_path.name}"
        text = nbformat.writes(make_student_copy(read_solution(solution_path, root), student_rel)) + "\n"
        target = root / student_rel
        if target.exists() and not target.is_file():
            state = "a folder" if target.is_dir() else "not a regular file"
            raise OutputError(f"{student_rel} is {state}, not a notebook, where `student-copies` writes the student "
                              f"copy of notebooks/{solution_path.name}: move it away and run again.")
        if current_text(target) != text:
            answers = [] if check or force or not target.exists() else answered_cells(
                target, nbformat.reads(text, 4), committed_sources(root, student_rel))
            if answers:
                if skipped is not None:
                    skipped.append((target, answers))
                continue
            plan.append((target, text))
    if not check:  # through the output guard: never a solution notebook, nor a committed file not its own
        targets = [(guard(target, writer="student-copies", kind="notebook", what="student copy", inputs=solutions,
                          fixed_by="student-copies"), text) for target, text in plan]
        for number, (target, text) in enumerate(targets):
            try:
                write_text(target, text)
            except OSError as err:
                done = ", ".join(str(t.relative_to(root)) for t, _ in targets[:number]) or "none"
                raise OutputError(f"Could not write {target.relative_to(root)} ({err.strerror or err}); the copies "
                                  f"written before it: {done}. Fix the place (space, permissions) and run again: "
                                  "the copies already written are up to date.") from None
    return [target for target, _ in plan]


def read_solution(path: Path, root: Path) -> nbformat.NotebookNode:
    """The solution notebook ``path``; :class:`~gapcourse.outputs.OutputError` naming it when it cannot be read as a
    notebook (not JSON, not a notebook, unreadable)."""
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    try:
        return nbformat.read(path, as_version=4)
    except nbformat.reader.NotJSONError:
        reason = "it is not JSON"
    except Exception as err:  # noqa: BLE001 - unreadable, not UTF-8, not a notebook (nbformat's own errors)
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}"
    raise OutputError(f"The solution notebook {rel} cannot be read as a notebook ({reason}), so no student copy was "
                      f"written: restore it with `git checkout -- {rel}` (or repair it in Jupyter) and run again.")


def current_text(path: Path) -> str | None:
    """The text of the student copy at ``path``; None when there is none or it cannot be read as text (it then
    differs from any copy, and :func:`answered_cells` keeps it as a learner's unreadable work)."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
