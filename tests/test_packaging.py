"""Packaging: the conda file matches pyproject, the README's commands exist, and the built wheel runs notebook 01
from outside the repository (what a Colab user gets)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the package tomli (a dependency of pytest there)
    import tomli as tomllib

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}


def requirement(spec: str) -> tuple[str, str]:
    name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(>=[^,;\s]+)?", spec.strip()).groups()
    return name.lower(), bound or ""


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["dev"])
    conda = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        m = re.fullmatch(r"\s{2}- ([A-Za-z0-9_.-]+)\s*(>=\S+)?", line)
        if m and m.group(1) not in ("python", "pip"):
            name = CONDA_NAMES.get(m.group(1), m.group(1)).lower()
            conda[name] = m.group(2) or ""
    assert conda == wanted


def test_dependencies_are_lower_bounds_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert "==" not in spec and "<" not in spec, f"{spec}: pins belong in constraints.txt"


def pins(path: Path) -> dict[str, str]:
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()).groups()
                for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


def test_lower_bounds_are_the_oldest_pair_ci_tests():
    """pyproject.toml (and so environment.yml, above) promises exactly the torch/torchvision pair CI installs for
    `make test-oldest`; the newest pinned pair is at or above it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = dict(requirement(s) for s in project["dependencies"])
    oldest, newest = pins(ROOT / "constraints-oldest.txt"), pins(ROOT / "constraints.txt")
    assert set(oldest) == {"torch", "torchvision"} == set(newest)
    for name, version in oldest.items():
        assert bounds[name] == f">={version}", f"{name}: pyproject says {bounds[name]}, CI tests {version}"
        old, new = (tuple(int(x) for x in v.split(".")) for v in (version, newest[name]))
        assert old <= new


def test_ci_runs_the_newest_and_the_oldest_pair_and_colabs_runtime():
    """Each environment runs the notebooks once: nbval on the two pairs (the solutions on the newest, with the student
    copies on the oldest), the Colab rehearsal (every notebook alone, from the wheel) on Colab's runtime only."""
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in ("make test", "make test-oldest", "make test-colab"):
        assert re.search(rf"^{command}$", ci, re.M), command
    recipe = makefile.split("\n$(STAMP_OLDEST):", 1)[1].split("\n\n", 1)[0]
    assert "-c constraints-oldest.txt" in recipe and "constraints-oldest.txt" in recipe.splitlines()[0]
    target = re.search(r"^test-oldest: .*\n\t(.*)$", makefile, re.M).group(1)
    assert "GAPCOURSE_PROFILE=fast" in target and "$(NBVAL)" in target
    assert " tests notebooks " in target and '-m "not slow"' in target  # the browser, the rehearsal: slow
    for slow_file in ("test_browser.py", "test_colab_rehearsal.py"):
        assert "pytest.mark.slow" in (ROOT / "tests" / slow_file).read_text().split("\ndef ", 1)[0], slow_file
    newest = re.search(r"^test: .*\n\t(.*)$", makefile, re.M).group(1)
    assert " tests $(SOLUTION_NOTEBOOKS) " in newest and "$(NO_REHEARSAL)" in newest and "$(NBVAL)" in newest
    deselected = re.findall(r"--deselect tests/test_colab_rehearsal.py::(\w+)", makefile)
    assert deselected == ["test_runs_alone_as_on_colab",
                          "test_unreachable_source_gives_advice_then_a_clear_import_error"]
    assert "SOLUTION_NOTEBOOKS := $(wildcard notebooks/[0-9][0-9]_*.ipynb)" in makefile
    colab_target = re.search(r"^test-colab:.*\n\t(.*)$", makefile, re.M).group(1)
    assert "tools/colab_env.py test" in colab_target
    assert '"tests/test_colab_rehearsal.py"' in (ROOT / "tools" / "colab_env.py").read_text()
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"] == \
        ["tests"]


def test_readme_quick_start_commands_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("course", "test", "lab"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def make_venv_reusing_this_environment(where: Path) -> Path:
    """A fresh venv that sees this environment's packages (torch...) through a .pth line, but not gapcourse."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "reuse_course_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_wheel_runs_notebook_01_outside_the_repository(tmp_path):
    # Built from a copy of the checkout's own files (what git tracks or would add), never from a leftover build/
    # folder: setuptools copies build/lib as it finds it, so modules since moved away would ship beside their moves.
    source = tmp_path / "source"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist,
                    str(source)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("gapcourse-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("gapcourse/") and n.endswith(".py")}
    modules = {p.relative_to(source).as_posix() for p in (source / "gapcourse").rglob("*.py")}
    assert shipped == modules, f"the wheel's modules differ from the source's: {sorted(shipped ^ modules)}"
    python = make_venv_reusing_this_environment(tmp_path / "venv")
    # pip itself is borrowed from this environment; it installs into the new venv (its sys.prefix)
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], check=True, cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "01_gap_by_hand.ipynb", as_version=4)
    probe = nbformat.v4.new_code_cell(
        "import gapcourse, sys, pathlib\n"
        "pathlib.Path('where.txt').write_text(gapcourse.__file__ + '\\n' + sys.executable)")
    nb.cells.append(probe)
    nbformat.write(nb, work / "01.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}:{env['PATH']}"
    result = subprocess.run([python, "-m", "nbconvert", "--to", "notebook", "--execute",
                             "--output", "out.ipynb", "01.ipynb"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    executed = nbformat.read(work / "out.ipynb", as_version=4)
    errors = [(i, o.ename) for i, c in enumerate(executed.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"
              and "raises-exception" not in c.metadata.get("tags", [])]
    assert not errors, errors
    module, interpreter = (work / "where.txt").read_text().splitlines()
    assert str(ROOT) not in module, f"gapcourse was imported from the repository: {module}"
    assert module.startswith(str(tmp_path / "venv")) and interpreter.startswith(str(tmp_path / "venv"))
    shutil.rmtree(dist)


def test_the_license_file_exists_and_matches_pyproject():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
