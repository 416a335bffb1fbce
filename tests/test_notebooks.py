"""The notebooks as teaching material: ordered, clean, Colab-ready, with goals and a summary.

Running them is nbval's job (`make test` collects notebooks/*.ipynb with the Makefile's NBVAL options); these tests check the form.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gapcourse.classroom import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT_COPIES = sorted((ROOT / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_are_numbered_in_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers and numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT_COPIES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} carry outputs: run `python tools/sync_notebooks.py` before committing"


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT_COPIES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_opens_alone_on_colab(path):
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(ROOT).as_posix()
    assert nb.cells[0].cell_type == "markdown" and colab.badge_url(rel) in nb.cells[0].source
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert install.source == colab.install_cell()
    assert "nbval-skip" in install.metadata.get("tags", [])
    assert "--no-deps" in install.source and 'if "google.colab" in sys.modules' in install.source
    for banned in ("torch==", "torchvision==", "numpy=="):
        assert banned not in install.source


@pytest.mark.slow
def test_sync_tool_finds_nothing_to_change():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_teaching_shape(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "**Learning goals.**" in nb.cells[0].source
    assert re.search(r"^## Summary", text, re.M)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    long_cells = [c.source.splitlines()[0] for c in code_cells if len(c.source.splitlines()) > 30]
    assert not long_cells, f"code cells over 30 lines (one idea per cell): {long_cells}"
    # Run All must never stop on purpose in any front end (Colab and VS Code ignore `raises-exception`): the tag
    # is allowed only on exercise cells that just define a function, which cannot raise when run.
    for c in code_cells:
        if "raises-exception" in c.metadata.get("tags", []):
            body = ast.parse(c.source).body
            assert body and all(isinstance(node, ast.FunctionDef) for node in body), \
                f"a cell tagged raises-exception does more than define a function: {c.source[:60]!r}"
    asserts = sum(c.source.count("assert ") for c in code_cells)
    assert asserts >= 5, "cells that teach a fact assert it"


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT_COPIES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_metadata_is_complete_so_opening_does_not_mark_the_notebook_modified(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"] == colab.KERNELSPEC
    assert nb.metadata["language_info"] == colab.LANGUAGE_INFO


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_questions_and_a_go_further_experiment(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    questions = text[text.index("## Questions"):]
    assert len(re.findall(r"^\d\. ", questions, re.M)) >= 4 and "**Go further.**" in questions
