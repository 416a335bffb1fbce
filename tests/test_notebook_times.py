"""tools/notebook_times.py (issue 32, deliverable 6): each notebook's **Time.** line, from a stated rule (words,
code lines, exercises, questions) and the committed run times (gapcourse/results/course_times.json)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMES = ROOT / "gapcourse" / "results" / "course_times.json"


def _load_tool():
    spec = importlib.util.spec_from_file_location("notebook_times_for_tests", ROOT / "tools" / "notebook_times.py")
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool  # (its dataclasses look their module up there)
    spec.loader.exec_module(tool)
    return tool


nt = _load_tool()


def test_the_rule_is_the_stated_arithmetic():
    assert (nt.WORDS_PER_MINUTE, nt.CODE_LINES_PER_HOUR, nt.EXERCISE_MINUTES, nt.QUESTION_MINUTES) == (200, 500, 8, 3)
    # 2,000 words at 200 a minute, 250 lines at 500 an hour, 2 exercises at 8 and 6 questions at 3 minutes
    assert nt.reading_minutes(nt.Counts(2000, 250, 2, 6)) == pytest.approx(10 + 30 + 16 + 18)
    assert [nt.rounded(m) for m in (72.4, 72.5, 74, 1, 0)] == [70, 75, 75, 5, 5]
    assert nt.about(2368, 100) == "2,400" and nt.about(222, 10) == "220" and nt.about(30, 100) == "100"
    # the teacher's reading of notebook 01 (about 2,400 words, two exercises, six questions: 45-60 minutes without
    # its code): the words, exercises and questions alone give 12 + 16 + 18 = 46 minutes
    assert nt.reading_minutes(nt.Counts(2400, 0, 2, 6)) == pytest.approx(46)
    assert nt.seconds_text(11.4) == "11 s" and nt.seconds_text(247.7) == "248 s (about 4 minutes)"
    assert nt.machine_of("cpu: 2 threads, x86_64, AMD EPYC") == "a 2-thread AMD EPYC CPU"


def test_the_counts_read_what_a_learner_reads():
    md = ("[![Open In Colab](https://x.org/badge.svg)](https://colab.example/nb.ipynb)\n\n# One two\n\n"
          "Three [four](https://example.org/a-b-c) <b>five</b> 2,400 don't. <!-- not read -->")
    assert nt.prose_words(md) == 7  # One, two, Three, four, five, 2,400, don't
    install = nbformat.v4.new_code_cell(nt.colab.install_cell())
    exercise = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n"
                                         "    ### END SOLUTION\n\nr = check(f)\n### BEGIN HIDDEN TESTS\nassert r\n"
                                         "### END HIDDEN TESTS")
    header = nbformat.v4.new_markdown_cell("# Title here\n\n**Time.** a b c d e f g h " + nt.MARK)
    questions = nbformat.v4.new_markdown_cell("## Questions\n\n1. Why?\n2. How,\n   really?\n3. When?")
    key = nbformat.v4.new_markdown_cell("<details><summary><b>Answers</b></summary>\n\n1. a\n2. b\n3. c\n\n"
                                        "</details>", metadata={"tags": ["answers"]})
    nb = nbformat.v4.new_notebook(cells=[header, install, exercise, questions, key])
    counts = nt.count(nb)
    # words: "Title here" + "Questions 1 Why 2 How really 3 When" (not the generated line, not the answer key)
    # code: def f / # YOUR CODE HERE / raise NotImplementedError() / r = check(f) (not the install cell, solution,
    # hidden tests or blank lines)
    assert counts == nt.Counts(words=2 + 8, code_lines=4, exercises=1, questions=3)
    nb.cells.append(nbformat.v4.new_markdown_cell("## Questions\n\n1. Again?"))
    with pytest.raises(nt.TimesError, match="2 '## Questions' cells"):
        nt.count(nb)


@pytest.fixture
def course(tmp_path) -> Path:
    """A copy of the solution notebooks whose headers have no hand-written **Time paragraph (as the lead leaves
    them: its notebook-specific sentences moved after the generated line, without the label)."""
    (tmp_path / "notebooks").mkdir()
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        header = nb.cells[0]
        header.source = "\n".join(line if not nt._OLD_LABEL.match(line) else line.split("**", 2)[-1].lstrip(": .")
                                  for line in header.source.split("\n") if nt.MARK not in line)
        nbformat.write(nb, tmp_path / "notebooks" / path.name)
    return tmp_path


def _run(course: Path, *args: str) -> int:
    return nt.main(["--root", str(course), "--times", str(TIMES), *args])


def _header(path: Path) -> str:
    return nbformat.read(path, as_version=4).cells[0].source


def test_write_then_check_passes_and_a_second_write_changes_nothing(course, capsys):
    assert _run(course, "--check") == 1
    err = capsys.readouterr().err
    assert all(f"notebooks/{p.name}: no generated **Time.** line" in err for p in SOLUTIONS)
    assert _run(course, "--write") == 0
    assert capsys.readouterr().out.count("updated: ") == len(SOLUTIONS)
    assert _run(course, "--check") == 0
    written = {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")}
    assert _run(course, "--write") == 0
    assert "updated" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")} == written
    for path in (course / "notebooks").glob("*.ipynb"):
        lines = [line for line in _header(path).split("\n") if line.startswith(nt.LABEL)]
        assert len(lines) == 1 and lines[0].endswith(nt.MARK)


def test_the_rest_of_the_header_cell_and_the_notebook_are_kept(course):
    originals = {p.name: nbformat.read(p, as_version=4) for p in (course / "notebooks").glob("*.ipynb")}
    assert _run(course, "--write") == 0
    for name, before in originals.items():
        after = nbformat.read(course / "notebooks" / name, as_version=4)
        line = next(x for x in after.cells[0].source.split("\n") if nt.MARK in x)
        assert after.cells[0].source.replace(line + "\n\n", "", 1) == before.cells[0].source, name
        assert after.cells[1:] == before.cells[1:] and after.metadata == before.metadata
    # a line already there is replaced in place: the notebook-specific paragraph after it stays as it is
    path = course / "notebooks" / "04_gap_vs_flatten.ipynb"
    nb = nbformat.read(path, as_version=4)
    old = next(x for x in nb.cells[0].source.split("\n") if nt.MARK in x)
    extra = "One switch trains and measures two heads yourself instead (section 4 says how long)."
    nb.cells[0].source = nb.cells[0].source.replace(old, old.replace("About", "About 1") + "\n\n" + extra)
    nbformat.write(nb, path)
    stale = nb.cells[0].source
    assert _run(course, "--write") == 0
    assert _header(path) == stale.replace(old.replace("About", "About 1"), old) and extra in _header(path)


@pytest.mark.parametrize("change", ["the minutes", "more prose", "another question", "the line removed",
                                    "a hand-written time"])
def test_a_missing_or_stale_line_is_named(course, capsys, change):
    assert _run(course, "--write") == 0
    path = course / "notebooks" / "01_gap_by_hand.ipynb"
    nb = nbformat.read(path, as_version=4)
    header = nb.cells[0]
    line = next(x for x in header.source.split("\n") if nt.MARK in x)
    if change == "the minutes":
        header.source = header.source.replace(line, line.replace("About ", "About 1"))
    elif change == "more prose":
        nb.cells.insert(3, nbformat.v4.new_markdown_cell(" ".join(["word"] * 1500)))
    elif change == "another question":
        q = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Questions"))
        q.source = q.source.replace("\n\n**Go further.**", "\n7. One more?\n\n**Go further.**", 1)
    elif change == "the line removed":
        header.source = header.source.replace(line, "")
    else:
        header.source += "\n\n**Time:** about 20 minutes."
    nbformat.write(nb, path)
    capsys.readouterr()
    assert _run(course, "--check") == 1
    err = capsys.readouterr().err
    assert err.count("notebooks/") == 1 and "notebooks/01_gap_by_hand.ipynb: " in err
    expected = {"the line removed": "no generated **Time.** line",
                "a hand-written time": "a hand-written time besides the generated line"}.get(change, "stale")
    assert expected in err


def test_the_compute_time_is_the_committed_measurement():
    times = json.loads(TIMES.read_text())
    measured = {r["notebook"]: r["seconds"] for r in times["runs"]}
    rows = nt.plan(ROOT, TIMES)
    assert [f"notebooks/{path.name}" for path, *_ in rows] == [f"notebooks/{p.name}" for p in SOLUTIONS]
    for path, _, _, compute, line in rows:
        seconds = measured[f"notebooks/{path.name}"]
        assert compute.seconds == seconds
        assert f"the code runs in {seconds:.0f} s" in line
        assert f"(measured: `make course`, {times['provenance']['date'][:10]})" in line
        assert "2-thread AMD EPYC CPU" in line and times["provenance"]["device"].startswith("cpu: 2 threads")


def test_a_notebook_without_a_measured_time_stops_the_write(course, tmp_path, capsys):
    times = json.loads(TIMES.read_text())
    times["runs"] = [r for r in times["runs"] if not r["notebook"].endswith("05_class_activation_maps.ipynb")]
    partial = tmp_path / "times.json"
    partial.write_text(json.dumps(times))
    before = {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")}
    assert nt.main(["--root", str(course), "--times", str(partial), "--write"]) == 2
    err = capsys.readouterr().err
    assert "no measured time for notebooks/05_class_activation_maps.ipynb" in err and "make course" in err
    assert {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")} == before, "nothing written"
    assert nt.main(["--root", str(course), "--times", str(partial)]) == 2  # the table: the others, and why not 05
    out, err = capsys.readouterr()
    assert "| 01_gap_by_hand.ipynb |" in out and "| 05_class" not in out and "05_class_activation_maps" in err


def test_the_printed_table_says_what_would_be_written_and_writes_nothing(course, capsys):
    before = {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")}
    assert _run(course) == 0
    out = capsys.readouterr().out
    assert all(f"| {p.name} |" in out and f"{p.name}: {nt.LABEL} About " in out for p in SOLUTIONS)
    assert {p.name: p.read_bytes() for p in (course / "notebooks").glob("*.ipynb")} == before


def test_the_readme_table_gives_each_notebooks_rule_time_and_measured_run_time():
    """README's "reading + exercises · code run time" column says what the headers' generated lines say: a stale
    number after a notebook grows, or after a new `make course`, fails here."""
    import re

    rows = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
            re.finditer(r"^\| (\d\d) \|.*\| (\d+) min · (\d+) s\b", (ROOT / "README.md").read_text(), re.M)}
    expected = {path.name[:2]: (nt.rounded(nt.reading_minutes(counts)), round(compute.seconds))
                for path, _nb, counts, compute, _line in nt.plan(ROOT, TIMES)}
    assert rows == expected
