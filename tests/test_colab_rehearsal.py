"""A Colab rehearsal: every notebook (solutions and student copies) run the way Colab runs it.

Each notebook is executed alone, in an empty temporary folder outside the repository, by a kernel that cannot see
the repository: a fresh virtual environment that reuses this environment's packages (torch, torchvision, Jupyter...)
through a ``.pth`` line but not its editable gapcourse. A stand-in ``google.colab`` module is imported when the
kernel starts (an IPython startup file), so the install cell takes its Colab branch and really runs pip; the
environment variable ``GAPCOURSE_INSTALL_SOURCE`` points it at the wheel ``make wheel`` builds instead of the
repository's URL. Data come from ``GAPCOURSE_DATA``; the shipped networks from the installed wheel. Every cell must
run without an error (cells tagged ``raises-exception`` aside), and a last cell records where everything came from.

The failure branch: an install source that cannot be reached prints the fallback advice without a traceback, and
the next ``import gapcourse`` says that the helpers are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

from gapcourse import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT_COPIES = sorted((ROOT / "notebooks" / "student").glob("[0-9][0-9]_*.ipynb"))
STAND_IN = '"""Stand-in for Colab\'s google.colab, written by tests/test_colab_rehearsal.py."""\n'
PROBE = """\
import importlib.metadata, json, pathlib, sys
import gapcourse, gapcourse.weights, torch
pathlib.Path("where.json").write_text(json.dumps({
    "gapcourse": gapcourse.__file__, "weights": str(gapcourse.weights.WEIGHTS_DIR), "torch": torch.__file__,
    "python": sys.executable, "colab": "google.colab" in sys.modules,
    "installed": str(importlib.metadata.distribution("gapcourse").locate_file("gapcourse"))}))
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `make wheel` builds (the same pip command), in a folder of its own."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist,
                    str(ROOT)], check=True, cwd=dist, capture_output=True)
    return next(dist.glob("gapcourse-*.whl"))


def colab_like(where: Path) -> tuple[Path, dict[str, str]]:
    """A fresh venv reusing this environment's packages but not gapcourse, and the environment for its kernel:
    the stand-in google.colab on PYTHONPATH, imported by an IPython startup file; Jupyter's folders inside
    ``where`` (no user kernelspec or profile can leak in)."""
    venv.EnvBuilder(with_pip=False).create(where / "venv")
    python = where / "venv" / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "reuse_course_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    stand_in = where / "stand-in" / "google" / "colab"  # `google` stays a namespace package
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(STAND_IN)
    startup = where / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # as on Colab: loaded before the first cell\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PATH=f"{python.parent}:{env['PATH']}", PYTHONPATH=str(where / "stand-in"),
               IPYTHONDIR=str(where / "ipython"), JUPYTER_DATA_DIR=str(where / "jupyter-data"),
               JUPYTER_CONFIG_DIR=str(where / "jupyter-config"), GAPCOURSE_PROFILE="fast", MPLBACKEND="Agg",
               PYTHONNOUSERSITE="1")
    return python, env


def execute(python: Path, env: dict[str, str], nb: nbformat.NotebookNode, work: Path,
            allow_errors: bool = False) -> tuple[subprocess.CompletedProcess, nbformat.NotebookNode | None]:
    work.mkdir()
    nbformat.write(nb, work / "notebook.ipynb")
    args = [python, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", "out.ipynb",
            "--ExecutePreprocessor.timeout=900", "notebook.ipynb"]
    result = subprocess.run(args + (["--allow-errors"] if allow_errors else []), cwd=work, env=env,
                            capture_output=True, text=True, timeout=1200)
    out = work / "out.ipynb"
    return result, (nbformat.read(out, as_version=4) if out.exists() else None)


def error_outputs(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    return [(i, o.ename, o.evalue[:200]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error" and "raises-exception" not in c.metadata.get("tags", [])]


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT_COPIES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runs_alone_as_on_colab(path, wheel, tmp_path):
    nb = nbformat.read(path, as_version=4)
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert install.source == colab.install_cell(), "install cell out of step: run python tools/sync_notebooks.py"
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    python, env = colab_like(tmp_path)
    env[colab.SOURCE_ENV] = str(wheel)
    work = tmp_path / "content"  # empty, outside the repository, like Colab's /content
    result, done = execute(python, env, nb, work)
    assert result.returncode == 0 and done is not None, result.stderr[-3000:]
    assert not error_outputs(done), error_outputs(done)
    assert "Could not install" not in printed(done.cells[nb.cells.index(install)])
    where = json.loads((work / "where.json").read_text())
    venv_dir = str(tmp_path / "venv")
    assert where["colab"], "the install cell did not take its Colab branch"
    assert where["python"].startswith(venv_dir)
    assert where["gapcourse"].startswith(venv_dir) and str(ROOT) not in where["gapcourse"], where
    assert Path(where["installed"]) == Path(where["gapcourse"]).parent, "gapcourse was not the installed wheel"
    assert where["weights"].startswith(venv_dir), "the shipped networks did not come from the installed package"
    assert where["torch"].startswith(sysconfig.get_paths()["purelib"]), "torch should be this environment's"
    assert not list(work.glob("gapcourse*")), "the notebook left the helpers in its folder"


def test_unreachable_source_gives_advice_then_a_clear_import_error(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / "student" / "01_gap_by_hand.ipynb", as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    nb.cells = nb.cells[: code[1] + 1]  # up to the setup cell, the first to import gapcourse
    assert "import gapcourse" in nb.cells[-1].source
    python, env = colab_like(tmp_path)
    env[colab.SOURCE_ENV] = str(tmp_path / "nowhere" / "gapcourse-0.1.0-py3-none-any.whl")
    result, done = execute(python, env, nb, tmp_path / "content", allow_errors=True)
    assert result.returncode == 0 and done is not None, result.stderr[-3000:]
    install, setup = done.cells[code[0]], done.cells[-1]
    assert not [o for o in install.outputs if o.output_type == "error"], "the install cell showed a traceback"
    text = printed(install)
    assert f"Could not install the course helpers from {env[colab.SOURCE_ENV]}" in text
    assert "make wheel" in text and "pip install --no-deps /content/gapcourse-*.whl" in text
    errors = [o for o in setup.outputs if o.output_type == "error"]
    assert [(e.ename, e.evalue) for e in errors] == [("ModuleNotFoundError", colab.MISSING_HELPERS)]


def test_outside_colab_the_install_cell_does_nothing(tmp_path):
    """Without google.colab (a local Jupyter) the cell neither installs nor prints anything."""
    space = {}
    env_before = dict(os.environ)
    os.environ[colab.SOURCE_ENV] = str(tmp_path / "must-not-be-used.whl")
    try:
        exec(compile(colab.install_cell(), "install-cell", "exec"), space)  # noqa: S102 - the course's own cell
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    assert "done" not in space and "source" not in space
