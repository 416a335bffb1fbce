"""Publishing in one command: `python tools/sync_notebooks.py --repo OWNER/NAME --ref TAG` on a copy of the repository
rewrites every badge, install cell and README link; the copy then passes the notebook-form checks; the real tree is
never touched."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOUCHED = ["README.md", "gapcourse/classroom/colab.py", "notebooks"]


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for rel in TOUCHED:
        path = root / rel
        for f in sorted([path] if path.is_file() else path.rglob("*.ipynb")):
            h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def copy(tmp_path) -> Path:
    dest = tmp_path / "course"
    for rel in ("README.md", "gapcourse", "tools", "notebooks"):
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run(copy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(copy / "tools" / "sync_notebooks.py"), *args], cwd=copy,
                          capture_output=True, text=True, timeout=300)


def copy_colab(copy: Path) -> dict:
    """What the copy's gapcourse.classroom.colab says, asked in a process that imports the copy (not this checkout)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from gapcourse.classroom import colab; "
            "assert colab.__file__.startswith(sys.argv[1]); "
            "print(json.dumps({'repo': colab.GITHUB_REPO, 'ref': colab.REF, 'cell': colab.install_cell()}))")
    out = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_publish_rewrites_every_badge_install_cell_and_readme_link(copy):
    before = digest(ROOT)
    old = copy_colab(copy)
    result = run(copy, "--repo", "alice/gap-course", "--ref", "v1.0")
    assert result.returncode == 0, result.stderr
    new = copy_colab(copy)
    assert (new["repo"], new["ref"]) == ("alice/gap-course", "v1.0")
    assert "git+https://github.com/alice/gap-course@v1.0" in new["cell"]
    notebooks = sorted((copy / "notebooks").rglob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        rel = path.relative_to(copy).as_posix()
        assert f"https://colab.research.google.com/github/alice/gap-course/blob/v1.0/{rel}" in nb.cells[0].source
        install = next(c for c in nb.cells if c.cell_type == "code")
        assert install.source == new["cell"], rel
        assert f"updated: {rel}" in result.stdout
    readme = (copy / "README.md").read_text()
    assert "colab.research.google.com/github/alice/gap-course/blob/v1.0/notebooks/student/01_gap_by_hand.ipynb" \
        in readme
    for text in [readme, (copy / "gapcourse" / "classroom" / "colab.py").read_text(), *(p.read_text() for p in notebooks)]:
        assert f"{old['repo']}/blob/{old['ref']}" not in text and f"github.com/{old['repo']}@" not in text
    # the published copy is in step: the sync check (what tests/test_notebooks.py runs) and the student copies agree
    assert run(copy, "--check").returncode == 0
    student = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                              "from gapcourse.__main__ import main; sys.exit(main(['student-copies', '--root', "
                              "sys.argv[1], '--check']))", str(copy)], capture_output=True, text=True)
    assert student.returncode == 0, student.stdout + student.stderr
    assert digest(ROOT) == before, "the publish test changed the real repository"


@pytest.mark.slow
def test_publishing_twice_changes_nothing_the_second_time(copy):
    assert run(copy, "--repo", "alice/gap-course", "--ref", "v1.0").returncode == 0
    again = run(copy, "--repo", "alice/gap-course", "--ref", "v1.0")
    assert again.returncode == 0 and again.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["--repo", "not a repo"], "expected OWNER/NAME"),
    (["--repo", "alice/gap-course", "--ref", "v1..0"], "expected a branch or tag name"),
    (["--repo", "https://github.com/alice/gap-course"], "expected OWNER/NAME"),
    (["--repo", "alice/gap-course.git", "--ref", "v1"], "without .git"),
    (["--repo", "alice/gap-course", "--ref", ""], "--ref is empty"),
    (["--repo", "", "--ref", "v1"], "--repo is empty"),
    (["--repo", "alice/.."], "the repository name '..' starts with '.'"),
    (["--repo", "a/.b"], "the repository name '.b' starts with '.'"),
    (["--repo", "a-/x"], "the owner 'a-' is not a GitHub user or organisation name: 1 to 39 letters, digits and "
                         "single hyphens, not starting or ending with a hyphen"),
    (["--repo", ".hidden"], "--repo '.hidden': expected OWNER/NAME as on GitHub (e.g. alice/gapcourse), one '/'"),
    (["--repo", "alice/gapfork", "--ref", "v1."], "--ref 'v1.': expected a branch or tag name (e.g. main or v1.0): "
                                                  "git's ref names cannot end with '.'"),
    (["--repo", "alice/gapfork", "--ref=-rf"], "--ref '-rf': a branch or tag name cannot start with '-'"),
    (["--repo", "alice/gapfork", "--ref", "v1/.x"], "cannot have a part starting with '.'"),
    (["--repo", "alice/gapfork", "--ref", "v1.lock"], "cannot have a part ending in '.lock'"),
])
def test_bad_names_are_refused_with_one_line_and_nothing_changes(copy, args, expected):
    before = digest(copy)
    result = run(copy, *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and expected in result.stderr
    assert digest(copy) == before


def test_the_sync_tool_names_its_options():
    text = (ROOT / "tools" / "sync_notebooks.py").read_text()
    assert re.search(r"--repo OWNER/NAME --ref TAG", text)
    assert "python tools/sync_notebooks.py --repo OWNER/NAME --ref" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_a_notebook_that_cannot_be_read_stops_the_publish_before_anything_is_written(copy):
    broken = copy / "notebooks" / "student" / "03_cifar10_gap_cnn.ipynb"
    broken.write_text(broken.read_text()[:4000])  # truncated
    before = digest(copy)
    result = run(copy, "--repo", "alice/gapfork", "--ref", "v9")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: notebooks/student/03_cifar10_gap_cnn.ipynb is not a readable notebook")
    assert "Nothing was written" in result.stderr and "Traceback" not in result.stderr
    assert digest(copy) == before  # not colab.py, not the README, not one notebook: no half-published tree
    assert 'GITHUB_REPO = "alice/gapfork"' not in (copy / "gapcourse" / "classroom" / "colab.py").read_text()


@pytest.mark.slow
def test_a_course_notebook_without_a_code_cell_gets_a_clear_error(copy):
    path = copy / "notebooks" / "05_class_activation_maps.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown"]
    nbformat.write(nb, path)
    result = run(copy)
    assert result.returncode == 2 and "StopIteration" not in result.stderr
    assert result.stderr.strip() == ("error: notebooks/05_class_activation_maps.ipynb has no code cell: a course "
                                     "notebook's first code cell is the Colab install cell. Add an empty code cell "
                                     "after the title, then run again. Nothing was written.")


@pytest.mark.slow
def test_only_the_courses_own_notebooks_are_rewritten(copy):
    learner = nbformat.read(copy / "notebooks" / "student" / "01_gap_by_hand.ipynb", as_version=4)
    learner.cells[1].outputs = [nbformat.v4.new_output("stream", text="my run")]
    for name in ("Untitled.ipynb", "01_gap_by_hand-Copy1.ipynb", "student/Untitled1.ipynb"):
        nbformat.write(learner, copy / "notebooks" / name)
    mine = {name: (copy / "notebooks" / name).read_bytes() for name in
            ("Untitled.ipynb", "01_gap_by_hand-Copy1.ipynb", "student/Untitled1.ipynb")}
    result = run(copy, "--repo", "alice/gapfork", "--ref", "v9")
    assert result.returncode == 0, result.stderr
    assert "Untitled" not in result.stdout and "Copy1" not in result.stdout
    assert all((copy / "notebooks" / name).read_bytes() == text for name, text in mine.items())


@pytest.mark.slow
def test_a_learners_run_student_copy_is_skipped_not_stripped(copy):
    """Careless-user review: the sync stripped a learner's outputs from their student copy; it now leaves that copy
    as it is, says so, and exits 1, while every other notebook is published."""
    path = copy / "notebooks" / "student" / "01_gap_by_hand.ipynb"
    learner = nbformat.read(path, as_version=4)
    code = next(c for c in learner.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="my run")]
    nbformat.write(learner, path)
    before = path.read_bytes()
    result = run(copy, "--repo", "alice/gapfork", "--ref", "v9")
    assert result.returncode == 1 and "skipped: notebooks/student/01_gap_by_hand.ipynb" in result.stderr
    assert "outputs of 1 cell(s)" in result.stderr and path.read_bytes() == before
    assert "alice/gapfork" in (copy / "notebooks" / "student" / "02_adaptive_avg_pool.ipynb").read_text()
