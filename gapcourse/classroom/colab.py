"""Colab support, kept in one place: the repository and ref every notebook's install cell and badge point at.

Introduced in notebook 01 (its first code cell). ``tools/sync_notebooks.py`` writes :func:`install_cell` and
:func:`badge_markdown` into every notebook; ``tests/test_notebooks.py`` fails if a notebook drifts from them.
Publishing a copy of the course: ``python tools/sync_notebooks.py --repo OWNER/NAME --ref TAG`` rewrites
``GITHUB_REPO`` and ``REF`` below, then every badge, install cell and README link.

The environment variable ``GAPCOURSE_INSTALL_SOURCE`` (:data:`SOURCE_ENV`) replaces the repository URL in the install
cell (a wheel's path, a fork's URL): ``tests/test_colab_rehearsal.py`` points it at the wheel ``make wheel`` builds.
"""

from __future__ import annotations

GITHUB_REPO = "gapcourse/gapcourse"
REF = "main"  # the branch or tag the Colab cells install from and the badges open

INSTALL_CELL_TAGS = ["nbval-skip"]
SOURCE_ENV = "GAPCOURSE_INSTALL_SOURCE"
_MISSING = ("The course helpers (gapcourse) are not installed: the first code ",
            "cell could not install them. Follow its advice, then run all again.")
MISSING_HELPERS = "".join(_MISSING)  # what `import gapcourse` says after a failed install


def install_source() -> str:
    """What the install cell gives pip by default: this repository at :data:`REF`."""
    return f"gapcourse @ git+https://github.com/{GITHUB_REPO}@{REF}"


def badge_url(notebook_path: str) -> str:
    """The 'Open in Colab' link for a notebook path inside the repository (e.g. ``notebooks/01_….ipynb``)."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{REF}/{notebook_path}"


def badge_markdown(notebook_path: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({badge_url(notebook_path)})")


def install_cell() -> str:
    """Source of each notebook's first code cell: installs the helpers on Colab only, never torch or numpy; if that
    fails, it says what to do instead of showing a traceback, and makes the next ``import gapcourse`` say that the
    helpers are missing (rather than a bare "No module named"). A :data:`SOURCE_ENV` that pip would not read as a
    package (empty, blank, or an option such as ``--help``) is refused with advice; when the install failed but an
    older gapcourse from an earlier install is still importable in the runtime, the cell says so loudly instead of
    letting the notebook use it silently (and after an install, that a copy imported earlier needs a restart)."""
    return (
        '# On Colab only: install the course helpers (torch, torchvision and numpy are already there: --no-deps).\n'
        'import importlib.util, os, subprocess, sys\n'
        'if "google.colab" in sys.modules:\n'
        f'    source, ok = os.environ.get("{SOURCE_ENV}",  # the course\'s tests point it at a wheel\n'
        f'                                "{install_source()}"), False\n'
        '    if not source.strip() or source.strip().startswith("-"):  # pip would read nothing, or an option\n'
        f'        print(f"{SOURCE_ENV} is {{source!r}}: not a package pip can install. Unset it (os.environ.pop("\n'
        f'              "\'{SOURCE_ENV}\')) or set it to a wheel\'s path or a git URL, then run this cell again.")\n'
        '    else:\n'
        '        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", source],\n'
        '                              capture_output=True, text=True)\n'
        '        ok, last = done.returncode == 0, ((done.stderr or done.stdout).strip().splitlines() or ["(no message)"])[-1]\n'
        '        if not ok or "gapcourse" in sys.modules:  # (imported before this install: the old copy stays loaded)\n'
        '            print(f"Could not install the course helpers from {source}: {last}\\nInstead: run `make wheel` in a copy "\n'
        '                  "of the course, upload dist/gapcourse-*.whl with the Files panel, and run `!pip install --no-deps "\n'
        '                  "/content/gapcourse-*.whl`; or put your fork\'s URL above." if not ok else "gapcourse was imported "\n'
        '                  "earlier in this runtime: Runtime > Restart session, then run all, to use the copy just installed.")\n'
        '    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "HelpersMissing"]  # a failed run\'s\n'
        '    old = None if ok else importlib.util.find_spec("gapcourse")\n'
        '    if old is not None:\n'
        '        print(f"\\n!!! The cells below would silently use an OLDER copy of gapcourse, from an earlier install in this "\n'
        '              f"runtime ({old.origin}); it may not match this notebook. Fix the install above, then Runtime > "\n'
        '              "Restart session and run all again. !!!")\n'
        '    elif not ok:\n'
        '        class HelpersMissing:  # so that `import gapcourse` below says what is missing\n'
        '            def find_spec(self, name, *_):\n'
        '                if name == "gapcourse":\n'
        '                    raise ModuleNotFoundError("The course helpers (gapcourse) are not installed: the first code "\n'
        '                                              "cell could not install them. Follow its advice, then run all again.")\n'
        '        sys.meta_path.append(HelpersMissing())'
    )


LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": "3.11.7",
}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
