"""Write the Colab badge and install cell from gapcourse/colab.py into every notebook, and strip outputs.

    python tools/sync_notebooks.py          # rewrite in place
    python tools/sync_notebooks.py --check  # exit 1 if any notebook is out of step (what the tests check)
    python tools/sync_notebooks.py --repo OWNER/NAME --ref TAG   # publish: point everything at your copy

``--repo``/``--ref`` rewrite ``GITHUB_REPO`` and ``REF`` in gapcourse/colab.py, then every notebook's badge and
install cell, and the Colab and install links in README.md. Commit, push, and tag TAG.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gapcourse import colab  # noqa: E402

BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*")
REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# a git ref as `git check-ref-format` allows it, kept to characters that need no quoting in a URL
REF = re.compile(r"(?!.*\.\.)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/-]{1,100}")


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


def publish(repo: str, ref: str) -> list[Path]:
    """Point the course at ``repo`` (OWNER/NAME on GitHub) and ``ref``: rewrite gapcourse/colab.py and README.md's
    Colab badge, Colab links and install URL. Returns the files changed (notebooks are rewritten by the caller)."""
    if not REPO.fullmatch(repo) or repo.endswith(".git"):
        raise ValueError(f"--repo {repo!r}: expected OWNER/NAME as on GitHub, without .git (e.g. alice/gapcourse)")
    if not REF.fullmatch(ref):
        raise ValueError(f"--ref {ref!r}: expected a branch or tag name (e.g. main or v1.0)")
    old_repo, old_ref = colab.GITHUB_REPO, colab.REF
    changed = []
    module = ROOT / "gapcourse" / "colab.py"
    text = module.read_text()
    new = re.sub(r'^GITHUB_REPO = "[^"]*"', f'GITHUB_REPO = "{repo}"', text, count=1, flags=re.M)
    new = re.sub(r'^REF = "[^"]*"', f'REF = "{ref}"', new, count=1, flags=re.M)
    if f'GITHUB_REPO = "{repo}"' not in new or f'REF = "{ref}"' not in new:
        raise ValueError(f"{module}: could not find the GITHUB_REPO and REF lines to rewrite")
    if new != text:
        module.write_text(new)
        changed.append(module)
    colab.GITHUB_REPO, colab.REF = repo, ref  # the functions below read these names when called
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = text.replace(f"colab.research.google.com/github/{old_repo}/blob/{old_ref}/",
                       f"colab.research.google.com/github/{repo}/blob/{ref}/")
    new = new.replace(f"git+https://github.com/{old_repo}@{old_ref}", f"git+https://github.com/{repo}@{ref}")
    new = new.replace(f"https://github.com/{old_repo}/blob/{old_ref}/", f"https://github.com/{repo}/blob/{ref}/")
    if new != text:
        readme.write_text(new)
        changed.append(readme)
    return changed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python tools/sync_notebooks.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is out of step")
    parser.add_argument("--repo", help="publish: the GitHub repository OWNER/NAME the badges and install cells use")
    parser.add_argument("--ref", help="publish: the branch or tag they use (with --repo; default: the current one)")
    args = parser.parse_args(argv)
    if args.check and (args.repo or args.ref):
        parser.error("--check writes nothing; run --repo/--ref without it")
    for option, value, example in (("--repo", args.repo, "give OWNER/NAME as on GitHub (e.g. alice/gapcourse)"),
                                   ("--ref", args.ref, "give a branch or tag name (e.g. main or v1.0), or leave it out")):
        if value is not None and not value.strip():
            print(f"error: {option} is empty: {example}", file=sys.stderr)
            return 2
    if args.ref and not args.repo:
        parser.error("--ref needs --repo (the repository it belongs to)")
    stale = []
    if args.repo:
        try:
            stale += publish(args.repo, args.ref or colab.REF)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        new = nbformat.writes(synced(path)) + "\n"
        if path.read_text() != new:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    for p in stale:
        print(("out of step: " if args.check else "updated: ") + str(p.relative_to(ROOT)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
