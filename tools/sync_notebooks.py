"""Write the Colab badge and install cell from gapcourse/colab.py into every notebook, and strip outputs.

    python tools/sync_notebooks.py          # rewrite in place
    python tools/sync_notebooks.py --check  # exit 1 if any notebook is out of step (what the tests check)

Change the repository or ref in gapcourse/colab.py, run this, commit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gapcourse import colab  # noqa: E402

BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*")


def synced(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    rel = path.relative_to(ROOT).as_posix()
    first = nb.cells[0]
    first.source = colab.badge_markdown(rel) + "\n\n" + BADGE.sub("", first.source).lstrip("\n")
    install = next(c for c in nb.cells if c.cell_type == "code")
    install.source = colab.install_cell()
    install.metadata["tags"] = sorted(set(install.metadata.get("tags", [])) | set(colab.INSTALL_CELL_TAGS))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    # Complete kernel and language metadata, as Jupyter writes it, so opening a notebook does not mark it modified.
    nb.metadata["kernelspec"] = dict(colab.KERNELSPEC)
    nb.metadata["language_info"] = dict(colab.LANGUAGE_INFO)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        new = nbformat.writes(synced(path)) + "\n"
        if path.read_text() != new:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(new)
    for p in stale:
        print(("out of step: " if check else "updated: ") + str(p))
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
