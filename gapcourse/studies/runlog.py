"""Run time, peak memory and headline of each notebook that ``make course`` executes, and the index page that links
them (``build/html/index.html``). Introduced in the README (its run times come from these records, as
docs/RESULTS.md's table).

    python -m gapcourse.studies.runlog LOG NOTEBOOK -- COMMAND...   run COMMAND, append NOTEBOOK's seconds and peak MB to LOG
    python -m gapcourse.studies.runlog --index FOLDER               write FOLDER/index.html from FOLDER/runs.tsv

A notebook states its headline result with :func:`gapcourse.config.headline` (e.g. "86.8 % test accuracy"); it is written to the file
named by ``$GAPCOURSE_HEADLINE`` when that is set (``make course`` sets it), and is a no-op otherwise.

``--index`` also writes ``FOLDER/course_times.json`` directly (:func:`gapcourse.studies.provenance.write_json`), not
through the studies' results store (:mod:`gapcourse.studies.runner`): it is a view of ``runs.tsv`` remade whole in
the build folder on every ``make course``, with no training data to fingerprint and no runs to add or skip, and a
maintainer copies it into gapcourse/results/ by hand (after ``make course`` on a quiet machine).

Every output goes through the output guard (:func:`gapcourse.outputs.guard`, writer ``course-times``) before
COMMAND runs or anything is written: LOG must be a new file or runlog's own log, FOLDER an existing folder outside
the course's committed files (runlog never writes gapcourse/results/ itself), and an existing ``index.html`` or
``course_times.json`` there runlog's own. A refusal is one sentence and exit status 2.
"""

from __future__ import annotations

import html
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from ..config import HEADLINE_ENV
from ..outputs import OutputError, committed_role, guard, write_or_keep, write_text

WRITER = "course-times"  # the output guard's writer (gapcourse.outputs.OWNERS): no committed file is its own
STATUSES = ("ok", "FAILED")
PAGE_TITLE = "gapcourse: the executed course"
LOG_FORMAT = "NOTEBOOK, seconds, peak MB, ok or FAILED and a headline, separated by tabs"
HAND_COPIED = ("`make course` writes them into build/html/, and a maintainer copies build/html/course_times.json into "
               "gapcourse/results/ by hand after a run on a quiet machine")


class RunlogError(OutputError):
    """A run log, index folder or command that runlog refuses; the message says what was expected and what to do."""


def peak_children_mb() -> float:
    """Peak resident memory of the largest finished child process (the notebook's kernel), in MB."""
    from .bench import peak_rss_mb

    return peak_rss_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def parse_log(text: str, where: Path) -> list[dict]:
    """The rows of a run log's ``text`` (``where`` names it in the error); :class:`RunlogError` naming the first line
    that is not a row runlog writes. Blank lines are skipped."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        row = None
        if len(fields) in (4, 5) and fields[0].strip() and fields[3] in STATUSES:
            try:
                seconds, mb = float(fields[1]), float(fields[2])
            except ValueError:
                seconds = mb = math.nan
            if math.isfinite(seconds) and math.isfinite(mb) and seconds >= 0 and mb >= 0:
                row = {"notebook": fields[0], "seconds": seconds, "peak_mb": mb, "status": fields[3],
                       "headline": fields[4] if len(fields) == 5 else ""}
        if row is None:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise RunlogError(f"{where} line {number} ({shown!r}) is not a row of runlog's log ({LOG_FORMAT}), so "
                              f"{where} is not runlog's log or was edited: move it away (`make course` starts a new "
                              "one) and run again.")
        rows.append(row)
    return rows


def read_log(log: Path) -> list[dict]:
    """The rows of the run log ``log``; :class:`RunlogError` when it cannot be read or a line is not runlog's."""
    try:
        text = log.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise RunlogError(f"{log} cannot be read as runlog's log ({reason}): give a run log that `make course` "
                          "wrote, or move it away and run again.") from None
    return parse_log(text, log)


def check_log(log: Path) -> Path:
    """Check, before COMMAND runs, that ``log`` may be appended to: the output guard's checks, and an existing file
    must be runlog's own log. Returns the path."""
    log = guard(log, writer=WRITER, kind="csv", what="run log (tab-separated)", option="LOG")
    if log.is_file():
        read_log(log)
    return log


def run_and_log(log: Path, notebook: str, command: list[str]) -> int:
    """Run ``command`` (a notebook's execution) and append ``notebook``'s seconds, peak MB, status and headline to
    ``log``; returns the command's exit status. Refuses (:class:`RunlogError`), before running anything, a log it
    may not write or a command that cannot be started."""
    log = check_log(Path(log))
    headline_file = log.resolve().with_name(f".headline-{os.getpid()}")  # absolute: kernels run in notebooks/
    headline_file.unlink(missing_ok=True)
    env = dict(os.environ, **{HEADLINE_ENV: str(headline_file)})
    start = time.perf_counter()
    try:
        code = subprocess.call(command, env=env)
    except OSError as err:
        raise RunlogError(f"COMMAND {' '.join(command)!r} cannot be started ({err.strerror or err}): give a "
                          "program that exists and can be run after `--`, e.g. `-- python -m jupyter nbconvert "
                          "--to html --execute NOTEBOOK`.") from None
    seconds = time.perf_counter() - start
    text = headline_file.read_text() if headline_file.exists() else ""
    headline_file.unlink(missing_ok=True)
    row = f"{notebook}\t{seconds:.1f}\t{peak_children_mb():.0f}\t{'ok' if code == 0 else 'FAILED'}\t{text}\n"
    old = log.read_text() if log.is_file() else ""
    write_or_keep(log, old + ("" if not old or old.endswith("\n") else "\n") + row, what="run log",
                  work=f"the run log with {notebook}'s row")
    return code


def check_index(folder: Path) -> tuple[Path, Path]:
    """Check, before anything is written, that ``--index folder`` may write ``index.html`` and
    ``course_times.json`` there; returns both paths."""
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise RunlogError(f"--index {folder} {state}: give the folder `make course` wrote the notebooks' HTML and "
                          "runs.tsv into, e.g. --index build/html.")
    role = committed_role(folder / "course_times.json")
    if role is not None:
        raise RunlogError(f"Refused: --index {folder} is among the course's committed files ({role}), where runlog "
                          f"writes no index.html nor course_times.json ({HAND_COPIED}): give --index the build "
                          "folder, e.g. --index build/html.")
    page = guard(folder / "index.html", writer=WRITER, kind="text", what="course index page", option="--index")
    if page.is_file() and PAGE_TITLE not in page.read_text(errors="replace"):
        raise RunlogError(f"--index {folder}: {page} is not the course index runlog writes (no '{PAGE_TITLE}' "
                          "title), so it is not replaced: move it away, or give --index another folder, e.g. "
                          "--index build/html.")
    times = guard(folder / "course_times.json", writer=WRITER, kind="results", what="course's run times",
                  option="--index")
    if times.is_file():
        try:
            payload = json.loads(times.read_text())
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not (isinstance(payload, dict) and isinstance(payload.get("runs"), list)):
            raise RunlogError(f"--index {folder}: {times} is not the course's run times runlog writes (a JSON object "
                              "with \"runs\"), so it is not replaced: move it away, or give --index another folder, "
                              "e.g. --index build/html.")
    return page, times


def write_index(folder: Path) -> Path:
    """``index.html`` linking every executed notebook's HTML, with its run time, peak memory and headline; the same
    numbers in ``course_times.json``. Checks every output and reads the whole log before writing."""
    folder = Path(folder).expanduser()
    out, times = check_index(folder)
    rows = read_log(folder / "runs.tsv") if (folder / "runs.tsv").exists() else []
    profile = os.environ.get("GAPCOURSE_PROFILE", "full")
    items = []
    for r in rows:
        name = Path(r["notebook"]).stem
        link = f'<a href="{html.escape(name)}.html">{html.escape(name)}</a>'
        items.append(f"<tr><td>{link}</td><td>{r['seconds']:.0f} s</td><td>{r['peak_mb']:,.0f} MB</td>"
                     f"<td>{html.escape(r['status'])}</td><td>{html.escape(r['headline'])}</td></tr>")
    total = sum(r["seconds"] for r in rows)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{PAGE_TITLE}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:.4rem .8rem;text-align:left}}</style>
</head><body>
<h1>gapcourse: Global Average Pooling, measured</h1>
<p>Every notebook of the course, executed by <code>make course</code> ({html.escape(profile)} profile) on
{html.escape(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}; {total:.0f} s in all.</p>
<table><tr><th>notebook</th><th>run time</th><th>peak memory</th><th>status</th><th>headline</th></tr>
{chr(10).join(items)}
</table></body></html>
"""
    try:
        write_text(out, page)
    except OSError as err:
        raise RunlogError(f"Could not write {out} ({err.strerror or err}): check that --index {folder} is writable "
                          "and has space, then run --index again.") from None
    if rows:  # the same numbers as a results file with provenance (docs/RESULTS.md's run-time table is made from it)
        import torch

        from .provenance import provenance, write_json

        record = provenance("make course", device=torch.device("cpu"), seconds=total, profile=profile)
        write_json(times, {"provenance": record, "runs": rows})
    return out


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--index"] and len(argv) == 2:
            print(f"index: {write_index(Path(argv[1]))}")
            return 0
        if len(argv) >= 4 and argv[2] == "--":
            return run_and_log(Path(argv[0]), argv[1], argv[3:])
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
