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
    new = next(x for x in _header(path).split("\n") if nt.MARK in x)  # the extra words may change "about N words"
    assert new.startswith("**Time.** About ") and not new.startswith("**Time.** About 1 ")
    assert _header(path) == stale.replace(old.replace("About", "About 1"), new) and extra in _header(path)


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
        assert f"on {nt.machine_of(times['provenance']['device'])} (measured" in line


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


def test_the_committed_headers_carry_their_up_to_date_lines(capsys):
    """The repository's own notebooks, as `--check` reads them: a header left stale after an edit fails here."""
    assert nt.main(["--check"]) == 0, capsys.readouterr().out


# Careless-user review of tools/notebook_times.py ----------------------------------------------------------------------
def _notebooks(course: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((course / "notebooks").glob("*.ipynb"))}


def _times_with(tmp_path: Path, change) -> Path:
    times = json.loads(TIMES.read_text())
    change(times)
    path = tmp_path / "course_times.json"
    path.write_text(json.dumps(times))
    return path


def _set_seconds(value):
    def change(times):
        times["runs"][1]["seconds"] = value
    return change


@pytest.mark.parametrize("change, expected", [
    (lambda t: t["provenance"].update(profile="fast"), "measured with the 'fast' profile, not 'full'"),
    (lambda t: t["provenance"].pop("profile"), "measured with the None profile"),
    (_set_seconds(-3.0), "notebooks/02_adaptive_avg_pool.ipynb ran -3.0 s: not a run time"),
    (_set_seconds(float("nan")), "ran nan s: not a run time"),
    (_set_seconds(2 * 86400.0), "ran 172800.0 s: not a run time (expected 0 to 86400 seconds)"),
    (_set_seconds("12"), None),  # a number as text is still a number
    (lambda t: t["provenance"].update(date=""), "its provenance has no date"),
    (lambda t: t["runs"].append(dict(t["runs"][0], seconds=99.0)), "notebooks/01_gap_by_hand.ipynb has 2 rows"),
], ids=["fast", "no profile", "negative", "nan", "over a day", "text", "no date", "duplicate"])
def test_write_refuses_a_times_file_that_is_not_a_believable_full_run(course, tmp_path, capsys, change, expected):
    """Finding 6: a fast-profile run, impossible seconds, no date or a notebook twice: said, nothing written."""
    times = _times_with(tmp_path, change)
    before = _notebooks(course)
    code = nt.main(["--root", str(course), "--times", str(times), "--write"])
    out, err = capsys.readouterr()
    if expected is None:
        assert code == 0 and "updated: " in out
        return
    assert code == 2 and expected in err and "Nothing was written" in err and "Traceback" not in err
    assert err.startswith("error: ") and "git checkout" not in err
    assert _notebooks(course) == before


@pytest.mark.parametrize("case", ["text after the mark", "text before the label", "the mark removed",
                                  "a hand-written time"])
def test_write_refuses_a_header_it_would_damage_before_writing_anything(course, capsys, case):
    """Findings 13 and 17: replacing the line would delete text beside it; without its mark the old line would stay
    as a second one (and --check fail after the write). Refused before any notebook is written, saying what to fix."""
    assert _run(course, "--write") == 0
    other = course / "notebooks" / "02_adaptive_avg_pool.ipynb"  # a notebook the write would otherwise update
    nb2 = nbformat.read(other, as_version=4)
    line2 = next(x for x in nb2.cells[0].source.split("\n") if nt.MARK in x)
    nb2.cells[0].source = nb2.cells[0].source.replace(line2, line2.replace("About ", "About 1"))
    nbformat.write(nb2, other)
    path = course / "notebooks" / "01_gap_by_hand.ipynb"
    nb = nbformat.read(path, as_version=4)
    line = next(x for x in nb.cells[0].source.split("\n") if nt.MARK in x)
    new = {"text after the mark": line + " Budget: 4 minutes.",
           "text before the label": "Budget: 4 minutes. " + line,
           "the mark removed": line.replace(" " + nt.MARK, ""),
           "a hand-written time": line + "\n\n**Time:** about 20 minutes."}[case]
    nb.cells[0].source = nb.cells[0].source.replace(line, new)
    nbformat.write(nb, path)
    before = _notebooks(course)
    capsys.readouterr()
    assert _run(course, "--write") == 2
    out, err = capsys.readouterr()
    assert "updated" not in out and "Nothing was written: fix these headers" in err
    assert _notebooks(course) == before, "not even notebook 02, whose line was only stale"
    expected = {"text after the mark": "text after the generated line's end mark on the same line ('Budget: 4",
                "text before the label": "text before **Time.** on the generated line ('Budget: 4 minutes.')",
                "the mark removed": f"looks like the generated line with the mark removed; put {nt.MARK} back",
                "a hand-written time": "a hand-written time besides the generated line"}[case]
    assert err.count("error: ") == 1 and "error: notebooks/01_gap_by_hand.ipynb: " in err and expected in err
    assert _run(course, "--check") == 1  # --check names the same header
    assert "notebooks/01_gap_by_hand.ipynb: " in capsys.readouterr().err


def test_a_notebook_that_cannot_be_written_is_said_with_the_ones_that_were(course, capsys, monkeypatch):
    """Finding 14: no traceback; which notebooks were written, which not, and the student-copies hint."""
    real = nt.write_text

    def refusing(path, text):
        if Path(path).name.startswith("03_"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, text)

    monkeypatch.setattr(nt, "write_text", refusing)
    assert _run(course, "--write") == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "could not write notebooks/03_cifar10_gap_cnn.ipynb (Permission denied)" in err
    assert "Written: notebooks/01_gap_by_hand.ipynb, notebooks/02_adaptive_avg_pool.ipynb;" in err
    assert "not written: notebooks/03_cifar10_gap_cnn.ipynb, notebooks/04_gap_vs_flatten.ipynb" in err
    assert "python -m gapcourse student-copies" in err
    assert out.count("updated: ") == 2


def test_write_says_when_everything_is_up_to_date(course, capsys):
    """Finding 15."""
    assert _run(course, "--write") == 0
    capsys.readouterr()
    assert _run(course, "--write") == 0
    assert capsys.readouterr().out == "every notebook's **Time.** line is already up to date: nothing written\n"


@pytest.mark.parametrize("argv, expected", [
    (["--times", ""], "--times is empty"),
    (["--root", ""], "--root is empty"),
    (["--times", "  "], "--times is empty"),
    (["--times", "/nonexistent/course_times.json"], "/nonexistent/course_times.json does not exist: give --times"),
    (["--root", "TMP"], "is not the course: it has no solution notebooks"),
    (["--root", "/nonexistent/course"], "--root /nonexistent/course does not exist"),
])
@pytest.mark.parametrize("mode", [[], ["--check"], ["--write"]], ids=["table", "check", "write"])
def test_empty_or_wrong_paths_are_named_without_git_advice(tmp_path, capsys, argv, expected, mode):
    """Finding 16: an empty --times/--root is not the default; a missing file or a folder that is not the course
    is said as such (restoring the committed file would not help)."""
    argv = [str(tmp_path) if a == "TMP" else a for a in argv]
    assert nt.main([*argv, *mode]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "git checkout" not in err and "Traceback" not in err


def test_the_committed_times_file_missing_is_restored_with_git(course, capsys):
    """The default file (ROOT/gapcourse/results/course_times.json) missing: that one git can restore."""
    assert nt.main(["--root", str(course)]) == 2
    assert f"git checkout -- {nt.TIMES_FILE}" in capsys.readouterr().err
