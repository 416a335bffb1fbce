"""Writing a file so that no reader ever sees half of it, and cleaning up after a writer that was killed. Used by every
file the course writes while a run may be cut off: the data cache (notebook 01), checkpoints (notebook 03), results
files and resume files (the studies).

The bytes go to ``<name>.tmp<pid>`` in the same folder, which is then renamed over ``<name>`` (``os.replace``:
atomic on one file system). An error removes the temporary file. A process killed while writing (SIGKILL, an
out-of-memory kill, a lost machine) cannot remove it; the next write of the same file does, once no process of that
number runs here and the file has not changed for :data:`STALE_AFTER_S` seconds (so that a writer on another machine
sharing the folder is never disturbed).
"""

from __future__ import annotations

import glob
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_AFTER_S = 600.0


def temporary_name(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else (PermissionError), or the question failed: keep its file
        return True
    return True


def remove_stale_temporaries(path: Path, *, now: float | None = None) -> list[Path]:
    """Remove ``<path>.tmp<pid>`` files left by killed writers: no process ``pid`` runs here, and the file is older
    than :data:`STALE_AFTER_S`. Returns what was removed. Does nothing except on POSIX systems (where signal 0 only
    asks; on Windows ``os.kill`` would end the process)."""
    if os.name != "posix":
        return []
    now = time.time() if now is None else now
    removed = []
    for name in glob.glob(glob.escape(str(path)) + ".tmp*"):
        candidate = Path(name)
        number = candidate.name[len(path.name) + 4:]
        if not number.isdigit() or int(number) == os.getpid():
            continue
        try:
            if now - candidate.stat().st_mtime < STALE_AFTER_S or _running(int(number)):
                continue
            candidate.unlink()
        except OSError:  # gone already, or not ours to remove: leave it
            continue
        removed.append(candidate)
    return removed


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """``with replacing(path) as tmp: write tmp`` puts the new file in place only when the block ends without an
    error; otherwise ``path`` is unchanged and ``tmp`` is removed. Creates the folder; removes stale temporaries. The
    new file keeps the old one's permissions, and a symbolic link stays a link (its target gets the new content)."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        try:
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        except OSError:  # no old file, or not ours to copy the permissions of: the new file keeps the defaults
            pass
        os.replace(tmp, path)
    finally:
        try:  # the clean-up must never hide an error above (on a read-only folder, unlink fails too)
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
