"""Student copies from the solution notebooks. Introduced in docs/instructors.md (in short: the README).

The notebooks in ``notebooks/`` are the solutions and the source of truth. In their code cells, answers sit between
nbgrader's markers::

    ### BEGIN SOLUTION
    return x.mean((2, 3))
    ### END SOLUTION

and checks that only a solution must pass sit between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.
:func:`make_student_copy` replaces each solution with ``raise NotImplementedError()`` (at the same indentation,
under a ``# YOUR CODE HERE`` line, as nbgrader does), drops hidden tests and outputs, and points the Colab badge at
the copy. ``python -m gapcourse student-copies`` writes ``notebooks/student/``; ``tests/test_classroom.py`` fails if
the committed copies differ from what it writes. Learners work in ``notebooks/student/``: a copy there whose exercise
cells are not the handout's (a learner's answers) is skipped, and said, unless ``--force``. Only the course's own
notebooks (:data:`COURSE_NOTEBOOK`: ``notebooks/NN_name.ipynb``) are read and written, never a learner's
``Untitled.ipynb`` or ``01_gap_by_hand-Copy1.ipynb``.

Answer keys: each solution notebook's ``## Questions`` cell is followed by a markdown cell tagged ``answers``
(:data:`ANSWERS_TAG`), a collapsed ``<details>`` block with one numbered answer per question
(:func:`answer_key_problems` says what is wrong with one). ``answers="keep"`` (the default, and the committed copies)
copies it as it is; ``answers="drop"`` leaves out every cell tagged ``answers``. Dropped copies go elsewhere
(``--out DIR``): the committed ``notebooks/student/`` keeps the answers, and the tests compare it with the default.
Since the tag is all that tells the key apart, ``drop`` first checks every solution's key
(:func:`answer_key_problems`) and refuses a copy still holding a ``<details>`` block of **Answers**
(:class:`AnswerKeyError`); and a folder whose copies were made with the other option is not switched without
``force`` (:func:`answers_mode`).

Links: a markdown link relative to ``notebooks/`` (``../docs/RESULTS.md``) is rewritten for the copy's folder
(``../../docs/RESULTS.md`` from ``notebooks/student/``), and for a copy outside the repository it becomes an address
on GitHub (:data:`~gapcourse.classroom.colab.GITHUB_REPO` at :data:`~gapcourse.classroom.colab.REF`, as the Colab
badge): :func:`relinked`. Only copies in ``notebooks/student/`` get a Colab badge: it opens the committed copy.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import nbformat

from . import colab
from ..outputs import OutputError, guard, write_text

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUDENT_DIR = "student"
ANSWERS_TAG = "answers"  # the tag of an answer-key cell (the markdown cell after a notebook's `## Questions` cell)
ANSWERS = ("keep", "drop")  # what a student copy does with the answer-key cells; "keep" is the default
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
# folders of a course checkout that hold its own files: never a place for copies written with --out
COURSE_FOLDERS = ("notebooks", "docs", "gapcourse", "tests", "tools", ".ci", ".git")
COURSE_NOTEBOOK = re.compile(r"\d{2}_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb")  # 01_gap_by_hand.ipynb; not Untitled, -Copy1
PLACEHOLDER = "raise NotImplementedError()"
_BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
STUDENT_NOTE = ("> **Student copy.** The exercises are yours to fill in: replace each `raise NotImplementedError()`, "
                "run the cell, then run the check below it. Unanswered exercises do not stop *Run all*: the "
                "notebook uses the course's reference answer and says so.")


class MarkerError(ValueError):
    """A solution or hidden-test marker without its partner, or in a markdown cell (copied as it is)."""


class AnswerKeyError(ValueError):
    """``answers="drop"`` cannot be sure to leave the answers out: a key without its tag, or not where it belongs."""


# a collapsed answer block, as the answer keys are written: <details> ... <summary><b>Answers</b>
ANSWER_BLOCK = re.compile(r"<details\b.*?<b>\s*Answers\s*</b>", re.S | re.I)


def strip_cell(source: str, where: str = "") -> str:
    """One code cell's source with solutions replaced by a placeholder and hidden tests removed."""
    out: list[str] = []
    inside: str | None = None
    for line in source.splitlines():
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside:
                raise MarkerError(f"{where}: '{marker}' inside an open '{inside}' block")
            inside = marker
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            continue
        if marker in (END_SOLUTION, END_HIDDEN):
            expected = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if inside != expected:
                raise MarkerError(f"{where}: '{marker}' without '{expected}'")
            inside = None
            continue
        if inside is None:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: '{inside}' is never closed")
    return "\n".join(out)


def is_answer_key(cell: nbformat.NotebookNode) -> bool:
    """Whether ``cell`` is an answer-key cell (tagged :data:`ANSWERS_TAG`)."""
    return ANSWERS_TAG in cell.get("metadata", {}).get("tags", [])


def make_student_copy(solution: nbformat.NotebookNode, student_path: str | None, *, answers: str = "keep",
                      label: str = "the student copy", source: str | None = None) -> nbformat.NotebookNode:
    """The student version of a solution notebook that will live at ``student_path`` (repository-relative; None for a
    copy outside the repository). Only a copy in ``notebooks/student/`` gets a Colab badge (it opens that committed
    copy on GitHub; a folder of its own, in or out of the repository, has no address there), and its markdown links
    are rewritten for its folder (:func:`relinked`). ``answers``: ``keep`` the answer-key cells (tagged ``answers``)
    as they are, or ``drop`` them; a dropped copy still holding a ``<details>`` block of **Answers** (a key that
    lost its tag) raises :class:`AnswerKeyError`. A markdown cell holding a solution or hidden-test marker line
    raises :class:`MarkerError`: markdown is copied as it is, so the block would reach the learner (in an answer key
    too). ``source``: the solution notebook's path, which errors name (the file to edit); without it, errors name
    ``student_path`` or ``label``."""
    if answers not in ANSWERS:
        raise ValueError(f"answers={answers!r}: expected one of {', '.join(ANSWERS)}")
    where = source or student_path or label
    nb = nbformat.from_dict(solution)
    folder = posixpath.dirname(student_path) if student_path else None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_cell(cell.source, f"{where} cell {index}")
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            marker = next((line.strip() for line in cell.source.splitlines() if line.strip() in MARKERS), None)
            if marker:
                kind = "answer-key cell" if is_answer_key(cell) else "markdown cell"
                raise MarkerError(f"{where} cell {index}: the {kind} holds '{marker}'. Markdown is copied as it is, "
                                  "so the block would reach the learner: put solutions in a code cell between the "
                                  f"markers, and answers in prose; edit {source or 'the solution notebook'}, then "
                                  "run again.")
            cell.source = relinked(cell.source, folder)
        if answers == "drop" and not is_answer_key(cell) and ANSWER_BLOCK.search(cell.source):
            raise AnswerKeyError(
                f"Refused: {where} cell {index} holds a <details> block of <b>Answers</b> but is not tagged "
                f"'{ANSWERS_TAG}', so --answers drop would hand it out. If it is the answer key, tag it "
                f"'{ANSWERS_TAG}' (Jupyter: View > Cell Toolbar > Tags) and put it right after the questions; if "
                "not, reword it. Then run again: nothing was written.")
    if answers == "drop":
        nb.cells = [cell for cell in nb.cells if not is_answer_key(cell)]
    first = nb.cells[0]
    if student_path is not None and folder == f"notebooks/{STUDENT_DIR}":
        first.source = _BADGE.sub(colab.badge_markdown(student_path), first.source, count=1)
    else:  # a handout of its own (outside or inside the repository) has no address on GitHub to open
        first.source = _BADGE.sub("", first.source, count=1).lstrip("\n")
    first.source = first.source.replace("\n\n", f"\n\n{STUDENT_NOTE}\n\n", 1)
    return nb


# a link target in markdown: [text](target "title"), ![alt](target), <a href="target">, <img src="target">
_TARGET = re.compile(r"(?P<image>!?)\[[^\]]*\]\(\s*<?(?P<md>[^)\s>]+)|(?P<attr>href|src)\s*=\s*[\"'](?P<html>[^\"']+)",
                     re.I)
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)  # fenced blocks and inline code spans
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:|[#/?~]")  # https:, mailto:, an anchor, a rooted path


def moved_link(target: str, folder: str | None, image: bool = False) -> str:
    """A link ``target`` written in a solution notebook (relative to ``notebooks/``) as the copy in ``folder`` needs
    it: relative to ``folder`` (repository-relative), or, for a copy outside the repository (``folder`` None), the
    file's address on GitHub (:data:`~gapcourse.classroom.colab.GITHUB_REPO` at :data:`~gapcourse.classroom.colab.REF`,
    the repository and ref of the Colab badges; ``image``: its raw address, which a page can show). Another course
    notebook stays a link to the copy beside it; an address, an anchor, or a path leaving the repository is kept."""
    if _ABSOLUTE.match(target):
        return target
    path, hash_, anchor = target.partition("#")
    path, query, params = path.partition("?")
    if not path:
        return target
    resolved = posixpath.normpath(posixpath.join("notebooks", path))
    if resolved == ".." or resolved.startswith("../"):
        return target
    tail = f"{query}{params}{hash_}{anchor}"
    if posixpath.dirname(resolved) == "notebooks" and COURSE_NOTEBOOK.fullmatch(posixpath.basename(resolved)):
        return posixpath.basename(resolved) + tail  # its student copy, beside this one
    if folder is not None:
        moved = posixpath.relpath(resolved, folder)
        return moved + ("/" if path.endswith("/") and not moved.endswith("/") else "") + tail
    if image:
        return f"https://raw.githubusercontent.com/{colab.GITHUB_REPO}/{colab.REF}/{resolved}{tail}"
    kind = "tree" if path.endswith("/") or resolved in ("notebooks", ".") else "blob"
    return f"https://github.com/{colab.GITHUB_REPO}/{kind}/{colab.REF}/{'' if resolved == '.' else resolved}{tail}"


def relinked(markdown: str, folder: str | None) -> str:
    """``markdown`` (a solution notebook's cell) with each relative link moved for a copy in ``folder``
    (:func:`moved_link`), code spans and blocks left as they are; the same text for a copy in ``notebooks/``."""
    if folder == "notebooks":
        return markdown

    def move(found: re.Match) -> str:
        group = "md" if found.group("md") is not None else "html"
        image = bool(found.group("image")) or (found.group("attr") or "").lower() == "src"
        start, end = found.span(group)
        text = found.group(0)
        offset = found.start(0)
        return text[:start - offset] + moved_link(found.group(group), folder, image) + text[end - offset:]

    parts = _CODE.split(markdown)  # code spans and fenced blocks (odd places) are code, not links: kept as they are
    return "".join(part if i % 2 else _TARGET.sub(move, part) for i, part in enumerate(parts))


QUESTIONS_HEADING = "## Questions"
_NUMBERED = re.compile(r"^(\d+)\.\s", re.M)  # a top-level numbered item (not indented)


def numbered_items(text: str) -> list[int]:
    """The numbers of the top-level numbered items (``1. ...`` at the start of a line) in ``text``, in order."""
    return [int(n) for n in _NUMBERED.findall(text)]


def answer_key_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What is wrong with the answer key of a solution notebook (empty when nothing): its ``## Questions`` cell must
    be followed directly by one markdown cell tagged ``answers``, a ``<details>`` block whose ``<summary>`` reads
    **Answers**, with the numbered answers 1..n for the questions 1..n; no other cell may carry the tag."""
    questions = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                 and c.source.lstrip().startswith(QUESTIONS_HEADING)]
    keys = [i for i, c in enumerate(nb.cells) if is_answer_key(c)]
    if len(questions) != 1:
        return [f"expected one '{QUESTIONS_HEADING}' cell, found {len(questions)}"]
    q = questions[0]
    asked = numbered_items(nb.cells[q].source)
    problems = []
    if asked != list(range(1, len(asked) + 1)) or not asked:
        problems.append(f"the questions (cell {q}) are numbered {asked}, not 1..n")
    if q + 1 not in keys:
        after = ("the notebook ends there" if q + 1 >= len(nb.cells) else
                 repr((nb.cells[q + 1].source.strip().splitlines() or ["(an empty cell)"])[0][:60]))
        problems.append(f"cell {q + 1}, right after the questions (cell {q}), is not a markdown cell tagged "
                        f"'{ANSWERS_TAG}' ({after}): add the answer key there")
    stray = [i for i in keys if i != q + 1]
    if stray:
        problems.append(f"cell(s) {stray} are tagged '{ANSWERS_TAG}' but do not follow the questions")
    if q + 1 in keys:
        cell = nb.cells[q + 1]
        text = cell.source.strip()
        if cell.cell_type != "markdown":
            problems.append(f"the answer key (cell {q + 1}) is a {cell.cell_type} cell, not markdown")
        if not (text.startswith("<details>") and text.endswith("</details>")
                and re.search(r"<summary><b>Answers</b>", text)):
            problems.append(f"the answer key (cell {q + 1}) is not a <details> block with <summary><b>Answers</b>")
        given = numbered_items(text)
        if given != list(range(1, len(asked) + 1)):
            problems.append(f"the answer key (cell {q + 1}) numbers its answers {given}, but there are "
                            f"{len(asked)} questions (expected {list(range(1, len(asked) + 1))})")
    return problems


def course_notebooks(folder: Path) -> list[Path]:
    """The course's own notebooks in ``folder`` (``NN_name.ipynb``, sorted), never a learner's other notebooks."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if COURSE_NOTEBOOK.fullmatch(p.name) and p.is_file())


def committed_sources(root: Path, rel: str) -> set[str]:
    """The cell sources of ``rel`` as last committed in the git checkout at ``root`` (empty when there is no git,
    no checkout or no committed copy): what the generator wrote there, as opposed to what a learner wrote since."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{rel}"], capture_output=True, text=True,
                              timeout=30)
        if done.returncode != 0:
            return set()
        return {c.source for c in nbformat.reads(done.stdout, as_version=4).cells}
    except Exception:  # noqa: BLE001 - no git, or a committed file that is not a notebook: nothing known
        return set()


def answered_cells(target: Path, handout: nbformat.NotebookNode, committed: set[str] | None = None) -> list[str]:
    """The cells of the student notebook at ``target`` that a learner wrote or changed, by their first line: cells
    (code or notes) that are neither in ``handout`` nor in the ``committed`` copy (:func:`committed_sources`), so an
    answer, an edited exercise or an added note all count; every cell if ``target`` cannot be read as a notebook."""
    known = {c.source for c in handout.cells} | (committed or set())
    try:
        have = nbformat.read(target, as_version=4).cells
    except Exception:  # noqa: BLE001 - a notebook the learner's editor left half-written is still their work
        return ["the whole notebook: it is not a readable notebook"]
    return [(c.source.strip().splitlines() or ["(an empty cell)"])[0] for c in have
            if c.source not in known and c.source.strip()]


def exercise_count(nb: nbformat.NotebookNode) -> int:
    return sum(c.source.count(BEGIN_SOLUTION) for c in nb.cells if c.cell_type == "code")


def write_student_copies(root: str | Path, *, check: bool = False, force: bool = False,
                         skipped: list[tuple[Path, list[str]]] | None = None, answers: str = "keep",
                         out: str | Path | None = None) -> list[Path]:
    """Write ``notebooks/student/NN_name.ipynb`` for every solution notebook ``notebooks/NN_name.ipynb`` under
    ``root`` (or ``out/NN_name.ipynb`` when ``out``, a folder, is given); returns the copies written.

    ``answers``: ``keep`` the answer-key cells (the default: the committed copies keep them) or ``drop`` them
    (:func:`make_student_copy`). ``drop`` first checks every solution's answer key (:func:`answer_key_problems`: a
    key that lost its tag, or moved, would be handed out) and refuses, naming the notebook and the cell
    (:class:`AnswerKeyError`). Dropped copies are refused in a ``notebooks/student/`` whose copies git tracks (the
    tests compare the committed copies with the default, so the repository's check would fail): write them with
    ``out`` elsewhere. A folder whose existing copies were made with the other ``answers`` option
    (:func:`answers_mode`) is refused unless ``force``: ``keep`` over a dropped handout would put the answers back.
    ``check=True`` refuses what the write would refuse, and writes nothing; the return value then lists the copies
    that would change (compared with what ``answers`` generates). A copy holding cells that are neither the new
    handout's nor the committed copy's (:func:`answered_cells`: a learner's answers or notes) is not overwritten
    unless ``force``: it goes into ``skipped`` with those cells. Every copy is read and made, and every output
    checked (:func:`gapcourse.outputs.guard`), before the first is written, so an unreadable solution or a folder in
    a copy's place stops the run with nothing changed (:class:`~gapcourse.outputs.OutputError`, naming the file).
    """
    root = Path(root)
    if answers not in ANSWERS:
        raise ValueError(f"--answers {answers}: expected one of {', '.join(ANSWERS)}")
    solutions = course_notebooks(root / "notebooks")
    if not solutions:
        raise FileNotFoundError(
            f"No solution notebooks (notebooks/NN_*.ipynb) under {root.resolve()}: nothing to "
            f"{'check' if check else 'write'}. Run this in the course repository, or pass --root /path/to/gapcourse.")
    folder = check_out_folder(root, out)
    if answers == "drop" and folder.resolve() == (root / "notebooks" / STUDENT_DIR).resolve():
        tracked = tracked_copies(root)
        if tracked:
            raise OutputError(
                f"Refused: --answers drop would write student copies without the answer keys into "
                f"notebooks/{STUDENT_DIR}/, whose committed copies keep them ({len(tracked)} tracked by git): the "
                "repository's check (tests/test_classroom.py, `student-copies --check`) compares them with the "
                "default and would fail. Write the handout elsewhere, e.g. `python -m gapcourse student-copies "
                "--answers drop --out ~/handout`, and hand out that folder.")
    read = [(path, read_solution(path, root)) for path in solutions]
    if answers == "drop":  # the tag is all that tells the key apart: each key where it belongs, before any copy
        problems = [f"notebooks/{path.name}: {'; '.join(found)}" for path, solution in read
                    for found in [answer_key_problems(solution)] if found]
        if problems:
            raise AnswerKeyError(
                "Refused: --answers drop leaves out the cells tagged 'answers', and these solution notebooks' answer "
                f"keys are not where the tag says: {' | '.join(problems)}. An answer key without its tag would be "
                "handed out: fix the solution notebook (the key is the markdown cell right after '## Questions', "
                "tagged 'answers'; Jupyter: View > Cell Toolbar > Tags) and run again. Nothing was written.")
    plan: list[tuple[Path, str]] = []  # every copy read and made before the first is written (no half-made set)
    modes: dict[str, list[str]] = {mode: [] for mode in ANSWERS}  # the existing copies, by the option they show
    for solution_path, solution in read:
        target = folder / solution_path.name
        rel = repo_path(target, root)  # where the copy lives in the repository (its Colab badge), if it does
        text = nbformat.writes(make_student_copy(solution, rel, answers=answers, label=str(target),
                                                 source=f"notebooks/{solution_path.name}")) + "\n"
        if target.exists() and not target.is_file():
            state = "a folder" if target.is_dir() else "not a regular file"
            raise OutputError(f"{shown(target, root)} is {state}, not a notebook, where `student-copies` writes the "
                              f"student copy of notebooks/{solution_path.name}: move it away and run again.")
        mode = answers_mode(target, solution)
        if mode is not None:
            modes[mode].append(target.name)
        if current_text(target) != text:
            keys = {c.source for c in solution.cells if is_answer_key(c)}  # the generator's own, even when dropped
            learner = [] if check or force or not target.exists() else answered_cells(
                target, nbformat.reads(text, 4), (committed_sources(root, rel) if rel else set()) | keys)
            if learner:
                if skipped is not None:
                    skipped.append((target, learner))
                continue
            plan.append((target, text))
    other = next(mode for mode in ANSWERS if mode != answers)
    if modes[other] and not modes[answers] and not force:
        place = f"notebooks/{STUDENT_DIR}/" if out is None else f"--out {out}"
        again = (f"python -m gapcourse student-copies{' --answers drop' if other == 'drop' else ''}"
                 f"{'' if out is None else f' --out {out}'}{' --check' if check else ''}")
        effect = ("put the answer keys back into them" if answers == "keep" else "take the answer keys out of them")
        shows = "have no answer key, though their solutions have one" if other == "drop" else "hold the answer key"
        raise OutputError(
            f"Refused: the copies in {place} were made with --answers {other} ({', '.join(modes[other])} "
            f"{shows}), and --answers {answers}{' (the default)' if answers == 'keep' else ''} would {effect}. To "
            f"update them as they are, run `{again}`; to switch them to --answers "
            f"{answers} on purpose, add --force. Nothing was written.")
    if not check:  # through the output guard: never a solution notebook, nor a committed file not its own
        fixed_by = "student-copies" if out is None else f"student-copies --out {out}"
        targets = [(guard(target, writer="student-copies", kind="notebook", what="student copy", inputs=solutions,
                          fixed_by=fixed_by), text) for target, text in plan]
        for number, (target, text) in enumerate(targets):
            try:
                write_text(target, text)
            except OSError as err:
                done = ", ".join(shown(t, root) for t, _ in targets[:number]) or "none"
                raise OutputError(f"Could not write {shown(target, root)} ({err.strerror or err}); the copies "
                                  f"written before it: {done}. Fix the place (space, permissions) and run again: "
                                  "the copies already written are up to date.") from None
    return [target for target, _ in plan]


def answers_mode(target: Path, solution: nbformat.NotebookNode) -> str | None:
    """The ``answers`` option the existing copy at ``target`` was made with, as far as it shows: ``keep`` when it
    holds an answer key (a cell tagged ``answers``, or a ``<details>`` block of **Answers**), ``drop`` when it has
    none though its ``solution`` has one; None when it cannot tell (no copy, not a notebook, no key in the
    solution)."""
    if not any(map(is_answer_key, solution.cells)) or not target.is_file():
        return None
    try:
        cells = nbformat.read(target, as_version=4).cells
    except Exception:  # noqa: BLE001 - a learner's half-written notebook says nothing about the option
        return None
    held = any(is_answer_key(c) or (c.cell_type == "markdown" and ANSWER_BLOCK.search(c.source)) for c in cells)
    return "keep" if held else "drop"


def check_out_folder(root: Path, out: str | Path | None) -> Path:
    """The folder the copies go to: ``root/notebooks/student`` without ``out``; else ``out`` (absolute), refused
    (:class:`~gapcourse.outputs.OutputError`) when it is a file, or lies among the course's own files
    (:data:`COURSE_FOLDERS` of ``root``, other than ``notebooks/student``), where copies would mix with the
    solutions, the pages or the code."""
    student = root / "notebooks" / STUDENT_DIR
    if out is None:
        return student
    if not str(out).strip():
        raise OutputError("--out needs a folder, e.g. --out ~/handout.")
    folder = Path(out).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--out {out} is a file, not a folder: the student copies are written into a folder, one "
                          "notebook each. Give a folder, e.g. --out ~/handout.")
    if folder.resolve() == root.resolve():
        raise OutputError(f"--out {out} is the course's own top folder, where the copies would lie among README.md "
                          "and pyproject.toml. Give a folder of their own outside the repository, e.g. "
                          "--out ~/handout.")
    if folder.resolve() != student.resolve():
        inside = next((f for f in COURSE_FOLDERS if folder.resolve().is_relative_to(root.resolve() / f)), None)
        if inside is not None:
            what = "the solution notebooks" if inside == "notebooks" else f"the course's own {inside}/ files"
            raise OutputError(f"--out {out} is inside {inside}/, with {what}, where `student-copies` writes only "
                              f"notebooks/{STUDENT_DIR}/. Give a folder outside the course's own folders, e.g. "
                              "--out ~/handout.")
    return folder


def tracked_copies(root: Path) -> list[str]:
    """The student copies git tracks in ``root/notebooks/student/`` (empty without git or a checkout)."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(root), "ls-files", "--", f"notebooks/{STUDENT_DIR}"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in done.stdout.splitlines() if line.endswith(".ipynb")] if done.returncode == 0 else []


def repo_path(path: Path, root: Path) -> str | None:
    """``path`` relative to the repository ``root`` (POSIX), or None when it lies outside it. A link is not followed:
    a copy's place is where the generator writes it."""
    try:
        return (path.parent.resolve() / path.name).relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def shown(path: Path, root: Path) -> str:
    """``path`` as messages show it: relative to ``root`` inside the repository, else in full."""
    return repo_path(path, root) or str(path)


def read_solution(path: Path, root: Path) -> nbformat.NotebookNode:
    """The solution notebook ``path``; :class:`~gapcourse.outputs.OutputError` naming it when it cannot be read as a
    notebook (not JSON, not a notebook, unreadable)."""
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    try:
        return nbformat.read(path, as_version=4)
    except nbformat.reader.NotJSONError:
        reason = "it is not JSON"
    except Exception as err:  # noqa: BLE001 - unreadable, not UTF-8, not a notebook (nbformat's own errors)
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}"
    raise OutputError(f"The solution notebook {rel} cannot be read as a notebook ({reason}), so no student copy was "
                      f"written: restore it with `git checkout -- {rel}` (or repair it in Jupyter) and run again.")


def current_text(path: Path) -> str | None:
    """The text of the student copy at ``path``; None when there is none or it cannot be read as text (it then
    differs from any copy, and :func:`answered_cells` keeps it as a learner's unreadable work)."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
