"""Every file the course writes is replaced atomically, and the temporary file of a writer that was killed is removed
by the next write of the same file (gapcourse.atomic)."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from gapcourse.atomic import STALE_AFTER_S, remove_stale_temporaries, replacing
from gapcourse.checkpoints import save_checkpoint
from gapcourse.models import build_net
from gapcourse.studies.provenance import write_json

pytestmark = pytest.mark.skipif(os.name != "posix", reason="stale files are recognised by process number on POSIX")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(path, pid: int, age_s: float):
    tmp = path.with_name(f"{path.name}.tmp{pid}")
    tmp.write_bytes(b"half of a file")
    then = time.time() - age_s
    os.utime(tmp, (then, then))
    return tmp


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    path = tmp_path / "results.json"
    stale = _leftover(path, _dead_pid(), age_s=STALE_AFTER_S + 60)
    write_json(path, {"runs": []})
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_checkpoints_clean_up_too(tmp_path):
    path = tmp_path / "net.pt"
    stale = _leftover(path, _dead_pid(), age_s=STALE_AFTER_S + 60)
    save_checkpoint(build_net(width=0.125), path)
    assert not stale.exists() and path.exists()


def test_a_temporary_file_that_may_still_be_written_is_kept(tmp_path):
    path = tmp_path / "state [1].pt"  # glob characters in the name are taken literally
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = _leftover(path, sleeper.pid, age_s=STALE_AFTER_S + 60)  # its process still runs
        recent = _leftover(path, _dead_pid(), age_s=10)  # perhaps a writer on another machine sharing the folder
        other = path.with_name(path.name + ".tmpnotes")  # not a process number
        other.write_text("x")
        old_dead = _leftover(path, _dead_pid(), age_s=STALE_AFTER_S + 60)
        assert remove_stale_temporaries(path) == [old_dead]
        assert live.exists() and recent.exists() and other.exists()
        assert remove_stale_temporaries(path, now=time.time() + STALE_AFTER_S) == [recent]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("the old results")
    with pytest.raises(RuntimeError, match="disk full"):
        with replacing(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "the old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    with replacing(path) as tmp:
        torch.save({"a": 1}, tmp)
    assert torch.load(path) == {"a": 1}


def test_the_new_file_keeps_the_old_ones_permissions_and_a_link_stays_a_link(tmp_path):
    private = tmp_path / "private.json"
    private.write_text("{}")
    private.chmod(0o600)
    write_json(private, {"runs": []})
    assert private.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "elsewhere" / "results.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "results.json"
    link.symlink_to(target)
    write_json(link, {"runs": [1]})
    assert link.is_symlink() and json.loads(target.read_text()) == {"runs": [1]}


def test_a_failed_results_write_names_the_file_and_changes_nothing(tmp_path, monkeypatch):
    from pathlib import Path

    from gapcourse.outputs import ResultsError

    path = tmp_path / "results.json"
    path.write_text('{"runs": []}')

    def full_disk(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(ResultsError, match=f"Could not write {path} .No space left on device.; the file as it was"):
        write_json(path, {"runs": [1]})
    monkeypatch.undo()
    assert path.read_text() == '{"runs": []}' and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
