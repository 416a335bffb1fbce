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

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

from gapcourse.classroom import colab

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

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")]


def has_build_backend() -> bool:
    """Whether this environment has the setuptools pyproject.toml's build needs (Colab's 75.2.0 has not)."""
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel `make wheel` builds (`pip wheel --no-deps`), in a folder of its own; where this environment lacks
    the build backend (Colab's environment), pip builds it in an isolated environment, as pip does on Colab."""
    dist = tmp_path_factory.getbasetemp() / "course-wheel"  # one build per session (tests/test_colab_env.py too)
    if built := sorted(dist.glob("gapcourse-*.whl")):
        return built[0]
    dist.mkdir()
    isolation = [] if not has_build_backend() else ["--no-build-isolation"]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", dist,
                           str(ROOT)], cwd=dist, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
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
    # no MPLBACKEND: ipykernel picks matplotlib's inline backend, as on Colab (plots become PNG outputs)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP", "MPLBACKEND")}
    env.update(PATH=f"{python.parent}:{env['PATH']}", PYTHONPATH=str(where / "stand-in"),
               IPYTHONDIR=str(where / "ipython"), JUPYTER_DATA_DIR=str(where / "jupyter-data"),
               JUPYTER_CONFIG_DIR=str(where / "jupyter-config"), GAPCOURSE_PROFILE="fast", PYTHONNOUSERSITE="1")
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


WARNING = re.compile(r"\b\w*Warning\b:|Traceback \(most recent call last\)")


def warning_text(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """Anything a learner would read as a warning or an unexpected error: text on stderr (a warnings.warn, tqdm's
    text fallback, a logged error), a "...Warning:" line or a traceback elsewhere (the notebooks print the errors they
    catch on purpose, e.g. "RuntimeError: mat1 and mat2 shapes..."); cells tagged raises-exception aside."""
    found = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or "raises-exception" in c.metadata.get("tags", []):
            continue
        for o in c.outputs:
            text = o.get("text", "") or o.get("data", {}).get("text/plain", "")
            if (o.output_type == "stream" and o.name == "stderr" and text.strip()) or WARNING.search(text):
                found.append((i, text[:300]))
    return found


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
    assert not warning_text(done), warning_text(done)  # progress bars and plots render cleanly (ipywidgets, inline)
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


def _run_install_cell(monkeypatch, source: str | None, pip_returncode: int = 0, find_spec=None) -> tuple[list, str]:
    """The install cell run here as on Colab (a stand-in google.colab module), pip replaced by a recorder; returns
    pip's calls and what the cell printed."""
    import contextlib
    import importlib.util
    import io
    import subprocess as sp
    import types

    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sp, "run", lambda args, **_: calls.append(args) or sp.CompletedProcess(
        args, pip_returncode, "", "ERROR: No matching distribution found for it"))
    if source is None:
        monkeypatch.delenv(colab.SOURCE_ENV, raising=False)
    else:
        monkeypatch.setenv(colab.SOURCE_ENV, source)
    if find_spec is not None:
        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # what the cell appends goes with the test
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(colab.install_cell(), "install-cell", "exec"), {})  # noqa: S102 - the course's own cell
    return calls, out.getvalue()


@pytest.mark.parametrize("source", ["", "   ", "--help", "-e ."])
def test_an_install_source_pip_cannot_install_is_refused_with_advice(monkeypatch, source):
    calls, text = _run_install_cell(monkeypatch, source, find_spec=lambda name: None)
    assert calls == [], "pip must not run: it exits 0 for --help and installs nothing"
    assert text.startswith(f"{colab.SOURCE_ENV} is {source!r}: not a package pip can install. Unset it "
                           f"(os.environ.pop('{colab.SOURCE_ENV}')) or set it to a wheel's path or a git URL")
    appended = [f for f in sys.meta_path if type(f).__name__ == "HelpersMissing"]
    assert len(appended) == 1  # nothing older importable: `import gapcourse` will say what is missing
    with pytest.raises(ModuleNotFoundError, match="The course helpers"):
        appended[0].find_spec("gapcourse")


def test_a_failed_install_with_an_older_copy_importable_says_so_loudly(monkeypatch):
    calls, text = _run_install_cell(monkeypatch, "/content/nowhere.whl", pip_returncode=1)
    assert calls and calls[0][-1] == "/content/nowhere.whl"
    assert "Could not install the course helpers from /content/nowhere.whl" in text
    import gapcourse

    assert ("!!! The cells below would silently use an OLDER copy of gapcourse, from an earlier install in this "
            f"runtime ({gapcourse.__file__})") in text and "Restart session" in text
    assert not any(type(f).__name__ == "HelpersMissing" for f in sys.meta_path)


def test_a_blank_source_with_an_older_copy_importable_says_both(monkeypatch):
    calls, text = _run_install_cell(monkeypatch, "")
    assert calls == [] and "not a package pip can install" in text and "OLDER copy of gapcourse" in text
