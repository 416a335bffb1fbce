"""Student copies from the solution notebooks. Introduced in the README's section for instructors.

The notebooks in ``notebooks/`` are the solutions and the source of truth. In their code cells, answers sit between
nbgrader's markers::

    ### BEGIN SOLUTION
    return x.mean((2, 3))
    ### END SOLUTION

and checks that only a solution must pass sit between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.
:func:`make_student_copy` replaces each solution with ``raise NotImplementedError()`` (at the same indentation,
under a ``# YOUR CODE HERE`` line, as nbgrader does), drops hidden tests and outputs, and points the Colab badge at
the copy. ``python -m gapcourse student-copies`` writes ``notebooks/student/``; ``tests/test_classroom.py`` fails if
the committed copies differ from what it writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from . import colab

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUDENT_DIR = "student"
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


def exercise_count(nb: nbformat.NotebookNode) -> int:
    return sum(c.source.count(BEGIN_SOLUTION) for c in nb.cells if c.cell_type == "code")


def write_student_copies(root: str | Path, *, check: bool = False) -> list[Path]:
    """Write ``notebooks/student/NN_*.ipynb`` for every solution notebook under ``root``.

    With ``check=True`` nothing is written; the return value lists the copies that would change.
    """
    root = Path(root)
    solutions = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not solutions:
        raise FileNotFoundError(
            f"No solution notebooks (notebooks/NN_*.ipynb) under {root.resolve()}: nothing to "
            f"{'check' if check else 'write'}. Run this in the course repository, or pass --root /path/to/gapcourse.")
    changed = []
    for solution_path in solutions:
        student_rel = f"notebooks/{STUDENT_DIR}/{solution_path.name}"
        text = nbformat.writes(make_student_copy(nbformat.read(solution_path, as_version=4), student_rel)) + "\n"
        target = root / student_rel
        if not target.exists() or target.read_text() != text:
            changed.append(target)
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return changed
