"""Colab's runtime (constraints-colab.txt): the install cell must change nothing Colab already has.

Known Colab breakages this guards against (colabtools issues): an install that replaces an already-imported package
(numpy, torch) makes Colab ask for a restart, and the install cell's ``pip -q`` hides that prompt, so a learner keeps
stale modules; a dependency pinning numpy<2 gives "numpy.dtype size changed"; a requirement above Colab's torch makes
pip download a multi-GB torch. Progress bars and plots must render with Colab's ipywidgets 7.7.1 and matplotlib 3.10.

The first test (pyproject.toml's requirements against constraints-colab.txt) runs anywhere; the others run inside the
environment ``make test-colab`` builds (``tools/colab_env.py``: Python 3.13 and exactly Colab's versions), which sets
``GAPCOURSE_COLAB_ENV=1``, and are skipped elsewhere.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from gapcourse.classroom import colab
from test_colab_rehearsal import colab_like, error_outputs, execute, warning_text, wheel  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # runs in Colab's runtime (`make test-colab`)

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints-colab.txt"
WATCHED = ["torch", "torchvision", "numpy", "matplotlib", "ipykernel", "ipywidgets"]
in_colab_env = pytest.mark.skipif(os.environ.get("GAPCOURSE_COLAB_ENV") != "1",
                                  reason="runs in Colab's environment: make test-colab")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_versions() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalised(name)] = version.strip()
    return pins


def declared_requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_declared_requirements_are_met_by_colabs_versions():
    """Every requirement in pyproject.toml holds for Colab's version, so pip never upgrades anything on Colab."""
    pins = colab_versions()
    assert set(WATCHED) <= set(pins)
    for req in declared_requirements():
        if req.marker is None or req.marker.evaluate():
            assert normalised(req.name) in pins, f"{req.name} is not on Colab (constraints-colab.txt)"
            assert req.specifier.contains(pins[normalised(req.name)], prereleases=True), \
                f"{req} excludes Colab's {req.name} {pins[normalised(req.name)]}: pip would replace it on Colab"


@in_colab_env
def test_this_environment_is_colabs():
    """Python 3.13, and every installed distribution at the version constraints-colab.txt names."""
    assert sys.version_info[:2] == (3, 13)
    pins = colab_versions()
    site = [sysconfig.get_paths()["purelib"]]  # not the checkout's gapcourse.egg-info (the tests run from it)
    installed = {normalised(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=site)}
    assert {name: version for name, version in installed.items() if pins.get(name) != version} == {}
    import torch
    assert Version(torch.__version__).public == pins["torch"]


@in_colab_env
@pytest.mark.parametrize("no_deps", [True, False], ids=["no-deps", "with-deps"])
def test_installing_the_wheel_would_install_nothing_else(wheel, no_deps):  # noqa: F811 (the fixture)
    """pip's own plan on Colab's packages, with the install cell's --no-deps and without it: gapcourse alone."""
    args = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", str(wheel)]
    done = subprocess.run(args + (["--no-deps"] if no_deps else []), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert [(i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"]] == [("gapcourse", "0.1.0")]


SNAPSHOT = """\
import importlib.metadata, json, subprocess, sys
import torch, torchvision, numpy, matplotlib, ipykernel, ipywidgets
FRESH = ("import importlib, json; print(json.dumps({{m: [importlib.import_module(m).__version__, "
         "importlib.import_module(m).__file__] for m in %r}}))" % ({watched!r},))

def snapshot(name):
    kernel = {{m: [sys.modules[m].__version__, sys.modules[m].__file__] for m in {watched!r}}}
    fresh = json.loads(subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True,
                                      check=True).stdout)
    dists = {{d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}}
    with open(name, "w") as f:
        json.dump({{"kernel": kernel, "fresh": fresh, "distributions": dists}}, f)

snapshot("before.json")
"""


@in_colab_env
def test_the_install_cell_changes_nothing_colab_imported(wheel, tmp_path):  # noqa: F811 (the fixture)
    """The six packages a notebook has imported before the install cell runs keep their version and file, in the
    running kernel and for a fresh interpreter; the only new distribution is gapcourse; the cell prints nothing."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SNAPSHOT.format(watched=WATCHED)),
                nbformat.v4.new_code_cell(colab.install_cell()),
                nbformat.v4.new_code_cell('snapshot("after.json")\nimport gapcourse')]
    python, env = colab_like(tmp_path)
    env[colab.SOURCE_ENV] = str(wheel)
    work = tmp_path / "content"
    result, done = execute(python, env, nb, work)
    assert result.returncode == 0 and done is not None, result.stderr[-3000:]
    assert not error_outputs(done)
    assert done.cells[1].outputs == [], "the install cell printed something"
    before, after = (json.loads((work / name).read_text()) for name in ("before.json", "after.json"))
    assert after["kernel"] == before["kernel"] and after["fresh"] == before["fresh"] == before["kernel"]
    pins = colab_versions()
    assert {m: Version(v).public for m, (v, _) in before["kernel"].items()} == {m: pins[m] for m in WATCHED}
    added = {name: v for name, v in after["distributions"].items() if before["distributions"].get(name) != v}
    assert added == {"gapcourse": "0.1.0"}
    assert set(before["distributions"]) <= set(after["distributions"])


PROGRESS_AND_PLOT = [
    # the course's progress bars: tqdm.auto, an ipywidgets bar in a notebook (gapcourse.train.fit, data loading)
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='epochs'):\n    pass",
    # a plot through the course's own helper and a plain pyplot one, shown by Colab's inline backend
    "import matplotlib.pyplot as plt\nfrom gapcourse import viz\n"
    "viz.plot_output_sizes([8, 16, 32], {'GAP': [1, 1, 1]})\nplt.show()\n"
    "plt.plot([0, 1], [1, 0])\nplt.title('a plot')\nplt.show()",
]


@in_colab_env
def test_progress_bars_and_plots_render_without_warnings(wheel, tmp_path):  # noqa: F811 (the fixture)
    """With ipywidgets 7.7.1 and matplotlib 3.10: a widget progress bar (not tqdm's text fallback with its
    "IProgress not found" warning), inline PNG plots, and no error or warning text in any output."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(colab.install_cell())]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in PROGRESS_AND_PLOT]
    python, env = colab_like(tmp_path)
    env[colab.SOURCE_ENV] = str(wheel)
    result, done = execute(python, env, nb, tmp_path / "content")
    assert result.returncode == 0 and done is not None, result.stderr[-3000:]
    assert not error_outputs(done) and not warning_text(done), warning_text(done)
    progress, plots = done.cells[1], done.cells[2]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in progress.outputs)
    assert sum("image/png" in o.get("data", {}) for o in plots.outputs) == 2
