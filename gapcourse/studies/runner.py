"""The one study runner and the one results store, used by every command that writes into
``gapcourse/results/``. :func:`run_plan` (plan, skip, write each run) runs the head comparison
(:mod:`~gapcourse.studies.heads`), the recipe ablation, the gpu study and the cpu-cutout check
(:mod:`~gapcourse.studies.ablation`), the budget table (:mod:`~gapcourse.studies.budget_table`) and the
budget-recipe study (:mod:`~gapcourse.studies.budget_recipe`); the speed bench's record (``bench --record`` and
``bench --verify-gpu --record``, :mod:`~gapcourse.studies.bench`), one measurement with no plan, uses the store alone
(:meth:`ResultsStore.update` replaces it whole). Two JSON writers stay outside: the run log of ``make course``
(:mod:`~gapcourse.studies.runlog`: ``course_times.json``, made whole from its log in the build folder, copied into
``gapcourse/results/`` by a maintainer) and the shipped weights' manifest (:mod:`~gapcourse.studies.export`).
A learner never needs it.

A study brings its own parts: its :class:`Shape` (what its file holds), its plan (one :class:`Run` per network,
with the *identity* that makes two runs the same run), what one run trains and measures, and the file's provenance.
:func:`run_plan` does the rest the same way for every study::

    plan → identity → skip what is recorded → (claim) → train and measure
         → lock → read, add, write with provenance

* **Read one way** (:func:`read_results`): the file through :func:`gapcourse.outputs.read_object`, then its shape
  (no top-level key but the study's, every record one of the study's); no file yet is an empty payload.
* **Written at once, resumable:** each finished run is added to the file as it ends, under the file's lock
  (:func:`gapcourse.outputs.locked`: another process adding its own runs to the same file waits, and both are kept),
  through :func:`gapcourse.studies.provenance.write_results` (the output guard, the data's provenance, no impossible
  values, atomic). A rerun skips every run already recorded.
* **A lock held by another process:** a study whose file must have one writer (``exclusive``: the budget-recipe
  study, whose plans every seed shares) is refused at once; a run that keeps its state between epochs (``resume``:
  the gpu study) is claimed while it trains, and skipped when another process holds the claim.
* **A write that fails keeps the result:** in a file beside (:func:`gapcourse.outputs.keep_after_failure`), or, for
  a resumable run, in its resume file; the error says where.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
import json
import os

from ..outputs import ResultsError, instead, keep_after_failure, locked, read_object
from .provenance import check_output, write_results


@dataclass(frozen=True)
class Shape:
    """What a study's results file holds: a JSON object with a list of records (``items``: ``runs`` or ``rows``),
    each one of the study's (``own``), the file's ``provenance``, the ``extra`` JSON objects named (e.g. the
    budget-recipe study's ``plans``) and the single ``values`` named, which the writer sets whole and a file may lack
    (e.g. the bench record's ``header``); nothing else. ``what`` names the file in messages (``"budget table"``),
    ``study`` the study (``"the budget table"``), ``expected`` says what the file should hold."""

    what: str
    study: str
    expected: str
    items: str = "runs"
    own: Callable[[dict], bool] = field(default=lambda item: True)
    extra: tuple[str, ...] = ()
    values: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """The file's top-level keys besides ``provenance``."""
        return (self.items, *self.extra, *self.values)

    def empty(self) -> dict[str, Any]:
        """The payload of a file that does not exist yet."""
        return {self.items: [], **{key: {} for key in self.extra}}

    def check(self, payload: dict[str, Any], path: str | os.PathLike, *, fixed_by: str | None = None) -> dict[str, Any]:
        """``payload`` (read from ``path``) with its missing keys added; :class:`ResultsError` for a file of another
        shape (``fixed_by``: a file whose place no option chooses, see :func:`gapcourse.outputs.guard`)."""
        foreign = set(payload) - set(self.keys) - {"provenance"}
        items = payload.setdefault(self.items, [])
        extras = [payload.setdefault(key, {}) for key in self.extra]
        if foreign or not isinstance(items, list) or not all(isinstance(i, dict) and self.own(i) for i in items) \
                or not all(isinstance(e, dict) for e in extras):
            article = "an" if self.what[:1] in "aeiou" else "a"
            raise ResultsError(f"{path} is not {article} {self.what} (expected {self.expected}); "
                               f"{instead(path, fixed_by=fixed_by)}.")
        return payload


def read_results(path: str | os.PathLike, shape: Shape, *, fixed_by: str | None = None) -> dict[str, Any]:
    """The results in ``path``, checked against the study's ``shape``; the empty payload when there is no file.
    The one way every study reads its file. Raises :class:`ResultsError` (a folder, not JSON, another shape).
    ``fixed_by``: a file whose place no option chooses (``bench --record``), see :func:`gapcourse.outputs.guard`."""
    payload = read_object(Path(path), shape.what, fixed_by=fixed_by)
    return shape.empty() if payload is None else shape.check(payload, path, fixed_by=fixed_by)


@dataclass
class Run:
    """One run of a study's plan. ``identity``: what makes two runs the same run (recorded in the run's record);
    ``same``: the identity's keys that decide it (default: all of them; e.g. a label that changes no network is left
    out); ``label``: the run in messages (``"fp32, 60 s, seed 0"``); ``resume``: where a resumable run keeps its state
    between epochs (claimed while it trains, removed once recorded); ``spec``: the study's own description of the
    run (its recipe, regime, data...), for the study's function that trains it."""

    identity: dict[str, Any]
    label: str
    same: tuple[str, ...] | None = None
    resume: Path | None = None
    spec: Any = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether ``record`` (a recorded run) is this run."""
        return all(record.get(k) == self.identity[k] for k in (self.same or tuple(self.identity)))


Provenance = Callable[[dict[str, Any]], dict[str, Any]]  # the file's provenance, from the payload about to be written


class ResultsStore:
    """A study's results file: read (:func:`read_results`), asked whether a run is recorded, and added to under its
    lock with provenance. ``path=None`` keeps the results in memory. Make one with :func:`open_store`."""

    def __init__(self, path: Path | None, shape: Shape, data: dict[str, Any], *, writer: str,
                 exclusive: bool = False, fixed_by: str | None = None) -> None:
        self.path, self.shape, self.data, self.writer, self.exclusive = path, shape, data, writer, exclusive
        self.fixed_by = fixed_by  # the flag that writes a file no option names (bench's --record), for messages
        self._memory = {**shape.empty(), "provenance": dict(data)}
        self._held = False  # whether this process's exclusive session holds the file's lock

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "memory"

    def read(self) -> dict[str, Any]:
        """The results as they are now (with what other processes added)."""
        return self._memory if self.path is None else read_results(self.path, self.shape, fixed_by=self.fixed_by)

    def recorded(self, run: Run, payload: dict[str, Any] | None = None) -> bool:
        """Whether ``run`` is in the file (or in ``payload``, read from it)."""
        return any(run.matches(item) for item in (self.read() if payload is None else payload)[self.shape.items])

    @contextmanager
    def session(self) -> Iterator[None]:
        """For an ``exclusive`` store, hold the file's lock throughout (refused at once, with what to do, when
        another process holds it; re-entrant); otherwise nothing: each write takes the lock itself."""
        if not self.exclusive or self.path is None or self._held:  # (the outer session of this process holds it)
            yield
            return
        with locked(self.path, wait=False) as held:
            if not held:
                raise ResultsError(f"Another {self.writer} run is writing {self.path}; wait for it"
                                   + (", or pass another --output." if self.fixed_by is None else "."))
            self._held = True
            try:
                yield
            finally:
                self._held = False

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self.path is None or self._held:  # in memory, or the session holds the lock
            yield
            return
        with locked(self.path):  # waits for another process's read-add-write
            yield

    def update(self, change: Callable[[dict[str, Any]], None], provenance: Provenance) -> dict[str, Any]:
        """Under the file's lock: read it, ``change`` the payload in place, set its provenance and write it (through
        :func:`gapcourse.studies.provenance.write_results`). Returns the payload written."""
        with self._writing():
            payload = self.read()
            change(payload)
            payload["provenance"] = provenance(payload)
            if self.path is None:
                payload["provenance"].update(self.data)
                return payload
            write_results(self.path, payload, self.data, writer=self.writer, fixed_by=self.fixed_by)
            return payload

    def add(self, run: Run, record: dict[str, Any], provenance: Provenance) -> dict[str, Any]:
        """Add ``record`` (a finished ``run``) to the file unless another process recorded the run meanwhile.
        A write that fails (the file became a folder, a full disk, a refusal...) keeps the record: a resumable run
        in its resume file, any other in a file beside; the :class:`ResultsError` says where."""
        items = self.shape.items

        def append(payload: dict[str, Any]) -> None:
            if not self.recorded(run, payload):
                payload[items].append(record)

        try:
            return self.update(append, provenance)
        except (OSError, ValueError) as err:
            if run.resume is not None:
                raise ResultsError(f"{err} The trained run is kept in {run.resume}: once the results file is fixed "
                                   "or moved, the same command records it without training again.") from None
            try:
                made = {**provenance({items: [record]}), **self.data}
            except (OSError, ValueError, KeyError):
                made = dict(self.data)
            kept = {items: [record], "provenance": made}
            keep_after_failure(self.path, json.dumps(kept, indent=1) + "\n", what=self.shape.what,
                               work=f"the trained {items[:-1]} ({run.label})", error=err)
            raise  # (keep_after_failure always raises)


def open_store(path: str | os.PathLike | None, shape: Shape, data: dict[str, Any], *, writer: str,
               exclusive: bool = False, fixed_by: str | None = None) -> ResultsStore:
    """The study's results store at ``path``, checked before any work: the output guard and the experiment's data
    (:func:`gapcourse.studies.provenance.check_output`: never the committed file from a fast or synthetic run, never
    another experiment's or another study's file), then the file's shape. ``data``
    (:func:`gapcourse.studies.provenance.data_record`) goes into every write's provenance. ``exclusive``: one writer
    at a time (see :meth:`ResultsStore.session`). ``fixed_by``: the flag that writes a file whose place no option
    chooses (``bench --record``): refusals say to move that file away (:func:`gapcourse.outputs.instead`)."""
    if path is None:
        return ResultsStore(None, shape, data, writer=writer)
    # A file of runs is told apart by its keys and its runs, the bench record by its keys, a file of rows (the budget
    # table) by its shape alone.
    by_runs = shape.items == "runs"
    checked = check_output(path, data, own_run=shape.own if by_runs else None, study=shape.study, writer=writer,
                           keys=shape.keys if by_runs or shape.values else None, fixed_by=fixed_by)
    store = ResultsStore(checked, shape, data, writer=writer, exclusive=exclusive, fixed_by=fixed_by)
    store.read()
    return store


def run_plan(store: ResultsStore, plan: Iterable[Run], train: Callable[[Run], dict[str, Any]], *,
             provenance: Provenance, quiet: bool = False) -> dict[str, Any]:
    """Train every run of ``plan`` not yet recorded in ``store`` (``train(run)``: the run's record, its identity
    included) and add each to the file as it ends, with ``provenance(payload)`` as the file's provenance. Says each
    run skipped (unless ``quiet``). A resumable run (``run.resume``) is claimed (``<resume>.claim``) while it trains
    and until it is recorded; one claimed by another process is skipped, and its resume file is removed once the run
    is recorded. Returns the results as they are at the end (with other processes' runs)."""
    with store.session():
        for run in plan:
            if store.recorded(run):
                _skipped(store, run, quiet)
                continue
            with _claimed(run) as held:
                if not held:
                    print(f"{run.label}: another process is training this run (it holds {run.resume.name}.claim), "
                          "skipped; that process writes it to its own results file (the same command started in "
                          "several terminals trains different runs)", flush=True)
                    continue
                if run.resume is not None and store.recorded(run):  # finished by another process meanwhile
                    _skipped(store, run, quiet)
                    continue
                store.add(run, train(run), provenance)
                if run.resume is not None:
                    run.resume.unlink(missing_ok=True)  # the run is in the results file now
    return store.read()


def _skipped(store: ResultsStore, run: Run, quiet: bool) -> None:
    if not quiet:
        print(f"{run.label}: already in {store.name}, skipped", flush=True)
    if run.resume is not None and run.resume.exists():  # a state no process is using, left by a run that ended
        with locked(run.resume, wait=False, suffix=".claim") as free:  # between its results and its clean-up
            if free:
                run.resume.unlink(missing_ok=True)


@contextmanager
def _claimed(run: Run) -> Iterator[bool]:
    """This process's claim on a resumable run (an exclusive, non-blocking lock on ``<resume file>.claim``): True
    while held, False when another process holds it; True (nothing to claim) for a run without a resume file.
    (``fit_resumable`` locks ``<resume file>.lock`` itself, for any caller; the claim also covers the results check.)"""
    if run.resume is None:
        yield True
        return
    from .resume import ResumeError

    with ExitStack() as stack:
        try:
            held = stack.enter_context(locked(run.resume, wait=False, suffix=".claim"))
        except OSError as err:
            raise ResumeError(f"Cannot create or write in the study's resume folder {run.resume.parent} "
                              f"({type(err).__name__}: {err.strerror or err}). Set GAPCOURSE_CACHE to a writable "
                              "folder; nothing was trained.") from None
        yield held
