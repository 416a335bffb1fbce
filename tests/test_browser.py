"""The local learner's route, in a real browser: JupyterLab driven by headless Chromium (Debian's package, through
Playwright pointed at the system browser) runs a student notebook and a training notebook with *Run All*.

It asserts what a learner would see: every code cell ran, no error output, the checks say "not attempted yet",
figures and the progress-bar widgets rendered. Skipped, and said so, when Chromium or Playwright is missing;
``.ci/run`` installs both and sets ``GAPCOURSE_REQUIRE_BROWSER=1``, so CI fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("GAPCOURSE_REQUIRE_BROWSER") == "1"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

missing = [what for what, ok in (("Chromium", CHROMIUM), ("Playwright", sync_playwright)) if not ok]
if missing and REQUIRED:
    raise RuntimeError(f"GAPCOURSE_REQUIRE_BROWSER=1 but {' and '.join(missing)} is missing: the browser test must run.")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing), reason=f"SKIPPED the real-browser test: {' and '.join(missing)} not "
                                                       "installed (apt-get install chromium; pip install playwright)")]


PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on loopback, serving copies of two notebooks, in the fast profile."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "student" / "01_gap_by_hand.ipynb", root / "student01.ipynb")
    shutil.copy(ROOT / "notebooks" / "03_cifar10_gap_cnn.ipynb", root / "train03.ipynb")
    settings = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (JupyterLab 4 otherwise only renders the cells in view), so the page can be inspected whole.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), "gapcourse-browser-test"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # figures inline, as a learner sees them
    env.update(GAPCOURSE_PROFILE="fast", JUPYTER_CONFIG_DIR=str(root / ".jupyter"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".lab-settings"),
               GAPCOURSE_CACHE=os.environ.get("GAPCOURSE_CACHE", str(root / "cache")))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True",
         "--LabServerApp.extra_labextensions_path=[]"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield url, token, root
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def run_all_in_browser(url: str, token: str, name: str, timeout_s: float = 240) -> dict:
    """Open ``name`` in JupyterLab, Run All, wait until the kernel is idle with every cell run, save; return what the
    page showed (counts of figures and progress widgets) with the saved notebook."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # A workspace of its own, reset: only this notebook open (a restored tab would be run instead).
        page.goto(f"{url}/lab/workspaces/{name.replace('.', '-')}/tree/{name}?token={token}&reset")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
        # Remember every progress widget that appears, even the ones tqdm removes when they finish (leave=False).
        page.evaluate("""() => {
            window.__widgets = 0;
            new MutationObserver(() => {
                const n = document.querySelectorAll('.jp-OutputArea-output .widget-progress, '
                                                    + '.jp-OutputArea-output .jupyter-widgets').length;
                window.__widgets = Math.max(window.__widgets, n);
            }).observe(document.body, {childList: true, subtree: true});
        }""")
        page.click(".jp-Notebook")
        # What Run > Run All Cells does, through JupyterLab's command registry (the menu's own command).
        page.wait_for_function("""() => {
            const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
                && window.jupyterapp.commands.isEnabled('notebook:run-all-cells');
        }""", timeout=120_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            prompts = page.eval_on_selector_all(f"{PANEL} .jp-CodeCell .jp-InputPrompt",
                                                "els => els.map(e => e.textContent)")
            busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").count()
            if prompts and all(p.strip() not in ("[ ]:", "[*]:") for p in prompts) and not busy:
                break
            time.sleep(1)
        else:
            errors = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)"
                                               ".filter(t => /Error|Traceback/.test(t)).map(t => t.slice(-600))")
            pytest.fail(f"{name}: Run All did not finish within {timeout_s} s; prompts: {prompts}, busy: {busy}; "
                        f"error outputs: {errors}")
        seen = {
            "prompts": prompts,
            "images": page.locator(f"{PANEL} .jp-OutputArea-output img").count(),
            "widgets": page.evaluate("() => window.__widgets"),
            "errors": page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], "
                                   ".jp-OutputArea-output .jp-RenderedText[data-mime-type="
                                   "'application/vnd.jupyter.error']").count(),
            "text": page.inner_text(f"{PANEL} .jp-Notebook"),
        }
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        time.sleep(2)
        browser.close()
    return seen


def saved(root: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(root / name, as_version=4)


def check_saved(nb: nbformat.NotebookNode, name: str) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    skipped = [c for c in code if "nbval-skip" in c.metadata.get("tags", [])]  # the Colab-only install cell runs too
    assert all(c.execution_count for c in code), f"{name}: cells that did not run: " + str(
        [c.source.splitlines()[0] for c in code if not c.execution_count])
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: error output: {[e.ename + ': ' + e.evalue for e in errors]}"
    assert len(skipped) == 1


def test_student_copy_runs_all_in_jupyterlab(lab):
    url, token, root = lab
    seen = run_all_in_browser(url, token, "student01.ipynb")
    check_saved(saved(root, "student01.ipynb"), "student01.ipynb")
    assert seen["errors"] == 0
    assert seen["images"] >= 4, seen["images"]
    assert seen["text"].count("Not attempted yet") >= 2, seen["text"][-2000:]
    assert "⏳ global_avg_pool: not attempted yet" in seen["text"]
    assert "you wrote it" not in seen["text"]  # the summary speaks only of what the learner did


def test_training_notebook_runs_all_with_progress_widgets(lab):
    url, token, root = lab
    seen = run_all_in_browser(url, token, "train03.ipynb", timeout_s=400)
    nb = saved(root, "train03.ipynb")
    check_saved(nb, "train03.ipynb")
    assert seen["errors"] == 0 and seen["images"] >= 5
    assert seen["widgets"] > 0, "tqdm's progress bars should render as Jupyter widgets in the browser"
