"""Grading a class's notebooks: ``python -m gapcourse grade SUBMISSIONS… [--timeout S] [--csv out.csv]``.

Introduced in docs/instructors.md. Each submitted student notebook runs in its own Jupyter kernel
(a separate process, started in an empty temporary folder), never in the grader's process: it is the learners'
code. Every cell runs in order, errors and all, within ``--timeout`` seconds for the whole notebook; then, for each
exercise of that notebook, one extra cell calls the exercise's check from :mod:`gapcourse.checks` on the learner's
function and writes the :class:`~gapcourse.checks.CheckResult` to a file the grader reads. Each check has its own
time limit (:data:`CHECK_SECONDS`), so an answer that loops forever costs that exercise only.

The result is one row per submission and exercise: ``passed``, ``wrong`` (with the check's message),
``not attempted``, or ``did not run`` (the notebook timed out or its kernel died, the cell that defines the answer
was deleted, renamed or raised, the check itself did not finish). A notebook that loops forever, deletes cells,
renames a function or raises ``SystemExit`` costs its own rows, never the run.

What this does **not** protect against: the learners' code runs with the permissions of whoever runs the grader
(it can read and write their files, use the network, start processes that outlive the kernel, or rewrite the checks
in its own kernel to report success). Grade inside a container or virtual machine, without network access, as a
separate user (see docs/instructors.md).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSED, WRONG, NOT_ATTEMPTED, DID_NOT_RUN = "passed", "wrong", "not attempted", "did not run"
CHECK_SECONDS = 30  # each exercise's check, after the notebook has run
PROBE_SECONDS = 10  # how long an interrupted kernel has to answer before it is shut down
DEFAULT_TIMEOUT = 600

# Exercises of each notebook, as (check name in gapcourse.checks, name the student copy gives the answer), in the
# order the notebook asks them. tests/test_grade.py keeps this in step with notebooks/student/; a notebook missing
# here is graded by the check cells found in the submission (``result = checks.<name>(<answer>)``).
EXERCISES: dict[str, tuple[tuple[str, str], ...]] = {
    "01": (("flatten_head_params", "flatten_head_params"), ("global_avg_pool", "global_avg_pool")),
    "02": (("gap_module", "make_gap_module"), ("adaptive_windows", "adaptive_windows")),
    "03": (("seed_block", "seed_block"), ("per_class_accuracy", "per_class_accuracy")),
    "04": (("nin_head", "nin_head"), ("shift_right_down", "shift_right_down")),
    "05": (("class_activation_map", "class_activation_map"), ("peak_cell", "peak_cell")),
    "06": (("smoothed_targets", "smoothed_targets"), ("ema_update", "ema_update")),
}
CHECK_CALL = re.compile(r"\bchecks\.(\w+)\(\s*([A-Za-z_]\w*)\s*\)")
TITLE = re.compile(r"^#\s+(\d{2})\s+·", re.M)

# The extra cell run once per exercise, in the learner's kernel. Names start with __gapcourse_ so that learners'
# variables are not touched; a learner who redefines them can fake the result (see the module docstring).
_GRADE_CELL = '''\
def __gapcourse_grade(name, var, out):
    import json, pathlib
    from gapcourse import checks
    space = globals()
    if var not in space:
        found = {{"status": "undefined"}}
    else:
        result = checks.CHECKS[name](space[var])
        found = {{"status": result.status, "message": result.message}}
    pathlib.Path(out).write_text(json.dumps(found))
__gapcourse_grade({name!r}, {var!r}, {out!r})
'''


@dataclass
class Row:
    """One cell of the class table: a submission's exercise and what became of it."""

    submission: str
    notebook: str
    exercise: str
    status: str
    message: str = ""
    run: str = ""  # how the notebook's own cells went: "ran", "errors in cells …", "timed out at cell …"

    def as_dict(self) -> dict[str, str]:
        return {"submission": self.submission, "notebook": self.notebook, "exercise": self.exercise,
                "status": self.status, "message": self.message, "run": self.run}


def which_notebook(nb: Any, path: Path) -> str | None:
    """The course notebook a submission is a copy of ("01"...): from its title ``# NN · …``, else its file name."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = TITLE.search(cell.source)
            if found:
                return found.group(1)
    found = re.match(r"(\d{2})[_\W]", path.name)
    return found.group(1) if found else None


def exercises_of(nb: Any, number: str | None) -> list[tuple[str, str]]:
    """The (check, answer name) pairs to grade: the course's list for that notebook, else the submission's checks."""
    from ..checks import CHECKS

    if number in EXERCISES:
        return list(EXERCISES[number])
    found: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name, var in CHECK_CALL.findall(cell.source):
                if name in CHECKS and name not in found:
                    found[name] = var
    return list(found.items())


def _defines(source: str, var: str) -> bool:
    return re.search(rf"^(?:def|class)\s+{re.escape(var)}\b|^{re.escape(var)}\s*=", source, re.M) is not None


def _error_line(cell: Any) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {str(out.get('evalue', ''))[:160]}".rstrip(": ")
    return None


def _client(nb: Any, kernel_dirs: Path, workdir: Path):
    """An nbclient client whose kernel runs this interpreter (the course environment), keeping only error outputs
    (a notebook that prints in an endless loop must not fill the grader's memory)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    class ErrorsOnly(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
            if msg["msg_type"] != "error":
                return None
            return super().output(outs, msg, display_id, cell_index)

    spec = kernel_dirs / "gapcourse-grader"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gapcourse grader", "language": "python"}))
    km = AsyncKernelManager(kernel_name="gapcourse-grader", transport="ipc", ip=str(kernel_dirs / "ipc"),
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dirs)]))
    return ErrorsOnly(nb, km=km, allow_errors=True, interrupt_on_timeout=False, iopub_timeout=5,
                      resources={"metadata": {"path": str(workdir)}})


def grade_notebook(path: Path, timeout: float = DEFAULT_TIMEOUT, env: dict[str, str] | None = None) -> list[Row]:
    """Run one submission in its own kernel and grade its exercises. Never raises for anything the notebook does."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    name = str(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        return [Row(name, "?", "-", DID_NOT_RUN, "file not found", "not run")]
    except Exception as err:  # noqa: BLE001 - any unreadable file is one row
        return [Row(name, "?", "-", DID_NOT_RUN, f"not a readable notebook ({type(err).__name__}: "
                                                 f"{str(err)[:120]})", "not run")]
    number = which_notebook(nb, path)
    exercises = exercises_of(nb, number)
    if not exercises:
        return [Row(name, number or "?", "-", DID_NOT_RUN, "no course exercise found (expected a copy of a "
                                                          "student notebook, titled '# NN · …')", "not run")]
    rows = {ex: Row(name, number or "?", ex, DID_NOT_RUN) for ex, _ in exercises}
    defining = {ex: [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _defines(c.source, var)]
                for ex, var in exercises}
    errors: list[int] = []
    with tempfile.TemporaryDirectory(prefix="gapcourse-grade-") as tmp:
        tmp_path = Path(tmp)
        workdir = tmp_path / "work"
        workdir.mkdir()
        client = _client(nb, tmp_path / "kernels", workdir)
        run = "ran"
        stopped: int | None = None  # the cell at which the notebook timed out
        alive = True
        where = "while starting"
        try:
            with client.setup_kernel(env=env, cwd=str(workdir), cleanup_kc=True):
                _import_checks_first(client)
                deadline = time.monotonic() + timeout
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        run = f"timed out before cell {index} (limit {timeout:g} s)"
                        stopped = index
                        break
                    client.timeout = max(1, int(left))
                    where = f"at cell {index}"
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        run = f"timed out at cell {index} (limit {timeout:g} s)"
                        stopped = index
                        alive = _interrupt(client)
                        break
                    if _error_line(cell) and "raises-exception" not in cell.metadata.get("tags", []):
                        errors.append(index)
                if run == "ran" and errors:
                    run = "errors in cells " + ", ".join(map(str, errors))
                for ex, var in exercises:
                    if not alive:
                        break
                    rows[ex].run = run
                    where = f"in the check of {ex}"
                    out = tmp_path / f"{ex}.json"
                    probe = nbformat.v4.new_code_cell(_GRADE_CELL.format(name=ex, var=var, out=str(out)))
                    nb.cells.append(probe)  # nbclient addresses cells by their index in the notebook
                    client.timeout = CHECK_SECONDS
                    try:
                        client.execute_cell(probe, len(nb.cells) - 1)
                    except CellTimeoutError:
                        rows[ex].message = f"its check did not finish in {CHECK_SECONDS} s (an endless loop?)"
                        alive = _interrupt(client)
                        continue
                    _fill(rows[ex], out, _error_line(probe), defining[ex], nb, var, stopped)
        except DeadKernelError:
            run = f"the kernel stopped {where} (exit(), os._exit, a crash, or out of memory)"
        except Exception as err:  # noqa: BLE001 - the kernel could not start, or nbclient failed: one row each
            run = f"could not run: {type(err).__name__}: {str(err)[:160]}"
        finally:
            _shut_down(client)
    for row in rows.values():
        if not row.run:
            row.run = run
        if row.status == DID_NOT_RUN and not row.message:
            row.message = run if run != "ran" else "not graded"
    return list(rows.values())


def _import_checks_first(client: Any) -> None:
    """Import the checks in the kernel before any of the learner's cells runs, so that their copy of torch's
    functions is PyTorch's own, whatever the notebook replaces later (see :mod:`gapcourse.checks`)."""
    import nbformat

    first = nbformat.v4.new_code_cell("import gapcourse.checks")
    client.nb.cells.append(first)  # nbclient addresses cells by their index in the notebook
    client.timeout = CHECK_SECONDS + PROBE_SECONDS
    try:
        client.execute_cell(first, len(client.nb.cells) - 1)
    finally:
        client.nb.cells.pop()  # not one of the notebook's cells: the loop below must not run it again


def _shut_down(client: Any) -> None:
    """Stop the submission's kernel, whatever state it is in (a kernel that ignores interrupts is killed)."""
    from jupyter_core.utils import run_sync

    try:
        if client.km is not None and run_sync(client.km.is_alive)():
            run_sync(client.km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _interrupt(client: Any) -> bool:
    """Interrupt a kernel that ran past its time; True if it answers again within PROBE_SECONDS."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError

    try:
        from jupyter_core.utils import run_sync

        run_sync(client.km.interrupt_kernel)()
        client.timeout = PROBE_SECONDS
        client.nb.cells.append(nbformat.v4.new_code_cell("pass"))
        client.execute_cell(client.nb.cells[-1], len(client.nb.cells) - 1)
        return True
    except CellTimeoutError:
        return False


def _fill(row: Row, out: Path, error: str | None, cells: list[int], nb: Any, var: str,
          stopped: int | None = None) -> None:
    """Turn what the grading cell wrote (or why it wrote nothing) into the row's status and message; ``stopped``:
    the cell at which the notebook timed out (``row.run`` says how), if it did."""
    if out.exists():
        found = json.loads(out.read_text())
        status = found["status"]
        if status == "undefined":
            if not cells:
                row.message = f"no cell defines `{var}` (the exercise cell was deleted, or the function renamed)"
            elif stopped is not None and cells[0] >= stopped:
                row.message = (f"`{var}` was never defined: the notebook {row.run}, and its cell {cells[0]}, which "
                               f"defines `{var}`, {'is that cell' if cells[0] == stopped else 'comes later'}. "
                               "Give it a longer --timeout, or see what that cell does.")
            else:
                cell_error = next((_error_line(nb.cells[i]) for i in cells if _error_line(nb.cells[i])), None)
                row.message = (f"`{var}` is not defined: its cell {cells[0]} raised {cell_error}" if cell_error
                               else f"`{var}` is not defined after running the notebook")
            return
        row.status = {"correct": PASSED, "wrong": WRONG, "not attempted": NOT_ATTEMPTED}.get(status, DID_NOT_RUN)
        row.message = found.get("message", "")
        return
    row.message = f"its check stopped with {error}" if error else "its check wrote no result"


def csv_text(rows: list[Row]) -> str:
    """The grades as CSV: one row per submission and exercise."""
    import io

    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(r.as_dict() for r in rows)
    return out.getvalue()


def is_grades_csv(text: str) -> bool:
    """Whether ``text`` (the start of an existing file) is a grades CSV as :func:`csv_text` writes it: its first line
    is the header (the columns of :class:`Row`). The only file ``grade --csv`` replaces."""
    return (text.splitlines() or [""])[0] == ",".join(Row.__dataclass_fields__)


def write_csv(rows: list[Row], path: Path) -> Path:
    """Write the grades to ``path`` (atomically, through the output guard's writer); when that fails the CSV is kept
    beside (or in the cache or temporary folder) and the :class:`~gapcourse.outputs.OutputError` says where."""
    from ..outputs import write_or_keep

    return write_or_keep(path, csv_text(rows), what="grades CSV", work="the whole class's grades")


MARKS = {PASSED: "✅", WRONG: "❌", NOT_ATTEMPTED: "⏳", DID_NOT_RUN: "⛔"}


REFERENCE_USED = "the course's reference"  # in a check's message: the answer is, or calls, the reference


def labels(files: list[str]) -> dict[str, str]:
    """What the summary calls each submission: its file name, or where two share a name (``alice/01_gap.ipynb``,
    ``bob/01_gap.ipynb``) the shortest end of its path that no other submission has."""
    parts = {file: Path(file).parts for file in files}
    found = {}
    for file, mine in parts.items():
        found[file] = next((str(Path(*mine[-n:])) for n in range(1, len(mine) + 1)
                            if sum(other[-n:] == mine[-n:] for other in parts.values()) == 1), file)
    return found


def summary(rows: list[Row]) -> str:
    """One line per submission (each exercise with its mark, then how the notebook ran), then totals."""
    lines: list[str] = []
    by_file: dict[str, list[Row]] = {}
    for row in rows:
        by_file.setdefault(row.submission, []).append(row)
    names = labels(list(by_file))
    width = max(len(name) for name in names.values())
    for file, its in by_file.items():
        marks = "  ".join(f"{MARKS[r.status]} {r.exercise}" for r in its)
        lines.append(f"{names[file]:<{width}}  ({its[0].notebook})  {marks}   [{its[0].run}]")
        for r in its:
            if r.message and (r.status in (WRONG, DID_NOT_RUN) or REFERENCE_USED in r.message):
                lines.append(f"{'':<{width}}      {r.exercise}: {r.message}")
    counts = {s: sum(r.status == s for r in rows) for s in MARKS}
    files, marks = len(by_file), len(rows)
    lines.append(f"{files} submission{'s' * (files != 1)}, {marks} mark{'s' * (marks != 1)} (one per exercise, or one "
                 "for a notebook that could not be read): " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")
    lines.append(f"Legend: {', '.join(f'{m} {s}' for s, m in MARKS.items())}.")
    return "\n".join(lines)


GLOB_HINT = ("(Did the shell's glob put a submission right after --csv? Put --csv FILE before the submissions: "
             "grade --csv grades.csv class/*.ipynb.) ")


def check_csv_path(path: Path, submissions: list[Path] = ()) -> Path:
    """Refuse, before any grading, a CSV path that cannot or may not be written (the output guard,
    :func:`gapcourse.outputs.guard`): empty, a folder, in a folder that cannot be created or written, a committed
    file, a notebook or another kind of file (anything but an earlier grades CSV, :func:`is_grades_csv`), or one of
    the ``submissions``. Returns the path (``~`` expanded)."""
    from ..outputs import guard

    return guard(path, writer="grade", kind="csv", what="grades CSV", inputs=submissions, input_hint=GLOB_HINT,
                 option="--csv", own=is_grades_csv)


def dash_named(argv: list[str]) -> str | None:
    """Why ``python -m gapcourse grade ARGS`` cannot go on when a submission's name starts with '-' (argparse would
    read ``-h.ipynb`` as the option -h): the message, or None. Names after ``--`` are submissions, whatever they are."""
    words = list(argv)
    if not words or words[0] != "grade":
        return None
    for word in words[1:]:
        if word == "--":
            return None
        if word.startswith("-") and not word.startswith("--") and (word.lower().endswith(".ipynb")
                                                                    or Path(word).exists()):
            return (f"{word!r} starts with '-', so it reads as an option, not a notebook: write ./{word}, or put "
                    f"-- before the submissions (grade --timeout 600 -- {word})")
    return None


def submissions(paths: list[str]) -> list[Path]:
    """The notebooks to grade: each file as given, each folder's ``*.ipynb`` (sorted); a file named twice (or also
    found in a folder given) is graded once, and said."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    if len(unique) < len(found):
        print(f"{len(found) - len(unique)} notebook(s) given more than once: each is graded once.")
    return list(unique.values())


def grade(paths: list[str], timeout: float = DEFAULT_TIMEOUT, csv_path: str | None = None,
          profile: str = "fast") -> list[Row]:
    """Grade every submission in turn, print the summary and write the CSV. Returns the rows."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds (e.g. 600), got {timeout:g}")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:  # a mistyped path: said before any notebook runs, not as a learner's row
        raise ValueError(f"no such file or folder: {', '.join(missing)}; give the submitted .ipynb files or folders "
                         "that hold them")
    files = submissions(paths)
    if not files:
        raise ValueError("no notebooks to grade: give .ipynb files or folders that hold them")
    if csv_path is not None:
        csv_file = check_csv_path(Path(csv_path), files)  # before the class is graded, not after
    env = {**os.environ, "GAPCOURSE_PROFILE": profile, "MPLBACKEND": "Agg"}
    env.pop("PYTHONSTARTUP", None)
    rows: list[Row] = []
    for i, path in enumerate(files, 1):
        print(f"[{i}/{len(files)}] {path}", flush=True)
        rows += grade_notebook(path, timeout=timeout, env=env)
    print("\n" + summary(rows), flush=True)  # first: a CSV that cannot be written loses nothing
    if csv_path is not None:
        write_csv(rows, csv_file)
        print(f"written: {csv_file}")
    return rows
