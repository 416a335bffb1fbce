"""Write the Colab badge and install cell from gapcourse/classroom/colab.py into every notebook, and strip outputs.

    python tools/sync_notebooks.py          # rewrite in place
    python tools/sync_notebooks.py --check  # exit 1 if any notebook is out of step (what the tests check)
    python tools/sync_notebooks.py --repo OWNER/NAME --ref TAG   # publish: point everything at your copy

``--repo``/``--ref`` rewrite ``GITHUB_REPO`` and ``REF`` in gapcourse/classroom/colab.py, then every notebook's badge and
install cell, and the Colab and install links in README.md. Commit, push, and tag TAG. Every file is read and
rewritten in memory first: a notebook that cannot be read (or has no code cell for the install cell) stops the run
before anything is written. Only the course's own notebooks are touched (``notebooks/NN_name.ipynb`` and their
student copies), never a learner's ``Untitled.ipynb``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gapcourse.classroom import colab  # noqa: E402
from gapcourse.classroom.copies import STUDENT_DIR, course_notebooks  # noqa: E402
from gapcourse.outputs import guard, write_text  # noqa: E402

BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*")
# GitHub's rules: an owner is 1-39 letters, digits and single hyphens, with no hyphen first or last
OWNER = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9])*")
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
# what `git check-ref-format` allows, kept to characters that need no quoting in a URL
REF_CHARS = re.compile(r"[A-Za-z0-9._/-]{1,100}")


def repo_problem(repo: str) -> str | None:
    """Why ``repo`` is not a GitHub OWNER/NAME (None if it is one), in words."""
    owner, slash, name = repo.partition("/")
    if not slash or "/" in name:
        return "expected OWNER/NAME as on GitHub (e.g. alice/gapcourse), one '/'"
    if not OWNER.fullmatch(owner) or len(owner) > 39:
        return (f"the owner {owner!r} is not a GitHub user or organisation name: 1 to 39 letters, digits and single "
                "hyphens, not starting or ending with a hyphen")
    if not NAME.fullmatch(name):
        return f"the repository name {name!r} may hold only letters, digits, '.', '-' and '_' (at most 100)"
    if name.startswith("."):
        return f"the repository name {name!r} starts with '.' ('.' and '..' are not repositories; use a plain name)"
    if name.lower().endswith(".git"):
        return "give the repository's name without .git (e.g. alice/gapcourse)"
    return None


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not a branch or tag name git accepts (``git check-ref-format --branch``), or None."""
    if not REF_CHARS.fullmatch(ref):
        return ("expected a branch or tag name (e.g. main or v1.0) of letters, digits, '.', '-', '_' and '/', at most "
                "100 characters")
    if ref.startswith("-"):
        return "a branch or tag name cannot start with '-' (git would read it as an option)"
    parts = ref.split("/")
    for rule, broken in (("have '..' in it", ".." in ref), ("start or end with '/', or have '//'", "" in parts),
                         ("end with '.'", ref.endswith(".")),
                         ("have a part starting with '.'", any(p.startswith(".") for p in parts)),
                         ("have a part ending in '.lock'", any(p.endswith(".lock") for p in parts)),
                         ("be '@'", ref == "@")):
        if broken:
            return f"expected a branch or tag name (e.g. main or v1.0): git's ref names cannot {rule}"
    return None


def synced(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` with the badge and install cell from gapcourse/classroom/colab.py, outputs stripped. Raises
    ValueError (naming the file) for a notebook that cannot be read or has no code cell to hold the install cell."""
    rel = path.relative_to(ROOT).as_posix()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 - JSON or notebook-format errors of every kind
        raise ValueError(f"{rel} is not a readable notebook ({type(err).__name__}: {str(err)[:160]}); restore it "
                         f"(git checkout -- {rel}) or fix it, then run again. Nothing was written.") from None
    install = next((c for c in nb.cells if c.cell_type == "code"), None)
    if install is None:
        raise ValueError(f"{rel} has no code cell: a course notebook's first code cell is the Colab install cell. Add "
                         "an empty code cell after the title, then run again. Nothing was written.")
    first = nb.cells[0]
    first.source = colab.badge_markdown(rel) + "\n\n" + BADGE.sub("", first.source).lstrip("\n")
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


def publish(repo: str, ref: str) -> list[tuple[Path, str, str, str]]:
    """Point the course at ``repo`` (OWNER/NAME on GitHub) and ``ref``: the new gapcourse/classroom/colab.py and README.md
    (Colab badge, Colab links and install URL), as (file, new text, kind, what) for each file that changes; nothing
    is written here (the caller writes once every file is known). Notebooks are rewritten by the caller."""
    for option, value, problem in (("--repo", repo, repo_problem(repo)), ("--ref", ref, ref_problem(ref))):
        if problem:
            raise ValueError(f"{option} {value!r}: {problem}")
    old_repo, old_ref = colab.GITHUB_REPO, colab.REF
    changed = []
    module = ROOT / "gapcourse" / "classroom" / "colab.py"
    text = module.read_text()
    new = re.sub(r'^GITHUB_REPO = "[^"]*"', f'GITHUB_REPO = "{repo}"', text, count=1, flags=re.M)
    new = re.sub(r'^REF = "[^"]*"', f'REF = "{ref}"', new, count=1, flags=re.M)
    if f'GITHUB_REPO = "{repo}"' not in new or f'REF = "{ref}"' not in new:
        raise ValueError(f"{module}: could not find the GITHUB_REPO and REF lines to rewrite")
    if new != text:
        changed.append((module, new, "source", "colab module"))
    colab.GITHUB_REPO, colab.REF = repo, ref  # the functions below read these names when called
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = text.replace(f"colab.research.google.com/github/{old_repo}/blob/{old_ref}/",
                       f"colab.research.google.com/github/{repo}/blob/{ref}/")
    new = new.replace(f"git+https://github.com/{old_repo}@{old_ref}", f"git+https://github.com/{repo}@{ref}")
    new = new.replace(f"https://github.com/{old_repo}/blob/{old_ref}/", f"https://github.com/{repo}/blob/{ref}/")
    if new != text:
        changed.append((readme, new, "markdown", "README"))
    return changed


def learner_work(path: Path) -> list[str]:
    """What rewriting the student copy ``path`` would destroy of a learner's: the outputs of the cells they ran (this
    tool changes only its own cells' sources, the badge and the install cell, and strips outputs)."""
    ran = sum(bool(c.get("outputs")) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    return [f"outputs of {ran} cell(s)"] if ran else []


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
    plan: list[tuple[Path, str, str, str | None]] = []  # (file, new text, kind, what): written once every one is known
    skipped: list[Path] = []
    try:
        if args.repo:
            plan += publish(args.repo, args.ref or colab.REF)
        # the course's own notebooks only: a learner's Untitled.ipynb or 01_…-Copy1.ipynb is not ours to rewrite
        for path in [*course_notebooks(ROOT / "notebooks"), *course_notebooks(ROOT / "notebooks" / STUDENT_DIR)]:
            new = nbformat.writes(synced(path)) + "\n"
            if path.read_text() != new:
                rel = str(path.relative_to(ROOT))
                learner = [] if path.parent.name != STUDENT_DIR else learner_work(path)
                if learner and not args.check:  # a learner's copy: their cells and outputs are theirs, not ours
                    print(f"skipped: {rel} holds a learner's work ({'; '.join(learner[:3])}); move it away or clear "
                          "its outputs, then run again", file=sys.stderr)
                    skipped.append(path)
                    continue
                plan.append((path, new, "notebook", None))
        if not args.check:  # every output checked before the first is written: no half-published tree
            targets = [(guard(path, writer="sync-notebooks", kind=kind, what=what), text)
                       for path, text, kind, what in plan]
            for target, text in targets:
                write_text(target, text)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stale = [path for path, *_ in plan]
    for p in stale:
        print(("out of step: " if args.check else "updated: ") + str(p.relative_to(ROOT)))
    return 1 if (args.check and stale) or skipped else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
