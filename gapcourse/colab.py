"""Colab support, kept in one place: the repository and ref every notebook's install cell and badge point at.

Introduced in notebook 01 (its first code cell). ``tools/sync_notebooks.py`` writes :func:`install_cell` and
:func:`badge_markdown` into every notebook; ``tests/test_notebooks.py`` fails if a notebook drifts from them.
"""

from __future__ import annotations

GITHUB_REPO = "gapcourse/gapcourse"
REF = "main"  # the branch or tag the Colab cells install from and the badges open

INSTALL_CELL_TAGS = ["nbval-skip"]


def badge_url(notebook_path: str) -> str:
    """The 'Open in Colab' link for a notebook path inside the repository (e.g. ``notebooks/01_….ipynb``)."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{REF}/{notebook_path}"


def badge_markdown(notebook_path: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({badge_url(notebook_path)})")


def install_cell() -> str:
    """Source of each notebook's first code cell: installs the helpers on Colab only, never torch or numpy."""
    return (
        "# On Google Colab, install the course helpers (torch, torchvision and numpy are already there and are\n"
        "# not reinstalled: --no-deps). Anywhere else this cell does nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"--no-deps\",\n"
        f"                    \"gapcourse @ git+https://github.com/{GITHUB_REPO}@{REF}\"], check=True)"
    )
