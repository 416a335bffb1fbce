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
maintainer copies it into gapcourse/results/.
"""

from __future__ import annotations

import html
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from ..config import HEADLINE_ENV

def peak_children_mb() -> float:
    """Peak resident memory of the largest finished child process (the notebook's kernel), in MB."""
    from .bench import peak_rss_mb

    return peak_rss_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def run_and_log(log: Path, notebook: str, command: list[str]) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    headline_file = log.resolve().with_name(f".headline-{os.getpid()}")  # absolute: kernels run in notebooks/
    headline_file.unlink(missing_ok=True)
    env = dict(os.environ, **{HEADLINE_ENV: str(headline_file)})
    start = time.perf_counter()
    code = subprocess.call(command, env=env)
    seconds = time.perf_counter() - start
    text = headline_file.read_text() if headline_file.exists() else ""
    headline_file.unlink(missing_ok=True)
    with open(log, "a") as fh:
        fh.write(f"{notebook}\t{seconds:.1f}\t{peak_children_mb():.0f}\t{'ok' if code == 0 else 'FAILED'}\t{text}\n")
    return code


def read_log(log: Path) -> list[dict]:
    rows = []
    for line in log.read_text().splitlines():
        notebook, seconds, mb, status, text = (line.split("\t") + [""] * 5)[:5]
        rows.append({"notebook": notebook, "seconds": float(seconds), "peak_mb": float(mb), "status": status,
                     "headline": text})
    return rows


def write_index(folder: Path) -> Path:
    """``index.html`` linking every executed notebook's HTML, with its run time, peak memory and headline."""
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
<html lang="en"><head><meta charset="utf-8"><title>gapcourse: the executed course</title>
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
    out = folder / "index.html"
    out.write_text(page)
    if rows:  # the same numbers as a results file with provenance (docs/RESULTS.md's run-time table is made from it)
        import torch

        from .provenance import provenance, write_json

        record = provenance("make course", device=torch.device("cpu"), seconds=total, profile=profile)
        write_json(folder / "course_times.json", {"provenance": record, "runs": rows})
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--index"] and len(argv) == 2:
        print(f"index: {write_index(Path(argv[1]))}")
        return 0
    if len(argv) >= 4 and argv[2] == "--":
        return run_and_log(Path(argv[0]), argv[1], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
