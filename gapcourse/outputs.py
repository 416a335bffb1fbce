"""The one output guard: every command and tool that writes a file asks here first, before its work. Shared by the
command line, the studies, the classroom tools and tools/; no notebook uses it.

Used by ``train --output``, ``bench --output``/``--record``, ``compare-heads`` (and ``--export-weights``),
``ablate``, ``budget-table``, ``budget-recipe``, ``grade --csv``, ``student-copies``, ``tools/sync_notebooks.py`` and
``tools/readme_tables.py``. :func:`guard` refuses, with one sentence that says what was expected and what to do:

* a **committed file of another writer's role**: the shipped weights (``gapcourse/weights/``), the results
  (``gapcourse/results/``), the notebooks, README.md, the pages in ``docs/`` and the course's source. Each writer
  owns the files of :data:`OWNERS` only, and a writer of measurements (results, weights) only in a full-profile run on
  the real CIFAR-10 (:func:`gapcourse.outputs.committed_refusal` says why not);
* an output that is **also an input** (e.g. a submission that a shell glob put after ``--csv``);
* a file of **another kind**: a name whose suffix is another kind's (``train --output x.json``), or an existing file
  whose content is another kind's (a checkpoint, a JSON file, a notebook, binary data such as a program or an image)
  or, for a command that says what its own output looks like (``bench``'s table, ``grade``'s CSV), any file that is
  not its own earlier output; a symbolic link is judged by its target;
* a **folder**, or a place that **cannot be written** (checked by writing a probe file, before the work).

After long work, :func:`write_or_keep` writes the result atomically (:func:`gapcourse.atomic.replacing`) and, when
that fails, keeps it in a file beside (or in the cache folder, or the temporary folder) and says where.
:func:`locked` serialises a read-add-write of one file by several processes (POSIX ``flock``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
import json
import os
import stat
import tempfile
import time

from .atomic import replacing

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


class OutputError(ValueError):
    """An output that may not or cannot be written where asked; the message says why and what to do."""


# What each writer may change among the committed files (paths relative to the repository root; a trailing "/" is a
# whole folder). Everything else that is committed is refused to it.
OWNERS: dict[str, tuple[str, ...]] = {
    "train": (),
    "grade": (),
    "bench": ("gapcourse/results/bench_cpu.json", "gapcourse/results/bench_cuda.json",
              "gapcourse/results/bench_mps.json"),
    "compare-heads": ("gapcourse/results/heads.json",),
    "export-weights": ("gapcourse/weights/",),
    "ablate": ("gapcourse/results/recipe_ablation.json", "gapcourse/results/gpu_preset_study.json",
               "gapcourse/results/cpu_cutout_check.json"),
    "budget-table": ("gapcourse/results/budget_table.json",),
    "budget-recipe": ("gapcourse/results/budget_recipe.json",),
    # runlog (make course) writes build/html/ only; a maintainer copies its course_times.json into
    # gapcourse/results/ by hand after a run on a quiet machine
    "course-times": (),
    "student-copies": ("notebooks/student/",),
    "sync-notebooks": ("notebooks/", "README.md", "gapcourse/classroom/colab.py"),
    "readme-tables": ("docs/RESULTS.md",),  # the generated tables (tools/readme_tables.py)
    # the generated **Time.** line of each solution notebook's header (tools/notebook_times.py)
    "notebook-times": ("notebooks/[0-9][0-9]_*.ipynb",),
}
MEASURED_ROLES = ("results", "weights")  # written only by a full-profile run on the real CIFAR-10

# The kinds of file the course writes, by the suffixes their names may have. A name with another kind's suffix is
# refused; a name with no known suffix is accepted (e.g. --csv /dev/stdout, --output table).
KINDS: dict[str, tuple[str, ...]] = {
    "checkpoint": (".pt", ".pth"),
    "results": (".json",),
    "markdown": (".md", ".markdown", ".txt"),
    "csv": (".csv", ".tsv", ".txt"),
    "notebook": (".ipynb",),
    "source": (".py",),
}
_KIND_NAMES = {"checkpoint": "checkpoint (torch file)", "results": "JSON results file", "markdown": "Markdown table",
               "csv": "CSV table", "notebook": "notebook", "source": "Python source file", "text": "text file",
               "binary": "binary file (a program, an image, an archive...)"}


# The checkout's own top-level files, protected even where git cannot say what it tracks.
PROJECT_FILES = ("LICENSE", "Makefile", "pyproject.toml", "environment.yml", "conftest.py", ".gitignore")


def _is_checkout() -> bool:
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()


def committed_role(path: str | os.PathLike) -> str | None:
    """The role of ``path`` among the course's committed files: ``weights``, ``results``, ``notebooks``, ``readme``,
    ``docs`` (every file under ``docs/``, committed or new), ``source``, ``git metadata``, ``project file`` (the
    checkout's other tracked files), or None when it is not one of them (anything outside the course's own folders)."""
    where = Path(path).expanduser().resolve()
    if where.is_relative_to(PACKAGE_DIR / "weights"):
        return "weights"
    if where.is_relative_to(PACKAGE_DIR / "results"):
        return "results"
    if where.is_relative_to(PACKAGE_DIR):
        return "source"
    if _is_checkout():
        if where.is_relative_to(REPO_ROOT / "notebooks"):
            return "notebooks"
        if where == REPO_ROOT / "README.md":
            return "readme"
        if where.is_relative_to(REPO_ROOT / "docs"):
            return "docs"
        if any(where.is_relative_to(REPO_ROOT / d) for d in ("tools", "tests", ".ci")):
            return "source"
        if where.is_relative_to(REPO_ROOT / ".git"):
            return "git metadata"
        known = where.parent == REPO_ROOT and (where.name in PROJECT_FILES or where.name.startswith("constraints"))
        if where.is_relative_to(REPO_ROOT) and (known or _tracked(where)):
            return "project file"  # LICENSE, Makefile, pyproject.toml, constraints*.txt, ... and any tracked file
    return None


def _tracked(where: Path) -> bool:
    """Whether git tracks ``where`` in the checkout (False without git)."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "--error-unmatch", str(where)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def owns(writer: str, path: str | os.PathLike) -> bool:
    """Whether ``writer`` (a key of :data:`OWNERS`) may change the committed file ``path``: an entry names a file, a
    folder (ending in ``/``), or a pattern of file names (``*``, ``[0-9]``: :func:`fnmatch.fnmatch`)."""
    from fnmatch import fnmatch

    where = Path(path).expanduser().resolve()
    for owned in OWNERS[writer]:
        target = REPO_ROOT / owned.rstrip("/")
        if where == target or (owned.endswith("/") and where.is_relative_to(target)):
            return True
        if any(c in owned for c in "*[") and where.is_relative_to(REPO_ROOT) \
                and fnmatch(where.relative_to(REPO_ROOT).as_posix(), owned):
            return True
    return False


def owner_of(path: str | os.PathLike) -> str | None:
    """The command that writes the committed file ``path`` (for the error message), if any."""
    broad = ("sync-notebooks", "notebook-times")  # each rewrites a few lines of files that others own or write
    return next((w for w in OWNERS if w not in broad and owns(w, path)), None) or \
        next((w for w in broad if owns(w, path)), None)


SNIFF_BYTES = 64 * 1024  # how much of an existing file is read to judge what it holds


def _looks_binary(head: bytes) -> bool:
    """Whether the start of a file is binary data: a NUL byte, or bytes that are not UTF-8 (an incomplete character
    cut at the end of ``head`` does not count)."""
    import codecs

    if b"\0" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def content_kind(path: Path) -> str | None:
    """What an existing regular file (or the target of a link to one) holds, judged by its content: ``checkpoint`` (a
    zip, as ``torch.save`` writes), ``binary`` (a NUL byte or bytes that are not UTF-8 in its first
    :data:`SNIFF_BYTES`: a program, an image...), ``notebook``, ``results`` (a JSON object), ``text``; None for an
    empty or unreadable file or a non-file."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
        if head.startswith(b"PK\x03\x04"):
            return "checkpoint"
        if _looks_binary(head):
            return "binary"
        if head.lstrip()[:1] == b"{" and path.stat().st_size < 256 * 2**20:
            try:
                payload = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                return "text"
            if isinstance(payload, dict) and "cells" in payload and "nbformat" in payload:
                return "notebook"
            return "results" if isinstance(payload, dict) else "text"
    except OSError:
        return None
    return "text"


def _example(path: Path, kind: str) -> str:
    return str(Path(tempfile.gettempdir()) / (path.stem or "output")) + KINDS.get(kind, ("",))[0]


def instead(path: str | os.PathLike, *, option: str = "--output", fixed_by: str | None = None) -> str:
    """The end of a refusal of an existing ``path``: what to do instead, as the writer allows. A file an option names:
    move it away or give the option another file; a file whose place no option chooses (``fixed_by``: the flag that
    writes it, e.g. ``--record``, or the command, e.g. ``student-copies``): move that file away."""
    if fixed_by is None:
        return f"move it away or pass {option} another file"
    if fixed_by.startswith("-"):
        return f"no option chooses where {fixed_by} writes, so move {path} away, or run without {fixed_by}"
    return f"`{fixed_by}` always writes there, so move {path} away and run again"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _text_head(path: Path) -> str:
    """The first :data:`SNIFF_BYTES` of a text file, decoded (an incomplete last character dropped)."""
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES).decode("utf-8", errors="ignore")


def guard(path: str | os.PathLike, *, writer: str | None, kind: str, what: str | None = None,
          inputs: Iterable[str | os.PathLike] = (), input_hint: str = "", data: dict[str, Any] | None = None,
          option: str = "--output", fixed_by: str | None = None, own: Callable[[str], bool] | None = None) -> Path:
    """Check, before any work, that ``writer`` may write ``what`` (a file of ``kind``, see :data:`KINDS`) at
    ``path``; returns the path with ``~`` expanded. ``inputs``: files the command reads (never overwritten;
    ``input_hint`` is added to that refusal). ``data`` (:func:`gapcourse.studies.provenance.data_record`): the run's data,
    required to write committed measurements. ``writer=None``: only the data decides (the library's own callers).
    ``option``: the option that names ``path`` (refusals say to give it another file); ``fixed_by``: for a file
    whose place no option chooses, the flag that writes it (``--record``, ``--export-weights``) or the command
    (``student-copies``): refusals say to move the file away or drop the flag instead. ``own``: for a text output,
    whether the start of an existing file (:data:`SNIFF_BYTES`) is this command's own earlier output (``bench``'s
    table, ``grade``'s CSV); any other existing file is refused. A symbolic link is judged by its target (which is
    what gets written). Raises :class:`OutputError`."""
    if not str(path).strip():  # (before Path(), which reads "" as ".")
        raise OutputError(f"{option} needs a file name, e.g. {option} {_example(Path('output'), kind)}.")
    path, inputs = Path(path).expanduser(), list(inputs)
    what = what or _KIND_NAMES[kind]
    where = path.resolve() if path.is_symlink() else path  # a link's target is what gets written
    named = (f"{option} {path}" if fixed_by is None else str(path)) + (f" (a link to {where})" if where != path
                                                                       else "")
    move = _capital(instead(path, option=option, fixed_by=fixed_by)) + (f", e.g. {_example(path, kind)}"
                                                                         if fixed_by is None else "")
    if fixed_by is None:
        another = f"Give {option} another file, e.g. {_example(path, kind)}"
        elsewhere = f"Give {option} a file elsewhere, e.g. {_example(path, kind)}"
    else:
        another = elsewhere = _capital(instead(path, fixed_by=fixed_by))
    if path.is_dir():
        raise OutputError(f"{named} is a folder; the {what} must be a file. " + (
            f"Give a file name inside it, e.g. {path / ('output' + KINDS.get(kind, ('',))[0])}." if fixed_by is None
            else f"{another}."))
    for source in inputs:
        source = Path(source).expanduser()
        if path.resolve() == source.resolve() or (path.exists() and source.exists() and path.samefile(source)):
            raise OutputError(f"{named} is also one of this command's inputs: writing the {what} there would "
                              f"destroy it. {input_hint}{another}.")
    role = committed_role(path)
    if role is not None:
        allowed = writer is None or owns(writer, path)
        if not allowed:
            raise OutputError(_committed_message(path, role, writer, elsewhere))
        if role in MEASURED_ROLES and data is not None:  # (without the data: checked again once it is loaded)

            why = committed_refusal(path if role == "results" else PACKAGE_DIR / "weights" / "manifest.json", data)
            if why and fixed_by is not None and fixed_by.startswith("-"):
                raise OutputError(f"Refused: {why}: {fixed_by} works only in a full-profile run on the real "
                                  f"CIFAR-10, so drop {fixed_by} (the rest of the command runs without it).")
            if why:
                raise OutputError(f"Refused: {why}. Pass {option} a file elsewhere (e.g. in /tmp); committed results "
                                  "are only regenerated by the full profile on the real CIFAR-10.")
    for name in dict.fromkeys((path, where)):  # the link's name and its target's: each must be this kind's
        suffix = name.suffix.lower()
        other = next((k for k, sfx in KINDS.items() if suffix in sfx and kind in KINDS and suffix not in KINDS[kind]),
                     None)
        if other is not None:
            hint = input_hint if any(Path(i).suffix.lower() == suffix for i in inputs) else ""
            rename = (f"Give a name ending in {KINDS[kind][0]}, e.g. {_example(path, kind)}" if fixed_by is None
                      else another)
            raise OutputError(f"{named} is named as a {_KIND_NAMES[other]} ({suffix}), but this writes a "
                              f"{what}, so it is neither read nor written. {hint}{rename}.")
    if kind in ("checkpoint", "results") and path.exists() and not path.is_file():
        raise OutputError(f"{named} is not a regular file (a device, a pipe or a socket): a {what} is "
                          "written to a file and replaced atomically, which would replace the device itself. "
                          f"{another}.")
    _refuse_cache(path, named, elsewhere)
    found = content_kind(path)
    expected = {"markdown": "text", "csv": "text", "source": "text"}.get(kind, kind)
    # (a results file that is not a JSON object: the results reader, provenance.check_output, says what is wrong)
    if found is not None and found != expected and not (kind == "results" and found == "text"):
        raise OutputError(f"{named} already holds a {_KIND_NAMES[found]}, not a {what}: it is not this "
                          f"command's file, so it is not replaced. {move}.")
    if found == "text" and own is not None and not own(_text_head(path)):
        mine = f"`{writer}`'s" if writer else "this command's"
        raise OutputError(f"{named} already holds other text, not a {what} as {mine} earlier run wrote it: it is not "
                          f"this command's file, so it is not replaced. {move}.")
    _check_writable(path, where, what, option if fixed_by is None else None)
    return path


def _committed_message(path: Path, role: str, writer: str | None, elsewhere: str) -> str:
    """Why ``writer`` may not write ``path``, one of the course's own files (``role``: :func:`committed_role`), and
    what to do: a committed file (how to restore it, if git tracks it), a new file in one of the course's folders, or
    git's own data."""
    where = path.expanduser().resolve()
    if role == "git metadata":
        return (f"Refused: {path} is inside .git, git's own data (the repository's history and settings), which no "
                f"command of the course writes. {elsewhere}.")
    if not where.exists():  # e.g. bench --output docs/new.md: nothing to restore
        folder = next((f for f in ("docs", "notebooks", "tools", "tests", ".ci", "gapcourse")
                       if where.is_relative_to(REPO_ROOT / f)), None)
        place = f"the course's own {folder}/ folder" if folder else "the course's own files"
        return f"Refused: {path} would be a new file in {place}, where `{writer}` may not write. {elsewhere}."
    owner = owner_of(path)
    whose = f"`{owner}` writes it" if owner else "no command writes it"
    restore = ""
    if where.is_relative_to(REPO_ROOT.resolve()) and _tracked(where):
        restore = f"; to restore it: git checkout -- {where.relative_to(REPO_ROOT.resolve())}"
    return (f"Refused: {path} is one of the course's committed files ({role}; {whose}), and `{writer}` may not "
            f"change it. {elsewhere}{restore}.")


def _refuse_cache(path: Path, named: str, elsewhere: str) -> None:
    """The course's cache folder is not an output: neither the folder itself (a file there would break every later
    command) nor its decoded data (a command's input)."""
    from .config import cache_location

    cache = cache_location()[0].expanduser().resolve()
    where = path.resolve()
    if where == cache or where.is_relative_to(cache / "data"):
        raise OutputError(f"{named} is the course's cache folder or its decoded data (GAPCOURSE_CACHE), which "
                          f"later commands read. {elsewhere}.")


def _check_writable(path: Path, where: Path, what: str, option: str | None) -> None:
    """Write a probe file beside ``where`` (``path``, or the target of the link ``path``), or open a device such as
    /dev/stdout for appending. ``option``: the option naming ``path`` (None: no option chooses it)."""
    folder = where.parent
    try:
        if path.exists() and not path.is_file():  # a device or a pipe: written in place, never replaced
            with open(path, "a"):
                pass
            return
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".gapcourse-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        todo = f"give {option} a writable location" if option else f"make {folder} writable"
        raise OutputError(f"{option + ' ' if option else ''}{path} cannot be written: {err.strerror or err} "
                          f"({folder}). Cannot write the {what} there, so nothing was run: {todo}.") from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a reader sees the old file or the new one); a device or pipe (e.g.
    /dev/stdout) is written in place. Raises OSError."""
    path = Path(path)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        with open(path, "w") as fh:
            fh.write(text)
        return path
    with replacing(path) as tmp:
        tmp.write_text(text)
    return path


def keep_beside(path: str | os.PathLike, content: str | Callable[[Path], object]) -> Path:
    """Save ``content`` (text, or a function that writes a given path), which could not be written to ``path``,
    where it can be: beside ``path`` (``<stem>.unsaved-<time><suffix>``), else in the cache folder's ``unsaved/``,
    else the temporary folder. Returns where it went; raises the last error when none of them can be written."""
    path = Path(path)
    name = f"{path.stem or 'output'}.unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{path.suffix}"
    places = [] if path.exists() and not path.is_file() else [path.parent]
    try:
        from .config import cache_dir

        places.append(cache_dir() / "unsaved")
    except (OSError, ValueError):
        pass
    places.append(Path(tempfile.gettempdir()))
    error: Exception | None = None
    for folder in places:
        try:
            if isinstance(content, str):
                return write_text(folder / name, content)
            content(folder / name)
            return folder / name
        except (OSError, RuntimeError) as err:  # (a checkpoint's writer raises its own RuntimeError subclass)
            error = err
    raise error or OSError(f"nowhere to keep {path.name}")


def write_or_keep(path: str | os.PathLike, text: str, *, what: str, work: str) -> Path:
    """Write ``text`` (the result of long work, described by ``work``) to ``path``; when that fails, keep it with
    :func:`keep_beside` and raise :class:`OutputError` saying why and where it is."""
    try:
        return write_text(path, text)
    except OSError as err:
        reason = err.strerror or str(err)
    return _kept(path, text, what=what, work=work, reason=reason)


def _kept(path: str | os.PathLike, text: str, *, what: str, work: str, reason: str) -> Path:
    try:
        where = keep_beside(path, text)
    except (OSError, RuntimeError) as err:
        raise OutputError(f"Could not write the {what} {path} ({reason}), nor keep it anywhere else "
                          f"({err.strerror or err}): {work} is lost. Free some space or check the permissions.") \
            from None
    raise OutputError(f"Could not write the {what} {path} ({reason}); {work} is kept in {where}. Copy it where it "
                      "belongs, or fix the place (space, permissions, a folder in the way) and run again.")


def keep_after_failure(path: str | os.PathLike, text: str, *, what: str, work: str, error: Exception) -> Path:
    """For a write that failed in the caller's own way (``error``): keep ``text`` and raise :class:`OutputError`
    naming the error and where the work is."""
    return _kept(path, text, what=what, work=work, reason=str(error).rstrip("."))


@contextmanager
def locked(path: str | os.PathLike | None, *, wait: bool = True, suffix: str = ".lock") -> Iterator[bool]:
    """Hold an exclusive lock on ``<path><suffix>`` (POSIX ``flock``) for a read-add-write of ``path`` that several
    processes may do at once, and yield True. ``wait=False``: yield False at once (holding nothing) when another
    holder has it. ``None``: no lock. The lock file stays (removing it could let two processes lock different
    files). The one lock helper of the package: the studies' results files and claims
    (:mod:`gapcourse.studies.runner`) take theirs here."""
    if path is None:
        yield True
        return
    import fcntl

    lock = Path(str(path) + suffix)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


# A results file that cannot be written where asked (committed evidence, a folder, not writable, another
# experiment's file, impossible values): the output guard's error (gapcourse.outputs), under the name the results
# commands have always used.
ResultsError = OutputError

def is_committed(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in the course's committed results or weights folder."""
    return committed_role(path) in ("results", "weights")

def read_object(path: Path, what: str = "results file", *, fixed_by: str | None = None) -> dict[str, Any] | None:
    """The JSON object in ``path`` (None if there is no file); :class:`ResultsError` if it is anything else.
    ``fixed_by``: as for :func:`guard` (a file whose place no option chooses, e.g. ``bench --record``'s record)."""
    if not path.exists():
        return None
    todo = instead(path, fixed_by=fixed_by)
    if path.is_dir():
        raise ResultsError(f"{path} is a folder; the {what} must be a file. " + (
            f"Give a file name, e.g. --output {path / 'results.json'}." if fixed_by is None else
            f"{_capital(todo)}."))
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} is not valid JSON ({err}); {todo}. Nothing was changed.") from None
    except OSError as err:
        raise ResultsError(f"{path} cannot be read ({err.strerror or err}); {todo}.") from None
    if not isinstance(payload, dict):
        raise ResultsError(f"{path} holds a JSON {type(payload).__name__}, not a gapcourse {what} (a JSON object); "
                           f"{todo}. Nothing was changed.")
    return payload

def committed_refusal(path: str | os.PathLike, data: dict[str, Any]) -> str | None:
    """Why a run on ``data`` (see :func:`data_record`) may not write the committed file ``path``; None if it may
    (or if ``path`` is not committed)."""
    path = Path(path)
    if not is_committed(path):
        return None
    from .data import SPLIT_SIZES

    if data.get("profile") != "full":
        return f"a {data.get('profile')}-profile run may not change the committed {path.name}"
    if data.get("synthetic"):
        return f"a run on the synthetic stand-in may not change the committed {path.name}"
    if data.get("n_train") != SPLIT_SIZES["train"]:
        return (f"a run on {data.get('n_train'):,} training images (not all {SPLIT_SIZES['train']:,} of CIFAR-10) may "
                f"not change the committed {path.name}")
    existing = read_object(path)
    prov = (existing or {}).get("provenance") if existing is not None else None
    if existing is not None and path.name != "manifest.json":
        recorded = (prov or {}).get("train_sha256")
        if recorded != data.get("train_sha256"):
            return (f"the committed {path.name} was measured on other training data (SHA-256 "
                    f"{str(recorded)[:12]}…) than this run's ({str(data.get('train_sha256'))[:12]}…); to regenerate "
                    "it from scratch on this data, move it away first")
    return None
