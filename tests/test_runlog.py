"""gapcourse.studies.runlog: `make course`'s run log, its index page and each notebook's headline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


# 2 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_make_course_exits_non_zero_when_a_notebook_fails(tmp_path):
    import nbformat

    bad = tmp_path / "99_broken.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('broken on purpose')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, bad)
    run = subprocess.run(["make", "-s", "course", "SKIP_INSTALL=1", f"PY={sys.executable}", f"NOTEBOOKS={bad}",
                          f"HTML_DIR={tmp_path / 'html'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, run.stdout + run.stderr
    assert "FAILED" in run.stderr and "99_broken" in run.stderr


@pytest.mark.slow
def test_the_course_index_records_a_headline_written_from_another_folder(tmp_path, monkeypatch):
    """`make course` runs kernels in notebooks/: the headline file must not depend on the kernel's folder."""
    from gapcourse.studies import runlog

    monkeypatch.chdir(tmp_path)
    code = "import os; import gapcourse; os.chdir('/'); gapcourse.headline('88.4 % test accuracy')"
    assert runlog.run_and_log(Path("html/runs.tsv"), "notebooks/03.ipynb", [sys.executable, "-c", code]) == 0
    rows = runlog.read_log(Path("html/runs.tsv"))
    assert rows[0]["headline"] == "88.4 % test accuracy" and rows[0]["status"] == "ok"
    runlog.write_index(Path("html"))
    assert "88.4 % test accuracy" in (tmp_path / "html" / "index.html").read_text()
    assert (tmp_path / "html" / "course_times.json").exists()
