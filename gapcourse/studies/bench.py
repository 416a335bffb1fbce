"""The speed and accuracy benchmark behind ``python -m gapcourse bench``; prints one Markdown table.

For every preset: training and evaluation images/s and the data pipeline's share of a training step (measured over
a few steps); for the presets trained to the end: time to 70/80/90 % test accuracy (at epoch resolution), final
accuracy, training seconds and peak memory. In the same run, a per-sample PIL ``DataLoader`` (torchvision
transforms, the classic tutorial pipeline) against the course's batched tensor pipeline, as images/s and a ratio.
docs/RESULTS.md shows its output from real runs. ``--record`` writes it to gapcourse/results/bench_<device>.json
through the studies' results store (:func:`open_record`, :func:`write_record`; its shape :data:`RECORD`).

Training speed is the speed of :func:`~gapcourse.train.fit` itself (its step: EMA, gradient scaler, fused
optimizer, parameter groups, batches built on the device from images kept there), timed with one synchronisation per
epoch of N steps, as ``fit`` runs. Evaluation is warmed up on the very batch shapes it then times.

``bench --verify-gpu`` is the check for anyone with a CUDA GPU (:func:`verify_gpu`): (a) N training steps of ``fit``
under ``torch.cuda.set_sync_debug_mode("error")``, switched on after setup and the first step, naming the line of
any sync (:func:`audit_steps`); (b) ``fit``'s step timed; (c) the gpu preset trained to the end, with its time to
90/92/93 % and its test-time-augmented accuracy; (d) on a bf16 GPU the same in forced fp16, standing in for a T4.
``--dry-run`` runs the same logic on the CPU with the CUDA parts faked (:class:`HostSyncStandIn`), which is how CI
tests it. Introduced in no notebook: docs/RESULTS.md, "Speed: the benchmark".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..config import PACKAGE_DIR, profile as active_profile
from ..data import MEAN, STD, Cifar10Split, load_cifar10, normalize
from ..device import describe_device, pick_device, seed_everything
from ..models import build_net
from ..pipeline import batches, num_batches
from ..recipes import PRESETS, Recipe, choose_precision, native_precision, resolve_precision
from ..train import device_settings, fit, predict_logits, synchronize
from .provenance import default_output, provenance
from .runner import ResultsStore, Shape, open_store

THRESHOLDS = (0.70, 0.80, 0.85, 0.88, 0.90, 0.92, 0.93)


@dataclass
class Row:
    preset: str
    width: float
    precision: str
    train_ips: float
    eval_ips: float  # one view per image (no test-time augmentation)
    eval_tta_ips: float  # with the preset's test-time augmentation
    data_share: float
    to_threshold: dict[float, float | None] | None = None
    final_acc: float | None = None
    train_s: float | None = None
    peak_mem_mb: float | None = None
    recipe: str = ""  # Recipe.describe() of the preset as measured (a test checks it is still the preset)


def time_to_accuracy(seconds: list[float], accuracies: list[float], threshold: float) -> float | None:
    """Training seconds at the end of the first epoch whose test accuracy reached ``threshold`` (None: never)."""
    return next((s for s, a in zip(seconds, accuracies) if a >= threshold), None)


WARMUP_STEPS = 3  # untimed steps first: they pick kernels (cuDNN autotuning) and fill caches


def resident(data: Cifar10Split, device: torch.device) -> Cifar10Split:
    """The split with its images and labels on ``device``, as :func:`fit` keeps them on an accelerator."""
    if data.images.device == device or device.type == "cpu":
        return data
    return replace(data, images=data.images.to(device), labels=data.labels.to(device))


def _head(data: Cifar10Split, n: int) -> Cifar10Split:
    return replace(data, images=data.images[:n], labels=data.labels[:n])


def measure_throughput(recipe: Recipe, data: Cifar10Split, device: torch.device, steps: int = 12, *,
                       warmup: int = WARMUP_STEPS, fused: bool | None = None) -> tuple[float, float, float, float]:
    """(train images/s, eval images/s with one view, eval images/s with the preset's test-time augmentation,
    share of a training step spent making the batch).

    Training: :func:`fit` itself, first for ``warmup`` untimed steps, then for ``steps`` steps (whole
    epochs of the first ``steps`` batches of ``data``, repeated if ``data`` is smaller) timed by ``fit``'s own clock,
    which synchronises once per epoch. Full-resolution steps (no progressive resizing). The data share: the same
    epochs' batches made alone, one synchronisation at the end. Evaluation: :func:`predict_logits` on up to 4 000
    images resident on the device, warmed up on exactly those images (same batch shapes) before it is timed.
    ``fused``: fit's choice of optimizer (default: the device's; see :func:`gapcourse.train.make_optimizer`)."""
    device = torch.device(device)
    recipe = replace(recipe, low_res_epochs=0)
    data = resident(data, device)
    torch.manual_seed(0)
    model = build_net(width=recipe.width)
    n = min(len(data), steps * recipe.batch_size)
    drop_last = n > recipe.batch_size
    per_epoch = num_batches(n, recipe.batch_size, drop_last=drop_last)
    epochs = -(-steps // per_epoch)
    images = epochs * (per_epoch * recipe.batch_size if drop_last else n)
    quiet = dict(device=device, progress=False, generator=torch.Generator().manual_seed(0), fused=fused)
    fit(model, _head(data, min(len(data), warmup * recipe.batch_size)), None, recipe, epochs=1, **quiet)
    train_s = fit(model, _head(data, n), None, recipe, epochs=epochs, **quiet).train_seconds

    generator = torch.Generator().manual_seed(0)
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for _batch in batches(_head(data, n), recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                              generator=generator, device=device, drop_last=drop_last, cutout=recipe.cutout):
            pass
    synchronize(device)
    data_s = time.perf_counter() - t0

    rates = []
    eval_images = data.images[:min(len(data), 4000)]
    with device_settings(device, resolve_precision(recipe, device)):
        for tta in ("none", recipe.tta):
            timed = replace(recipe, tta=tta)
            predict_logits(model, eval_images, device=device, recipe=timed)  # warm-up on the timed shapes
            synchronize(device)
            t0 = time.perf_counter()
            predict_logits(model, eval_images, device=device, recipe=timed)
            synchronize(device)
            rates.append(len(eval_images) / (time.perf_counter() - t0))
    return images / train_s, rates[0], rates[1], min(1.0, data_s / train_s)


class _PilDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 dataset does per item: a PIL image, then the transform."""

    def __init__(self, data: Cifar10Split, transform):
        self.images = data.images.permute(0, 2, 3, 1).numpy()
        self.labels = data.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def pil_vs_tensor(data: Cifar10Split, n: int = 6000, batch_size: int = 256) -> tuple[float, float]:
    """Images/s of the classic per-sample PIL pipeline (DataLoader, num_workers=0) and of :func:`batches`, both
    doing random crop with 4 px padding, horizontal flip and normalisation into float batches."""
    from torchvision import transforms as T

    subset = data if len(data) <= n else Cifar10Split(data.images[:n], data.labels[:n], data.split, data.source)
    transform = T.Compose([T.RandomCrop(32, padding=4, padding_mode="reflect"), T.RandomHorizontalFlip(),
                           T.ToTensor(), T.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(_PilDataset(subset, transform), batch_size=batch_size, shuffle=True,
                                         num_workers=0, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    seen = sum(len(y) for _, y in loader)
    pil = seen / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    seen = sum(len(y) for _, y in batches(subset, batch_size, shuffle=True, augment_padding=4,
                                          generator=torch.Generator().manual_seed(0)))
    tensor = seen / (time.perf_counter() - t0)
    return pil, tensor


def peak_rss_mb(maxrss: int | None = None, system: str = sys.platform) -> float:
    """The process's peak resident memory in MB. ``ru_maxrss`` is in bytes on macOS and KiB on Linux."""
    if maxrss is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if system == "darwin" else maxrss / 1024


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


TABLE_COLUMNS = "| preset | width | precision | train img/s |"  # how each table bench writes begins


def is_table(text: str) -> bool:
    """Whether ``text`` (the start of an existing file) is a table as ``bench --output`` writes it (a header line,
    then the Markdown table of :func:`format_table`): the only file ``--output`` replaces."""
    return any(line.startswith(TABLE_COLUMNS) for line in text.splitlines()[:40])


def format_table(rows: list[Row], pil: float, tensor: float, header: str) -> str:
    def fmt_s(v):
        return "–" if v is None else f"{v:.0f} s"

    lines = [header, "",
             "| preset | width | precision | train img/s | eval img/s (1 view) | eval img/s (TTA) | data share of "
             "step | " + " | ".join(f"to {100 * t:.0f} %" for t in THRESHOLDS)
             + " | final test acc | training time | peak memory |",
             "|" + "---|" * (10 + len(THRESHOLDS))]
    for r in rows:
        t = r.to_threshold or {}
        lines.append(
            f"| {r.preset} | {r.width} | {r.precision} | {r.train_ips:,.0f} | {r.eval_ips:,.0f} | "
            f"{r.eval_tta_ips:,.0f} | {r.data_share:.1%} | " + " | ".join(fmt_s(t.get(th)) for th in THRESHOLDS)
            + f" | {'–' if r.final_acc is None else f'{r.final_acc:.2%}'} | {fmt_s(r.train_s)} | "
            f"{'–' if r.peak_mem_mb is None else f'{r.peak_mem_mb:,.0f} MB'} |")
    lines += ["", f"Augmentation pipelines (random crop + flip + normalise, batches of 256, one process): per-sample "
                  f"PIL DataLoader {pil:,.0f} img/s, batched tensor pipeline {tensor:,.0f} img/s: "
                  f"**{tensor / pil:.1f}×**."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# The record (bench --record, bench --verify-gpu --record): gapcourse/results/bench_<device>.json

RECORD = Shape("bench record", "the benchmark",
               "a JSON object with the table's 'header', 'pil_img_s', 'tensor_img_s' and 'rows' (one per preset), "
               "the sync audits of --verify-gpu ('sync_audits') and its 'provenance'",
               items="rows", own=lambda row: "preset" in row,
               values=("header", "pil_img_s", "tensor_img_s", "sync_audits"))


def open_record(device: torch.device, data: dict[str, Any]) -> ResultsStore:
    """The results store of ``--record``, checked before the benchmark runs (the output guard, the experiment's data,
    the file's shape): gapcourse/results/bench_<device type>.json when this run may regenerate it, else a file in the
    cache folder (:func:`~gapcourse.studies.provenance.default_output`: a fast or synthetic run never touches the
    committed record). ``data``: :func:`~gapcourse.studies.provenance.data_record`."""
    from ..config import RESULTS_DIR

    return open_store(default_output(RESULTS_DIR / f"bench_{device.type}.json", data), RECORD, data, writer="bench",
                      fixed_by="--record")  # (no option chooses the record's place: refusals say to move it away)


def record_payload(header: str, pil: float, tensor: float, rows: list[Row],
                   audits: list[SyncAudit] | None = None) -> dict[str, Any]:
    """A bench record without its provenance: the table's header, the two pipelines' images/s, one row per preset
    (thresholds as strings, as JSON keys are) and, from ``--verify-gpu``, the sync audits."""
    payload = {"header": header, "pil_img_s": pil, "tensor_img_s": tensor,
               "rows": [{**asdict(r), "to_threshold": {str(k): v for k, v in (r.to_threshold or {}).items()}}
                        for r in rows]}
    if audits is not None:
        payload["sync_audits"] = [{**asdict(a), "clean": a.clean} for a in audits]
    return payload


def write_record(store: ResultsStore, payload: dict[str, Any], *, device: torch.device, started: float,
                 **extra: Any) -> Path:
    """Write ``payload`` (:func:`record_payload`) into ``store`` with its provenance (the seconds since ``started``,
    ``extra``: profile and image counts), under the file's lock: a record is one measurement, so it replaces the one
    there whole. Says where; returns the path. Refusals (impossible values...) raise :class:`ResultsError`."""
    def replace_record(old: dict[str, Any]) -> None:
        old.clear()
        old.update({"provenance": {}, **payload})  # (provenance first, as in the committed records)

    store.update(replace_record, lambda _: provenance(device=device, seconds=time.perf_counter() - started, **extra))
    print(f"recorded: {store.path}")
    return store.path


# ---------------------------------------------------------------------------------------------------------------------
# Sync audit and GPU verification (bench --verify-gpu)

VERIFY_STEPS = 20
VERIFY_THRESHOLDS = (0.90, 0.92, 0.93)
_ATEN = torch.ops.aten


@contextlib.contextmanager
def cuda_sync_guard():
    """``torch.cuda.set_sync_debug_mode("error")``: every operation that makes the CPU wait for the GPU raises a
    ``RuntimeError`` ("called a synchronizing CUDA operation"). The previous mode is restored on exit."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class HostSyncStandIn(TorchDispatchMode):
    """A CPU stand-in for :func:`cuda_sync_guard`, so the audit's own logic runs without a GPU. It raises, as CUDA's
    debug mode would, on what makes a CPU wait for a GPU: a scalar read (``.item()``, ``float(t)``, ``if t:``), a
    tensor built from Python data (``torch.tensor(list, device=…)`` is a blocking copy from pageable memory on CUDA)
    and a copy from an accelerator back to the host. (``.tolist()`` of a CPU tensor reads memory directly and is
    not seen: on a CPU, fit's one read per epoch goes unnoticed.)"""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        what = None
        if func is _ATEN._local_scalar_dense.default:
            what = "a scalar read (.item())"
        elif func in (_ATEN.lift_fresh.default, _ATEN.lift_fresh_copy.default):
            what = "a tensor built from Python data (torch.tensor(...): a blocking copy on CUDA)"
        elif func in (_ATEN._to_copy.default, _ATEN.copy_.default):
            src = args[1] if func is _ATEN.copy_.default else args[0]
            dst = args[0].device if func is _ATEN.copy_.default else torch.device(kwargs.get("device") or src.device)
            if src.device.type != "cpu" and dst.type == "cpu":
                what = "a copy from the device to the host"
        if what:
            raise RuntimeError(f"called a synchronizing operation (CPU stand-in for CUDA's sync debug mode): {what}")
        return func(*args, **kwargs)


@dataclass
class SyncAudit:
    """What :func:`audit_steps` saw: ``reached`` of ``steps`` training steps started (the guard on from step
    ``guarded_from``), and the course's line that synchronised first (``None``: none did), with the innermost line
    outside torch."""

    precision: str
    steps: int
    reached: int
    guarded_from: int = 2
    sync_at: str | None = None
    origin: str | None = None
    epoch_read: bool = False  # the sync was fit's one read of the epoch's numbers, after its last step

    @property
    def clean(self) -> bool:
        return self.reached == self.steps and (self.sync_at is None or self.epoch_read)

    def describe(self) -> str:
        guarded = f"steps {self.guarded_from}–{self.steps} of {self.steps} guarded"
        if self.epoch_read:
            return f"{self.precision}: {guarded}, no sync until fit's one read per epoch ({self.sync_at})"
        if self.sync_at is not None or self.origin is not None:
            source = f" (from {self.origin})" if self.origin != self.sync_at else ""
            return (f"{self.precision}: a sync stopped training in step {self.reached} of {self.steps}, at "
                    f"{self.sync_at or self.origin}{source}")
        if self.reached < self.steps:
            return f"{self.precision}: only {self.reached} of {self.steps} steps ran"
        return f"{self.precision}: {guarded}, no sync"


def _where(frame: traceback.FrameSummary) -> str:
    package = str(PACKAGE_DIR)
    name = os.path.relpath(frame.filename, os.path.dirname(package)) if frame.filename.startswith(package) else \
        frame.filename
    return f"{name}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}"


def _sync_location(tb) -> tuple[traceback.FrameSummary | None, traceback.FrameSummary | None]:
    """The innermost frame in the course's package and the innermost outside torch (neither in this audit)."""
    package = str(PACKAGE_DIR)
    torch_dir = os.path.dirname(os.path.abspath(torch.__file__))
    frames = traceback.extract_tb(tb)
    course = [f for f in frames if f.filename.startswith(package) and os.path.abspath(f.filename) != __file__]
    outside = [f for f in frames if not f.filename.startswith(torch_dir) and os.path.abspath(f.filename) != __file__]
    return (course[-1] if course else None), (outside[-1] if outside else None)


def audit_steps(recipe: Recipe, device: torch.device | str, steps: int = VERIFY_STEPS, *, guard=None,
                guard_from: int = 2, seed: int = 0, fused: bool | None = None) -> SyncAudit:
    """Train ``steps`` steps of :func:`fit` (one epoch of random images) with every synchronisation turned into an
    error from step ``guard_from`` on, and say where the first one came from.

    Setup happens before the guard: the images and labels are put on the device, ``normalize``'s constants are
    uploaded, the network is built there, and ``fit`` does its own setup and its per-epoch work (the epoch's random
    draws, one pinned copy). The guard (default: :func:`cuda_sync_guard` on CUDA, :class:`HostSyncStandIn`
    elsewhere) switches on in a hook that runs as the forward pass of step ``guard_from`` begins: the first step
    does one-time work (cuDNN autotuning, cuBLAS handles, the gradient scaler's and optimizer's state), the second is
    the first ordinary one. So a setup copy cannot be blamed on training, and the line that synchronised is read
    from the traceback. On CUDA, ``fit``'s one read per epoch (after the last step) is expected to raise; anything
    earlier is a per-step sync. ``fused``: fit's choice of optimizer (``True`` on a CPU stands in for CUDA's)."""
    if not 1 <= guard_from <= steps:
        raise ValueError(f"guard_from={guard_from}: expected a step from 1 to steps={steps}.")
    device = torch.device(device)
    guard = guard or (cuda_sync_guard if device.type == "cuda" else HostSyncStandIn)
    recipe = replace(recipe, low_res_epochs=0)
    precision = resolve_precision(recipe, device).mode
    n = steps * recipe.batch_size
    gen = torch.Generator().manual_seed(seed)
    data = resident(Cifar10Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                                 torch.arange(n) % 10, "train", "random"), device)
    normalize(data.images[:1])  # normalize's constants reach the device now (then they are cached)
    torch.manual_seed(seed)
    model = build_net(width=recipe.width).to(device)
    synchronize(device)

    audit = SyncAudit(precision, steps, 0, guard_from)
    guarded = contextlib.ExitStack()

    def start(_module, _inputs):
        audit.reached += 1
        if audit.reached == guard_from:
            guarded.enter_context(guard())

    hook = model.register_forward_pre_hook(start)
    try:
        with guarded:
            fit(model, data, None, recipe, device=device, epochs=1, progress=False, generator=gen, fused=fused)
    except RuntimeError as err:
        if "synchroniz" not in str(err):
            raise
        course, outside = _sync_location(err.__traceback__)
        audit.sync_at = _where(course) if course else None
        audit.origin = _where(outside) if outside else None
        audit.epoch_read = (audit.reached == steps and course is not None and course.name == "epoch_numbers"
                            and "tolist()" in (course.line or ""))
    finally:
        hook.remove()
    return audit


def verify_gpu(train: Cifar10Split, test: Cifar10Split, device: torch.device, *, recipe: Recipe | None = None,
               capability: tuple[int, int] | None = None, steps: int = VERIFY_STEPS, warmup: int = WARMUP_STEPS,
               epochs: int | None = None, profile=None, guard=None, fused: bool | None = None
               ) -> tuple[list[Row], list[SyncAudit]]:
    """(a) :func:`audit_steps`, (b) :func:`measure_throughput` (fit's own step), (c) the recipe (default: the gpu
    preset) trained to the end with its time to :data:`VERIFY_THRESHOLDS` and its test-time-augmented accuracy, in
    the GPU's native precision, and (d) on a bf16 GPU all of it again in forced fp16, standing in for a T4.
    ``capability`` overrides the device's (the dry run uses (9, 0)), and ``fused=True`` gives a CPU fit's optimizer
    as on CUDA (fused, with its zero momentum buffers)."""
    base = recipe or PRESETS["gpu"]
    native = native_precision(device) if capability is None else choose_precision("cuda", capability)
    modes = [native.mode] + (["fp16"] if native.mode == "bf16" else [])
    rows, audits = [], []
    for mode in modes:
        run = replace(base, precision=mode)
        label = run.name if mode == native.mode else f"{run.name} (fp16, T4 stand-in)"
        audit = audit_steps(run, device, steps, guard=guard, fused=fused)
        audits.append(audit)
        print(("sync audit ok: " if audit.clean else "SYNC AUDIT FAILED: ") + audit.describe(), flush=True)
        train_ips, eval_ips, eval_tta_ips, share = measure_throughput(run, train, device, steps=steps, warmup=warmup,
                                                                      fused=fused)
        row = Row(label, run.width, mode, train_ips, eval_ips, eval_tta_ips, share, recipe=run.describe())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        history = fit(build_net(width=run.width), train, test, run, device=device, generator=seed_everything(0),
                      profile=profile, epochs=epochs, progress=False, fused=fused)
        row.to_threshold = {th: time_to_accuracy(history.seconds, history.test_acc, th) for th in THRESHOLDS}
        row.final_acc, row.train_s, row.peak_mem_mb = history.test_acc[-1], history.train_seconds, _peak_mem_mb(device)
        reached = ", ".join(f"{100 * th:.0f} % " + ("–" if row.to_threshold[th] is None else
                                                     f"{row.to_threshold[th]:.1f} s") for th in VERIFY_THRESHOLDS)
        print(f"{label} ({mode}): {train_ips:,.0f} train img/s; to {reached}; test accuracy with {run.tta} TTA "
              f"{row.final_acc:.2%} after {row.train_s:.1f} s of training", flush=True)
        rows.append(row)
    return rows, audits


def verify_markdown(payload: dict) -> str:
    """The sync audits of a ``--verify-gpu`` record, one line each (below its benchmark table)."""
    audits = [SyncAudit(**{k: v for k, v in a.items() if k != "clean"}) for a in payload.get("sync_audits", [])]
    return "\n".join(f"* sync audit {'ok' if a.clean else 'FAILED'}: {a.describe()}" for a in audits)


def _dry_run_data(n_train: int = 24, n_test: int = 8) -> tuple[Cifar10Split, Cifar10Split]:
    gen = torch.Generator().manual_seed(0)

    def split(n, name):
        return Cifar10Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                            torch.arange(n) % 10, name, "random (dry run)")

    return split(n_train, "train"), split(n_test, "test")


def _verify_main(args: argparse.Namespace, started: float) -> int:
    """``bench --verify-gpu [--dry-run] [--record] [--output FILE]``: exit 0 if every sync audit is clean, 1 if
    not, 2 without a CUDA GPU (unless ``--dry-run``) or with an output that cannot be written."""
    from ..outputs import guard, write_or_keep
    from .provenance import data_record

    dry_run = getattr(args, "dry_run", False)
    if not dry_run and not torch.cuda.is_available():
        print("error: bench --verify-gpu needs a CUDA GPU, and torch sees none here (torch.cuda.is_available() is "
              "False). Run it on a machine with one (e.g. Colab with a GPU runtime), or add --dry-run to check the "
              "command's own logic on this CPU.", file=sys.stderr)
        return 2
    if args.output:
        args.output = guard(args.output, writer="bench", kind="markdown", own=is_table)
    if dry_run:  # the same logic on the CPU: random images, a small network, CUDA's guard and kernels faked
        device, prof = torch.device("cpu"), active_profile("fast", announce=False)
        train, test = _dry_run_data()
        recipe = replace(PRESETS["gpu"], width=0.25, batch_size=8, epochs=1)
        # fit's optimizer as on CUDA (fused), here the CPU kernel; this CPU has no fast fp16: keep the dry run small
        rows, audits = verify_gpu(train, test, device, recipe=recipe, capability=(9, 0), steps=2, warmup=1,
                                  epochs=1, profile=prof, guard=HostSyncStandIn, fused=True)
        where = "DRY RUN on the CPU (random images; sync guard, fused optimizer and bf16 capability faked)"
        store = None
    else:
        device = torch.device("cuda")
        prof = active_profile(args.profile)
        train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
        store = open_record(device, data_record(prof.name, train)) if args.record else None
        rows, audits = verify_gpu(train, test, device, profile=prof)
        where = describe_device(device)
    pil, tensor = pil_vs_tensor(train)
    header = (f"GPU verification (`bench --verify-gpu`) on {where}; torch {torch.__version__}; profile {prof.name} "
              f"({len(train)} train / {len(test)} test images). Times are training only, at epoch resolution, "
              f"judged on one view per image after each epoch; the final accuracy uses the preset's test-time "
              f"augmentation.")
    payload = record_payload(header, pil, tensor, rows, audits)
    table = table_from_record(payload)
    print("\n" + table)
    if args.record and dry_run:
        print("dry run: nothing recorded (gapcourse/results/ holds measurements only)")
    elif store is not None:
        write_record(store, payload, device=device, started=started, profile=prof.name, n_train=len(train),
                     n_test=len(test))
    if args.output:
        written = write_or_keep(args.output, table + "\n", what="Markdown table", work="the table")
        print(f"written: {written}")
    return 0 if all(a.clean for a in audits) else 1


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if getattr(args, "verify_gpu", False) or getattr(args, "dry_run", False):
        if not getattr(args, "verify_gpu", False):
            print("error: --dry-run goes with --verify-gpu (it checks that command's logic on the CPU).",
                  file=sys.stderr)
            return 2
        return _verify_main(args, started)
    from ..outputs import guard, write_or_keep
    from .provenance import data_record

    prof = active_profile(args.profile)
    device = pick_device(args.device)
    if args.output:  # before any data is loaded: a committed file, a JSON or other kind of file, not writable
        args.output = guard(args.output, writer="bench", kind="markdown", own=is_table)
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    # Where the record goes is checked before the benchmark runs (see open_record).
    store = open_record(device, data_record(prof.name, train)) if args.record else None
    default = {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
    to_train = args.train if args.train is not None else [default]
    presets = [name for name in PRESETS if (name != "gpu" or device.type == "cuda")
               and (name != "mps" or device.type == "mps")]
    rows = []
    for name in presets:
        recipe = replace(PRESETS[name], precision=resolve_precision(PRESETS[name], device).mode)
        train_ips, eval_ips, eval_tta_ips, share = measure_throughput(recipe, train, device)
        row = Row(name, recipe.width, recipe.precision, train_ips, eval_ips, eval_tta_ips, share,
                  recipe=recipe.describe())
        print(f"{name}: {train_ips:,.0f} train img/s, {eval_ips:,.0f} eval img/s ({eval_tta_ips:,.0f} with "
              f"{recipe.tta} TTA), data {share:.1%} of a step", flush=True)
        if name in to_train:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            generator = seed_everything(0)
            model = build_net(width=recipe.width)
            # The throughput run above already warmed this preset's kernels (and cuDNN's choice of them).
            history = fit(model, train, test, recipe, device=device, generator=generator, profile=prof)
            row.to_threshold = {th: time_to_accuracy(history.seconds, history.test_acc, th) for th in THRESHOLDS}
            row.final_acc, row.train_s = history.test_acc[-1], history.train_seconds
            row.peak_mem_mb = _peak_mem_mb(device)
        rows.append(row)
    pil, tensor = pil_vs_tensor(train)
    import torchvision

    header = (f"Device: {describe_device(device)} ({platform.processor() or platform.machine()}); torch "
              f"{torch.__version__}, torchvision {torchvision.__version__}, Python {platform.python_version()}; "
              f"profile {prof.name} ({len(train)} train / {len(test)} test images). Times are training only "
              f"(evaluation excluded), at epoch resolution, judged on one view per image after each epoch; the final "
              f"accuracy uses the preset's test-time augmentation.")
    table = format_table(rows, pil, tensor, header)
    print("\n" + table)
    if store is not None:
        write_record(store, record_payload(header, pil, tensor, rows), device=device, started=started,
                     profile=prof.name, n_train=len(train), n_test=len(test))
    if args.output:
        written = write_or_keep(args.output, table + "\n", what="Markdown table", work="the table (printed above too)")
        print(f"written: {written}")
    return 0


def table_from_record(payload: dict) -> str:
    """The Markdown table of a recorded run (docs/RESULTS.md's benchmark table is generated from it)."""
    rows = []
    for r in payload["rows"]:
        r = dict(r)
        r["to_threshold"] = {float(k): v for k, v in r["to_threshold"].items()} or None
        rows.append(Row(**r))
    table = format_table(rows, payload["pil_img_s"], payload["tensor_img_s"], payload["header"])
    return table + ("\n\n" + verify_markdown(payload) if payload.get("sync_audits") else "")
