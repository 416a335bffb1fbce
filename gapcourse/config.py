"""Profiles and the environment variables the course reads, in one place.

Introduced in notebook 01. Every notebook starts with ``P = gapcourse.profile()`` and takes its sizes from it, so
the fast profile (CI, a quick look) and the full profile (the real course) run exactly the same code on different
amounts of the same real data.

Environment variables
---------------------
``GAPCOURSE_PROFILE``  ``full`` (default) or ``fast``.
``GAPCOURSE_DATA``     a local CIFAR-10 copy (see :mod:`gapcourse.data`), or ``synthetic`` for the labelled stand-in.
``GAPCOURSE_CACHE``    where decoded tensors, downloads and checkpoints go (default ``$XDG_CACHE_HOME/gapcourse``,
                       else ``~/.cache/gapcourse``).
``GAPCOURSE_DEVICE``   force ``cpu``, ``cuda`` or ``mps`` instead of picking the best available one.

Values are read with surrounding spaces removed (a path with a stray space is said to have had one, once), and ``~``
is expanded in the course's own path variables. ``XDG_CACHE_HOME`` follows the XDG specification: a relative value
(``~/x`` in quotes is one) is ignored, with a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import os

PROFILE_ENV = "GAPCOURSE_PROFILE"
DATA_ENV = "GAPCOURSE_DATA"
CACHE_ENV = "GAPCOURSE_CACHE"
DEVICE_ENV = "GAPCOURSE_DEVICE"


@dataclass(frozen=True)
class Profile:
    """How much data and training a notebook uses.

    ``train_per_class``/``test_per_class`` of ``None`` mean the whole split. ``epoch_scale`` multiplies the epochs a
    training preset asks for (and never goes below one epoch), so a fast run still does every step once.
    """

    name: str
    train_per_class: int | None
    test_per_class: int | None
    epoch_scale: float

    @property
    def is_fast(self) -> bool:
        return self.name == "fast"

    def epochs(self, full_epochs: int) -> int:
        """Epochs to run for a recipe that asks for ``full_epochs`` in the full profile (a number the user gives
        explicitly, e.g. ``train --epochs 3``, is passed to ``fit`` as it is and not scaled)."""
        return max(1, round(full_epochs * self.epoch_scale))


PROFILES = {
    "full": Profile("full", train_per_class=None, test_per_class=None, epoch_scale=1.0),
    # 2 000 training and 500 test images: enough for every plot and assert to mean something, seconds to train.
    "fast": Profile("fast", train_per_class=200, test_per_class=50, epoch_scale=0.0),
}


def profile(name: str | None = None, *, announce: bool = True) -> Profile:
    """Return the active profile: ``name`` if given, else ``$GAPCOURSE_PROFILE``, else ``full``."""
    chosen = (name or os.environ.get(PROFILE_ENV) or "full").strip().lower()
    if chosen not in PROFILES:
        raise ValueError(
            f"Unknown profile {chosen!r} (from {'argument' if name else PROFILE_ENV}). "
            f"Expected one of {sorted(PROFILES)}: e.g. `export {PROFILE_ENV}=fast`."
        )
    p = PROFILES[chosen]
    if announce:
        if p.is_fast:
            data = ("the SYNTHETIC stand-in" if os.environ.get(DATA_ENV, "").strip().lower() == "synthetic"
                    else "a small subset of CIFAR-10")
            print(f"Profile: fast ({PROFILE_ENV}=fast): {data}, short training. "
                  "Numbers are for checking the code, not for reading.")
        else:
            print(f"Profile: full (set {PROFILE_ENV}=fast for a quick run on a small subset).")
    return p


class CacheError(RuntimeError):
    """The cache folder cannot be used; the message names it and says how to move it."""


_SAID: set[str] = set()  # notes already printed in this process (each is said once, not at every call)


def _note_once(text: str) -> None:
    if text not in _SAID:
        _SAID.add(text)
        print(f"NOTE: {text}")


def env_text(name: str) -> str | None:
    """The environment variable ``name`` with surrounding spaces removed (None if unset or blank). When spaces were
    removed, says so once, showing the value exactly as it was read."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text != raw:
        _note_once(f"{name}={raw!r} has spaces around it; using {text!r}.")
    return text


def env_path(name: str) -> Path | None:
    """A path from the environment variable ``name``: spaces around it removed (see :func:`env_text`), ``~``
    expanded, made absolute (so every message shows where it really is). None if unset or blank."""
    text = env_text(name)
    return None if text is None else Path(text).expanduser().absolute()


def cache_location() -> tuple[Path, str]:
    """Where :func:`cache_dir` puts the cache, and where that setting came from; creates nothing."""
    path = env_path(CACHE_ENV)
    if path is not None:
        origin = f"from {CACHE_ENV}={os.environ[CACHE_ENV]!r}"
        if not Path(env_text(CACHE_ENV)).expanduser().is_absolute():
            _note_once(f"{CACHE_ENV}={env_text(CACHE_ENV)!r} is a relative path, read from the current folder: using "
                       f"{path}. A notebook runs in notebooks/ and would use another folder; set an absolute path "
                       "to share one cache.")
    else:
        xdg = env_text("XDG_CACHE_HOME")
        if xdg is not None and not Path(xdg).is_absolute():
            _note_once(f"XDG_CACHE_HOME={xdg!r} is a relative path, which the XDG specification says to ignore; "
                       f"using {Path.home() / '.cache'} (set an absolute path, or {CACHE_ENV}).")
            xdg = None
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "gapcourse"
        origin = ("from XDG_CACHE_HOME" if xdg else "the default") + f"; set {CACHE_ENV} to move it"
    return path, origin


def cache_dir() -> Path:
    """Folder for decoded datasets, downloads and checkpoints (created on first use): ``$GAPCOURSE_CACHE``, else
    ``$XDG_CACHE_HOME/gapcourse`` (only an absolute ``XDG_CACHE_HOME``, as the XDG specification says), else
    ``~/.cache/gapcourse``.

    Raises :class:`CacheError`, naming the folder, when it cannot be created (a file is in the way, no permission).
    """
    path, origin = cache_location()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CacheError(f"The cache folder {path} ({origin}) is a file, not a folder. Move that file away, or "
                         f"point {CACHE_ENV} at a folder, e.g. `export {CACHE_ENV}=/tmp/gapcourse`.") from None
    except OSError as err:
        raise CacheError(f"The cache folder {path} ({origin}) cannot be created: {err.strerror or err}. Point "
                         f"{CACHE_ENV} at a writable folder, e.g. `export {CACHE_ENV}=/tmp/gapcourse`.") from None
    if not path.is_dir():
        raise CacheError(f"The cache folder {path} ({origin}) is not a folder. Point {CACHE_ENV} at a folder.")
    return path


PACKAGE_DIR = Path(__file__).resolve().parent

RESULTS_DIR = PACKAGE_DIR / "results"


HEADLINE_ENV = "GAPCOURSE_HEADLINE"


def headline(text: str) -> None:
    """Record this notebook's headline result for the course index (does nothing outside ``make course``)."""
    target = os.environ.get(HEADLINE_ENV)
    if target:
        try:
            with open(target, "w") as fh:
                fh.write(text.replace("\t", " ").replace("\n", " ").strip())
        except OSError as err:  # a missing index entry must never stop a notebook
            print(f"(could not record the headline for the course index: {err})")
