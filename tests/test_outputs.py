"""gapcourse.outputs: the one output guard every command and tool that writes goes through.

The last two tests enumerate the writers: every command-line option that names a file to write (found by walking
the argparse parser) is run against the guard's cases, and every module or tool that writes a file must do it
through the guard, so a new writer cannot be added unguarded.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gapcourse.outputs import OutputError, guard, keep_beside, locked, write_or_keep

ROOT = Path(__file__).resolve().parents[1]
WEIGHT = ROOT / "gapcourse" / "weights" / "gap_mlp.pt"
HEADS = ROOT / "gapcourse" / "results" / "heads.json"
BUDGET = ROOT / "gapcourse" / "results" / "budget_table.json"
NOTEBOOK = next((ROOT / "notebooks").glob("01_*.ipynb"))
STUDENT = ROOT / "notebooks" / "student" / NOTEBOOK.name
README = ROOT / "README.md"
RESULTS_PAGE = ROOT / "docs" / "RESULTS.md"  # tools/readme_tables.py's own file
FULL_REAL = {"profile": "full", "n_train": 50_000, "synthetic": False, "train_sha256": "x" * 64}


@pytest.fixture
def committed_files_unchanged():
    """Every committed file a case may aim at, byte for byte, before and after (put back if changed)."""
    files = [WEIGHT, HEADS, BUDGET, NOTEBOOK, STUDENT, README, RESULTS_PAGE]
    before = {p: p.read_bytes() for p in files if p.exists()}
    yield
    changed = [p for p, b in before.items() if p.read_bytes() != b]
    for p in changed:  # only a changed file, atomically: rewriting every file in place let a test run beside this
        put_back(p, before[p])  # one read a half-written file as "before", then put that back (truncated)
    assert not changed, f"a committed file was changed: {[p.name for p in changed]}"


def put_back(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` atomically (a reader sees the old file or the new one, never half)."""
    from gapcourse.atomic import replacing

    with replacing(path) as tmp:
        tmp.write_bytes(content)


@pytest.mark.parametrize("writer, target, owner", [
    ("train", WEIGHT, "export-weights"), ("train", HEADS, "compare-heads"), ("bench", HEADS, "compare-heads"),
    ("ablate", BUDGET, "budget-table"), ("grade", RESULTS_PAGE, "readme-tables"),
    ("readme-tables", README, "sync-notebooks"), ("readme-tables", ROOT / "docs" / "reference.md", None),
    ("student-copies", NOTEBOOK, "sync-notebooks"), ("readme-tables", STUDENT, "student-copies"),
    ("budget-table", ROOT / "gapcourse" / "models.py", None), ("notebook-times", STUDENT, "student-copies"),
    ("notebook-times", README, "sync-notebooks")])
def test_a_committed_file_of_another_writers_role_is_refused(writer, target, owner, committed_files_unchanged):
    kind = {".pt": "checkpoint", ".json": "results", ".ipynb": "notebook", ".md": "markdown", ".py": "source"}
    with pytest.raises(OutputError, match="one of the course's committed files") as err:
        guard(target, writer=writer, kind=kind[target.suffix])
    message = str(err.value)
    assert f"`{writer}` may not change it" in message and "elsewhere" in message
    assert (f"`{owner}` writes it" if owner else "no command writes it") in message


def test_the_owner_of_committed_measurements_needs_a_full_run_on_the_real_data(committed_files_unchanged):
    fast = dict(FULL_REAL, profile="fast")
    with pytest.raises(OutputError, match="fast-profile run may not change the committed heads.json"):
        guard(HEADS, writer="compare-heads", kind="results", data=fast)
    with pytest.raises(OutputError, match="synthetic stand-in may not change"):
        guard(WEIGHT, writer="export-weights", kind="checkpoint", data=dict(FULL_REAL, synthetic=True))
    # owners of files that hold no measurements: their own file is theirs to write
    assert guard(RESULTS_PAGE, writer="readme-tables", kind="markdown") == RESULTS_PAGE
    assert guard(STUDENT, writer="student-copies", kind="notebook") == STUDENT


def test_an_output_that_is_also_an_input_is_refused(tmp_path):
    submission = tmp_path / "class" / "01_alice.ipynb"
    submission.parent.mkdir()
    submission.write_text("{}")
    for same in (submission, tmp_path / "class" / ".." / "class" / "01_alice.ipynb"):
        with pytest.raises(OutputError, match="also one of this command's inputs"):
            guard(same, writer="grade", kind="notebook", inputs=[submission], option="--csv")
    link = tmp_path / "grades.csv"
    link.symlink_to(submission)
    with pytest.raises(OutputError, match="also one of this command's inputs"):
        guard(link, writer="grade", kind="csv", inputs=[submission], option="--csv")
    assert submission.read_text() == "{}"


def test_a_file_of_another_kind_is_refused_by_its_name_and_by_its_content(tmp_path):
    with pytest.raises(OutputError, match=r"named as a JSON results file \(.json\).*ending in .pt"):
        guard(tmp_path / "x.json", writer="train", kind="checkpoint")
    with pytest.raises(OutputError, match=r"named as a JSON results file .*ending in .md"):
        guard(tmp_path / "results.json", writer="bench", kind="markdown")
    notes = tmp_path / "notes"
    notes.write_text("my notes\n")
    with pytest.raises(OutputError, match="already holds a text file, not a checkpoint"):
        guard(notes, writer="train", kind="checkpoint")
    table = tmp_path / "table"
    table.write_text('{"rows": []}')
    with pytest.raises(OutputError, match="already holds a JSON results file, not a Markdown table"):
        guard(table, writer="bench", kind="markdown")
    assert notes.read_text() == "my notes\n" and table.read_text() == '{"rows": []}'
    # a name of no known kind, or the right kind, is fine; so is a device such as /dev/null
    assert guard(tmp_path / "net.ckpt", writer="train", kind="checkpoint") == tmp_path / "net.ckpt"
    assert guard("/dev/null", writer="grade", kind="csv", option="--csv") == Path("/dev/null")


# ---- an existing file is replaced only when it is the command's own earlier output (careless-user review) -----------

PROGRAM = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4  # a program (NUL bytes)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)  # an image (not UTF-8)
SHELL_RC = b'export PATH="$HOME/bin:$PATH"\nalias ll="ls -l"\n'  # someone's text file (profile_notes)


def _bench_table() -> str:
    from gapcourse.studies.bench import Row, format_table

    rows = [Row("cpu", 0.5, "fp32", 1000.0, 2000.0, 1500.0, 0.1)]
    return format_table(rows, 100.0, 800.0, "Device: cpu (a test); profile fast") + "\n"


def _grades_csv() -> str:
    from gapcourse.classroom.grade import Row, csv_text

    return csv_text([Row("alice.ipynb", "01", "gap", "passed")])


def _refused_by(writer: str, target: Path, tmp_path: Path, monkeypatch, capsys) -> str:
    """Run `bench --output TARGET` or `grade --csv TARGET SUBMISSION` through the command line, its work replaced
    by a failure: the refusal (exit 2, before any work)."""
    from gapcourse.__main__ import main
    from gapcourse.classroom import grade
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: pytest.fail("measured before refusing"))
    monkeypatch.setattr(grade, "grade_notebook", lambda *a, **k: pytest.fail("graded before refusing"))
    submission = tmp_path / "class" / "01_alice.ipynb"
    submission.parent.mkdir(exist_ok=True)
    submission.write_text(NOTEBOOK.read_text())
    argv = (["bench", "--profile", "fast", "--device", "cpu", "--output", str(target)] if writer == "bench" else
            ["grade", "--timeout", "60", "--csv", str(target), str(submission)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line: what was expected, what to do
    return err


@pytest.mark.parametrize("writer", ["bench", "grade"])
@pytest.mark.parametrize("case", ["a program", "a PNG image", "a text file", "a link to a program",
                                  "a link to the interpreter", "a link to a text file"])
def test_an_existing_file_that_is_not_the_commands_own_output_is_not_replaced(writer, case, tmp_path, monkeypatch,
                                                                              capsys):
    """`bench --output` and `grade --csv` replaced a program (through a link too), a PNG and a shell's rc file."""
    import sys

    content = {"a program": PROGRAM, "a PNG image": PNG, "a text file": SHELL_RC, "a link to a program": PROGRAM,
               "a link to the interpreter": None, "a link to a text file": SHELL_RC}[case]
    real = Path(sys.executable).resolve() if content is None else tmp_path / ("pic.png" if content == PNG
                                                                              else "profile_notes")
    if content is not None:
        real.write_bytes(content)
    before = real.read_bytes()
    target = real
    if case.startswith("a link"):
        target = tmp_path / "out"
        target.symlink_to(real)
    err = _refused_by(writer, target, tmp_path, monkeypatch, capsys)
    expected = "already holds other text" if content == SHELL_RC else "already holds a binary file"
    option = "--output" if writer == "bench" else "--csv"
    assert expected in err and f"not replaced. Move it away or pass {option} another file" in err, err
    assert (f"(a link to {real})" in err) == case.startswith("a link"), err
    assert real.read_bytes() == before and (target.is_symlink() == case.startswith("a link"))


@pytest.mark.parametrize("writer", ["bench", "grade"])
def test_the_commands_own_earlier_output_an_empty_file_and_a_link_to_them_are_replaced(writer, tmp_path):
    from gapcourse.classroom.grade import check_csv_path
    from gapcourse.studies.bench import is_table

    ask = ((lambda p: guard(p, writer="bench", kind="markdown", own=is_table)) if writer == "bench" else
           (lambda p: check_csv_path(p, [])))
    earlier = tmp_path / ("table.md" if writer == "bench" else "grades.csv")
    earlier.write_text(_bench_table() if writer == "bench" else _grades_csv())
    empty = tmp_path / "empty"
    empty.touch()
    link = tmp_path / "latest"
    link.symlink_to(earlier)
    for path in (earlier, empty, link):
        assert ask(path) == path
    other = tmp_path / ("grades.csv" if writer == "bench" else "table.md")  # the other command's output is not
    other.write_text(_grades_csv() if writer == "bench" else _bench_table())
    with pytest.raises(OutputError, match="named as a"):  # (refused by its name first)
        ask(other)
    plain = tmp_path / "other-output"
    plain.write_text(_grades_csv() if writer == "bench" else _bench_table())
    with pytest.raises(OutputError, match="already holds other text"):
        ask(plain)


def test_bench_output_replaces_its_earlier_table_and_says_where(tmp_path, monkeypatch, capsys, isolated_cache):
    from gapcourse.__main__ import main
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: (1000.0, 2000.0, 1500.0, 0.1))
    monkeypatch.setattr(bench, "pil_vs_tensor", lambda data: (100.0, 800.0))
    target = tmp_path / "table.md"
    target.write_text(_bench_table())
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--train", "--output", str(target)]) == 0
    assert f"written: {target}\n" in capsys.readouterr().out
    assert bench.is_table(target.read_text()) and target.read_text() != _bench_table()


# ---- refusals of a file no option chooses say what can be done (careless-user review) -----------------------------

@pytest.mark.parametrize("content", ["[1, 2]", "not JSON", '{"runs": [{"head": "gap_linear"}]}', "a folder"])
def test_bench_record_refusals_name_the_record_and_say_to_move_it(content, tmp_path, monkeypatch, capsys):
    """No option chooses where --record writes: its refusals never send the user to --output (the table's option)."""
    from gapcourse.__main__ import main
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    record = tmp_path / "cache" / "bench_cpu-fast.json"
    record.parent.mkdir()
    if content == "a folder":
        record.mkdir()
    else:
        record.write_text(content)
    monkeypatch.setattr(bench, "default_output", lambda committed, data: record)
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: pytest.fail("measured before refusing"))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--record"]) == 2
    err = capsys.readouterr().err
    assert f"move {record} away, or run without --record" in err and "--output" not in err, err
    assert record.is_dir() if content == "a folder" else record.read_text() == content


def test_export_weights_in_a_fast_run_says_to_drop_the_flag(tmp_path, monkeypatch, capsys,
                                                            committed_files_unchanged):
    from gapcourse.__main__ import main
    from gapcourse.studies import heads

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(heads, "train_or_load", lambda *a, **k: pytest.fail("trained before refusing"))
    assert main(["compare-heads", "--profile", "fast", "--heads", "gap_linear", "--seeds", "0", "--export-weights",
                 "--output", str(tmp_path / "heads.json")]) == 2
    err = capsys.readouterr().err
    assert "--export-weights works only in a full-profile run on the real CIFAR-10, so drop --export-weights" in err
    assert "Pass --export-weights" not in err and "a file elsewhere" not in err


def test_student_copies_refuses_a_copy_that_links_to_its_solution_in_its_own_words(tmp_path):
    from gapcourse.classroom.copies import write_student_copies

    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    solution = tmp_path / "notebooks" / NOTEBOOK.name
    solution.write_text(NOTEBOOK.read_text())
    copy = tmp_path / "notebooks" / "student" / NOTEBOOK.name
    copy.symlink_to(solution)
    with pytest.raises(OutputError, match="also one of this command's inputs") as err:
        write_student_copies(tmp_path, force=True)
    message = str(err.value)
    assert f"`student-copies` always writes there, so move {copy} away" in message and "--output" not in message
    assert solution.read_text() == NOTEBOOK.read_text() and copy.is_symlink()


def test_an_empty_csv_name_is_refused_as_a_missing_name(tmp_path, capsys):
    from gapcourse.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["grade", str(tmp_path), "--csv", ""])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--csv: needs a file name" in err and "folder" not in err


def test_a_place_that_cannot_be_written_is_refused_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot be written"):
        guard(blocker / "net.pt", writer="train", kind="checkpoint")
    with pytest.raises(OutputError, match="is a folder"):
        guard(tmp_path, writer="train", kind="checkpoint")
    with pytest.raises(OutputError, match="needs a file name"):
        guard(" ", writer="grade", kind="csv", option="--csv")
    assert guard(tmp_path / "new" / "net.pt", writer="train", kind="checkpoint").parent.is_dir()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a-file", "new"]  # no probe left behind


def test_a_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert guard("~/p.json", writer="ablate", kind="results") == tmp_path / "p.json"


def test_a_failed_write_keeps_the_work_and_says_where(tmp_path, isolated_cache):
    with pytest.raises(OutputError, match="No space left") as err:
        write_or_keep("/dev/full", "a,b\n1,2\n", what="grades CSV", work="the whole class's grades")
    kept = Path(re.search(r"is kept in (\S+)\. ", str(err.value)).group(1))
    assert kept.is_relative_to(isolated_cache) and kept.read_text() == "a,b\n1,2\n"  # not beside a device
    target = tmp_path / "table.md"
    beside = keep_beside(target, "| table |\n")
    assert beside.parent == tmp_path and beside.name.startswith("table.unsaved-") and beside.suffix == ".md"


def test_the_lock_keeps_out_another_process(tmp_path):
    target = tmp_path / "shared.json"
    probe = ("import fcntl, sys; fh = open(sys.argv[1], 'w')\n"
             "try:\n    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
             "except BlockingIOError:\n    print('held')")
    ask = lambda: subprocess.run([sys.executable, "-c", probe, f"{target}.lock"], capture_output=True,  # noqa: E731
                                 text=True, check=True).stdout.strip()
    with locked(target):
        assert ask() == "held"
    assert ask() == "free"


# ---- every writer goes through the guard ---------------------------------------------------------------------------

def _options_that_write() -> set[tuple[str, str]]:
    """(command, option) for every option of `python -m gapcourse` that names a file to write or asks for one."""
    import argparse

    from gapcourse.__main__ import build_parser

    found = set()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        for action in parser._actions:
            words = " ".join(action.option_strings) + " " + (action.help or "")
            if action.option_strings and re.search(r"--output|--csv|\bwrit|\brecord|\bexport", words, re.I):
                found.add((command, action.option_strings[0]))
    return found


# For each option: the argv that writes, with {out} where the output goes, and the guard's cases it meets. The
# commands are run for real (synthetic data where they load any); each case must be refused before any work.
WRITERS = {
    ("train", "--output"): (["train", "--profile", "fast", "--epochs", "1", "--output", "{out}"], ".pt"),
    ("bench", "--output"): (["bench", "--profile", "fast", "--device", "cpu", "--output", "{out}"], ".md"),
    ("budget-table", "--output"): (["budget-table", "--profile", "fast", "--budgets", "1", "--conditions", "fp32",
                                    "--output", "{out}"], ".json"),
    ("budget-recipe", "--output"): (["budget-recipe", "--profile", "fast", "--candidates", "current", "--seeds", "0",
                                     "--output", "{out}"], ".json"),
    ("compare-heads", "--output"): (["compare-heads", "--profile", "fast", "--heads", "gap_linear", "--seeds", "0",
                                     "--output", "{out}"], ".json"),
    ("ablate", "--output"): (["ablate", "--profile", "fast", "--preset", "gpu", "--only", "baseline", "--seeds", "0",
                              "--output", "{out}"], ".json"),
    ("grade", "--csv"): (["grade", "--timeout", "60", "--csv", "{out}", "{input}"], ".csv"),
}
# Options that write to a fixed place, each guarded where it writes (and tested with its command): --record (a
# committed results file only for a full run on real data: tests/test_provenance.py), --export-weights (the
# shipped weights: below), --verify-gpu (with --record: bench_cuda.json, as --record), and the options that say
# they write nothing (--check, --dry-run); student-copies --out names a folder, not a file: each copy in it goes
# through the guard, and tests/test_classroom.py refuses the course's own folders, a file, and a file of another kind.
FIXED_PLACE = {("bench", "--record"), ("compare-heads", "--export-weights"), ("student-copies", "--check"),
               ("bench", "--verify-gpu"), ("bench", "--dry-run"), ("student-copies", "--out")}


def test_every_option_that_writes_is_known_to_this_test():
    found = _options_that_write()
    unknown = found - set(WRITERS) - FIXED_PLACE
    assert not unknown, f"a new option writes a file: add it to WRITERS (and guard it): {sorted(unknown)}"
    assert set(WRITERS) | FIXED_PLACE >= found and set(WRITERS) <= found, "WRITERS lists an option that is gone"


CASES = ["committed file of another role", "output is an input", "unwritable folder", "file of another kind"]


@pytest.mark.parametrize("writer, case", [(w, c) for w in sorted(WRITERS) for c in CASES
                                          if c != "output is an input" or "{input}" in WRITERS[w][0]],
                         ids=lambda v: v if isinstance(v, str) else f"{v[0]} {v[1]}")  # (inputs: grade's only)
def test_every_command_that_takes_an_output_refuses_the_guards_cases(writer, case, tmp_path, monkeypatch, capsys,
                                                                     committed_files_unchanged):
    from gapcourse.studies import ablation, bench, budget_table, heads
    from gapcourse import train
    from gapcourse.classroom import grade
    from gapcourse.__main__ import main
    from gapcourse.studies import budget_recipe

    argv, suffix = WRITERS[writer]
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    work = lambda *a, **k: pytest.fail(f"{writer} did its work before refusing its output ({case})")  # noqa: E731
    for module, name in [(train, "fit"), (ablation, "fit"), (budget_table, "fit_to_budget"), (budget_recipe, "fit"),
                         (budget_recipe, "calibrate"), (bench, "measure_throughput"),
                         (heads, "train_or_load"), (grade, "grade_notebook")]:
        monkeypatch.setattr(module, name, work)
    submission = tmp_path / "class" / "01_alice.ipynb"
    submission.parent.mkdir()
    submission.write_text(NOTEBOOK.read_text())
    other_kind = {".pt": tmp_path / "x.json", ".md": tmp_path / "results.json", ".csv": tmp_path / "g.ipynb",
                  ".json": tmp_path / "x.pt"}[suffix]
    if writer == ("ablate", "--output"):  # another study's file of the same kind (item 10)
        other_kind = tmp_path / "budget.json"
        other_kind.write_text(BUDGET.read_text())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out, expected = {
        "committed file of another role": (WEIGHT if suffix != ".pt" else HEADS, "committed files"),
        "output is an input": (submission, "inputs|named as a notebook"),
        "unwritable folder": (blocker / f"out{suffix}", "cannot be written"),
        "file of another kind": (other_kind, "named as a|not the gpu study's"),
    }[case]
    before = out.read_bytes() if out.is_file() else None
    args = [a.replace("{out}", str(out)).replace("{input}", str(submission)) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(expected, err), err
    assert (out.read_bytes() if out.is_file() else None) == before
    assert submission.read_text() == NOTEBOOK.read_text()


def test_export_weights_refuses_the_shipped_folder_without_a_full_run(tmp_path, committed_files_unchanged):
    from gapcourse.models import build_net
    from gapcourse.weights import WEIGHTS_DIR
    from gapcourse.studies.export import export

    with pytest.raises(OutputError, match="needs the run's data|fast-profile run may not"):
        export({"gap_mlp": build_net(width=0.25)}, None, {}, device="cpu", command="test",
               data=dict(FULL_REAL, profile="fast"))
    with pytest.raises(OutputError, match="needs the run's data"):
        export({"gap_mlp": build_net(width=0.25)}, None, {}, device="cpu", command="test")
    assert WEIGHTS_DIR.is_dir()


WRITES = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*[\"'][wax]b?[\"']|torch\.save\(")
# Modules that write only their own files (the cache, a temporary folder, a kernel's scratch folder, the atomic
# writers themselves; tools/colab_env.py: its build cache outside the clone): never a file a user names.
OWN_FILES_ONLY = {"atomic.py", "outputs.py", "config.py", "checkpoints.py", "data.py", "resume.py", "grade.py",
                  "provenance.py", "colab_env.py"}


def test_every_module_and_tool_that_writes_goes_through_the_guard():
    unguarded = []
    for path in sorted((ROOT / "gapcourse").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py")):
        text = path.read_text()
        if path.name in OWN_FILES_ONLY:
            continue
        raw = [n for n, line in enumerate(text.splitlines(), 1) if WRITES.search(line)]
        if raw:
            unguarded.append(f"{path.relative_to(ROOT)}:{raw}")
        elif path.parent.name == "tools" and "write" in text and "guard(" not in text:
            unguarded.append(f"{path.relative_to(ROOT)}: writes without gapcourse.outputs.guard")
    assert not unguarded, ("write files through gapcourse.outputs (guard, then write_text or write_or_keep): "
                           + "; ".join(unguarded))


@pytest.mark.parametrize("name", ["LICENSE", "Makefile", "pyproject.toml", "constraints.txt", ".git/config"])
def test_the_checkouts_own_files_are_refused_to_every_writer(name):
    """Careless-user review: `grade --csv LICENSE` and `bench --output Makefile` overwrote them."""
    from gapcourse.outputs import REPO_ROOT, committed_role, guard

    path = REPO_ROOT / name
    assert committed_role(path) in ("project file", "git metadata")
    for writer, kind in (("grade", "csv"), ("bench", "markdown"), ("budget-table", "results"), ("train", "checkpoint")):
        with pytest.raises(OutputError, match="git's own data" if name.startswith(".git/") else "committed files") \
                as err:
            guard(path, writer=writer, kind=kind)
        # git's own data is never restored with git checkout (careless-user review: `train --output .git/config`)
        assert ("git checkout" in str(err.value)) != name.startswith(".git/")
    assert committed_role(REPO_ROOT / "grades.csv") is None  # a new file in the checkout is the user's to write


@pytest.mark.parametrize("name", ["docs/RESULTS.md", "docs/reference.md", "docs/studies/gpu-preset.md",
                                  "docs/a-new-page.md"])
def test_every_page_in_docs_is_a_committed_file(name):
    """docs/ holds the course's pages: each one, committed or new, is refused to every writer but the owner of its
    generated tables (tools/readme_tables.py writes docs/RESULTS.md and nothing else there)."""
    from gapcourse.outputs import REPO_ROOT, committed_role, guard

    path = REPO_ROOT / name
    assert committed_role(path) == "docs"
    new = not path.exists()  # a new page is refused as the docs' folder, with nothing to restore (careless-user review)
    writers = (("grade", "csv"), ("bench", "markdown"), ("sync-notebooks", "markdown"), ("train", "checkpoint"))
    for writer, kind in writers:
        with pytest.raises(OutputError, match=r"a new file in the course's own docs/ folder" if new else
                           r"committed files \(docs; ") as err:
            guard(path, writer=writer, kind=kind)
        assert ("git checkout -- docs/" in str(err.value)) != new
    if name == "docs/RESULTS.md":
        assert guard(path, writer="readme-tables", kind="markdown") == path
    else:
        with pytest.raises(OutputError, match="`readme-tables` may not (write|change it)"):
            guard(path, writer="readme-tables", kind="markdown")


@pytest.mark.parametrize("kind", ["checkpoint", "results"])
def test_a_device_is_never_replaced_by_a_file(kind):
    """Careless-user review: `train --output /dev/full` renamed a checkpoint over the device node, and a results
    command read /dev/full as JSON until it ran out of memory."""
    from gapcourse.outputs import guard

    with pytest.raises(OutputError, match="not a regular file"):
        guard("/dev/null", writer="train" if kind == "checkpoint" else "budget-table", kind=kind)


def test_the_cache_folder_and_its_data_are_not_outputs(tmp_path, monkeypatch):
    from gapcourse.outputs import guard

    cache = tmp_path / "cache"
    monkeypatch.setenv("GAPCOURSE_CACHE", str(cache))
    with pytest.raises(OutputError, match="cache folder"):
        guard(cache, writer="budget-table", kind="results")  # not created yet: it would become a file
    (cache / "data").mkdir(parents=True)
    with pytest.raises(OutputError, match="cache folder"):
        guard(cache / "data" / "cifar10-train-abc.pt", writer="train", kind="checkpoint")
    assert guard(cache / "results" / "mine.json", writer="budget-table", kind="results").name == "mine.json"


def test_a_pattern_entry_owns_the_solution_notebooks_only():
    from gapcourse.outputs import owns

    assert owns("notebook-times", NOTEBOOK) and not owns("notebook-times", STUDENT)
    assert not owns("notebook-times", ROOT / "notebooks" / "README.md")
