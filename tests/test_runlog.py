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


# Careless-user review: runlog wrote wherever it was pointed, after the notebook had run --------------------------------
RESULTS = ROOT / "gapcourse" / "results"
GUARDED = [ROOT / "README.md", RESULTS / "heads.json", RESULTS / "course_times.json"]
NEVER_THERE = [RESULTS / "index.html", ROOT / "docs" / "index.html", ROOT / "docs" / "course_times.json"]


@pytest.fixture
def committed_untouched():
    """The committed files a case aims at stay byte for byte (put back atomically if not), and no index appears
    among them (removed if one does)."""
    from gapcourse.atomic import replacing

    before = {p: p.read_bytes() for p in GUARDED}
    absent = [p for p in NEVER_THERE if not p.exists()]
    yield
    changed = [p for p, b in before.items() if p.read_bytes() != b]
    for p in changed:
        with replacing(p) as tmp:
            tmp.write_bytes(before[p])
    appeared = [p for p in absent if p.exists()]
    for p in appeared:
        p.unlink()
    assert not changed and not appeared, f"changed: {changed}; written: {appeared}"


def runlog(argv, capsys) -> tuple[int, str]:
    from gapcourse.studies.runlog import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_sentence(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("log", [ROOT / "README.md", RESULTS / "heads.json", RESULTS / "course_times.json",
                                 RESULTS / "runs.tsv", ROOT / "docs" / "runs.tsv"], ids=lambda p: p.name)
def test_a_log_among_the_committed_files_is_refused_before_the_command_runs(log, tmp_path, capsys,
                                                                            committed_untouched):
    ran = tmp_path / "ran"
    code, err = runlog([log, "01", "--", "touch", ran], capsys)
    assert code == 2 and "Refused" in one_sentence(err) and "`course-times` may not" in err
    assert not ran.exists(), "the notebook ran although its row could not be written"
    assert not (RESULTS / "runs.tsv").exists() and not (ROOT / "docs" / "runs.tsv").exists()


@pytest.mark.parametrize("case", ["folder", "proc", "json", "notebook", "other log", "csv"])
def test_a_log_that_cannot_be_or_is_not_runlogs_is_refused_before_the_command_runs(case, tmp_path, capsys):
    log = {"folder": tmp_path / "dir", "proc": Path("/proc/x.tsv")}.get(case, tmp_path / "runs.tsv")
    content = {"json": '{"runs": []}\n', "notebook": '{"cells": [], "nbformat": 4, "nbformat_minor": 5}\n',
               "other log": "01\t7.3\t1107\tok\t\nnot a row\n", "csv": "name,seconds\n01,7.3\n"}
    if case == "folder":
        log.mkdir()
    elif case in content:
        log.write_text(content[case])
    ran = tmp_path / "ran"
    code, err = runlog([log, "02", "--", "touch", ran], capsys)
    one_sentence(err)
    assert code == 2 and not ran.exists()
    expected = {"folder": "is a folder", "proc": "cannot be written", "json": "already holds a JSON results file",
                "notebook": "already holds a notebook", "other log": "line 2 ('not a row')",
                "csv": "line 1 ('name,seconds')"}
    assert expected[case] in err
    if case in content:
        assert log.read_text() == content[case]


def test_a_command_that_cannot_be_started_is_one_sentence_and_no_row(tmp_path, capsys):
    log = tmp_path / "runs.tsv"
    code, err = runlog([log, "01", "--", tmp_path / "no-such-program", "x"], capsys)
    assert code == 2 and "cannot be started" in one_sentence(err) and "no-such-program" in err
    assert not log.exists() or log.read_text() == ""


def test_the_log_gets_one_row_per_run_and_the_command_status_is_returned(tmp_path, capsys):
    log = tmp_path / "html" / "runs.tsv"
    assert runlog([log, "notebooks/01_a.ipynb", "--", sys.executable, "-c", "pass"], capsys)[0] == 0
    assert runlog([log, "notebooks/02_b.ipynb", "--", sys.executable, "-c", "raise SystemExit(3)"], capsys)[0] == 3
    from gapcourse.studies.runlog import read_log

    rows = read_log(log)
    assert [(r["notebook"], r["status"]) for r in rows] == [("notebooks/01_a.ipynb", "ok"),
                                                             ("notebooks/02_b.ipynb", "FAILED")]


@pytest.mark.parametrize("folder", [RESULTS, ROOT / "docs", ROOT / "notebooks", ROOT / "gapcourse"],
                         ids=lambda p: p.name)
def test_index_refuses_the_committed_folders(folder, capsys, committed_untouched):
    """`--index gapcourse/results` with a runs.tsv there replaced the committed course_times.json (which a maintainer
    copies from build/html/ by hand) and left an index.html; `--index docs` replaced docs/index.html."""
    runs, page = folder / "runs.tsv", folder / "index.html"
    had, had_page = runs.exists(), page.exists()
    try:
        if not had:
            runs.write_text("notebooks/01_a.ipynb\t7.0\t900\tok\t\n")
        code, err = runlog(["--index", folder], capsys)
    finally:
        if not had:
            runs.unlink()
        written = page.exists() and not had_page
        if written:
            page.unlink()
    assert code == 2 and "Refused" in one_sentence(err) and "--index build/html" in err
    if folder == RESULTS:
        assert "by hand" in err
    assert not written, f"{page} was written"


@pytest.mark.parametrize("case", ["missing", "a file"])
def test_index_needs_an_existing_folder(case, tmp_path, capsys):
    folder = ROOT / "README.md" if case == "a file" else tmp_path / "nope"
    code, err = runlog(["--index", folder], capsys)
    assert code == 2 and ("is not a folder" if case == "a file" else "does not exist") in one_sentence(err)
    assert not (tmp_path / "nope").exists()


def test_index_names_the_malformed_line_of_runs_tsv_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "runs.tsv").write_text("notebooks/01_a.ipynb\t7.0\t900\tok\t\nnotebooks/02_b.ipynb\tfast\t900\tok\t\n")
    code, err = runlog(["--index", tmp_path], capsys)
    assert code == 2 and "runs.tsv line 2" in one_sentence(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.tsv"]


@pytest.mark.parametrize("name, content", [("index.html", "<html><title>My home page</title></html>\n"),
                                           ("course_times.json", '{"heads": {}}\n')])
def test_index_keeps_a_page_or_results_file_that_is_not_its_own(name, content, tmp_path, capsys):
    (tmp_path / "runs.tsv").write_text("notebooks/01_a.ipynb\t7.0\t900\tok\t\n")
    (tmp_path / name).write_text(content)
    code, err = runlog(["--index", tmp_path], capsys)
    assert code == 2 and "is not the course" in one_sentence(err)
    assert (tmp_path / name).read_text() == content
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("runs.tsv", name)] == []


def test_index_replaces_its_own_page_atomically_and_again(tmp_path, capsys):
    """The page is written beside and renamed into place: a hard link to the old page keeps the old content (an
    in-place write would have changed both)."""
    import json

    (tmp_path / "runs.tsv").write_text("notebooks/01_a.ipynb\t7.0\t900\tok\t42 % accuracy\n")
    assert runlog(["--index", tmp_path], capsys)[0] == 0
    page = tmp_path / "index.html"
    old = page.read_text()
    (tmp_path / "old.html").hardlink_to(page)
    (tmp_path / "runs.tsv").write_text("notebooks/01_a.ipynb\t7.0\t900\tok\t43 % accuracy\n")
    assert runlog(["--index", tmp_path], capsys)[0] == 0
    assert "43 % accuracy" in page.read_text() and (tmp_path / "old.html").read_text() == old
    assert json.loads((tmp_path / "course_times.json").read_text())["runs"][0]["headline"] == "43 % accuracy"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_runlog_refuses_from_the_command_line_with_status_2(tmp_path, committed_untouched):
    ran = tmp_path / "ran"
    run = subprocess.run([sys.executable, "-m", "gapcourse.studies.runlog", "README.md", "01", "--", "touch",
                          str(ran)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: Refused") and "Traceback" not in run.stderr
    assert not ran.exists()


@pytest.mark.slow
def test_make_course_writes_its_index_and_times_into_the_build_folder(tmp_path):
    import json

    import nbformat

    good = tmp_path / "98_fine.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import gapcourse; gapcourse.headline('fine')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, good)
    html_dir = tmp_path / "html"
    run = subprocess.run(["make", "-s", "course", "SKIP_INSTALL=1", f"PY={sys.executable}", f"NOTEBOOKS={good}",
                          f"HTML_DIR={html_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "fine" in (html_dir / "index.html").read_text()
    assert json.loads((html_dir / "course_times.json").read_text())["runs"][0]["status"] == "ok"
