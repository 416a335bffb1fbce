"""The speed and accuracy benchmark behind ``python -m gapcourse bench``; prints one Markdown table.

For every preset: training and evaluation images/s and the data pipeline's share of a training step (measured over
a few steps); for the presets trained to the end: time to 70/80/90 % test accuracy (at epoch resolution), final
accuracy, training seconds and peak memory. In the same run, a per-sample PIL ``DataLoader`` (torchvision
transforms, the classic tutorial pipeline) against the course's batched tensor pipeline, as images/s and a ratio.
The README quotes its output from real runs.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .config import profile as active_profile
from .data import MEAN, STD, Cifar10Split, load_cifar10
from .device import describe_device, pick_device, seed_everything
from .models import build_net
from .pipeline import batches
from .train import PRESETS, _prepare, autocast, fit, predict_logits, resolve_precision, synchronize

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


WARMUP_STEPS = 3  # the first steps pick kernels (cuDNN benchmark) and fill caches; they are not timed


def _batch_stream(data: Cifar10Split, recipe, device: torch.device):
    """Training batches for as long as asked, epoch after epoch (a small dataset is not exhausted)."""
    gen = torch.Generator().manual_seed(0)
    drop_last = len(data) > recipe.batch_size
    while True:
        yield from batches(data, recipe.batch_size, shuffle=True, augment_padding=recipe.augment_padding,
                           generator=gen, device=device, drop_last=drop_last)


def measure_throughput(recipe, data: Cifar10Split, device: torch.device, steps: int = 12
                       ) -> tuple[float, float, float, float]:
    """(train images/s, eval images/s with one view, eval images/s with the preset's test-time augmentation,
    share of a training step spent making the batch), after :data:`WARMUP_STEPS` untimed steps. Works on any
    amount of data: batches repeat epochs as needed."""
    torch.manual_seed(0)
    precision = resolve_precision(recipe, device)
    model = build_net(width=recipe.width).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    source = data if device.type == "cpu" else replace(data, images=data.images.to(device),
                                                       labels=data.labels.to(device))
    it = _batch_stream(source, recipe, device)
    data_time = total = 0.0
    images = 0
    for step in range(steps + WARMUP_STEPS):
        t0 = time.perf_counter()
        x, y = next(it)
        synchronize(device)
        t1 = time.perf_counter()
        with autocast(device, precision):
            loss = F.cross_entropy(model(_prepare(x, recipe.channels_last)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        t2 = time.perf_counter()
        if step >= WARMUP_STEPS:
            data_time += t1 - t0
            total += t2 - t0
            images += len(y)
    rates = []
    for tta in ("none", recipe.tta):
        timed = replace(recipe, tta=tta)
        n_eval = min(len(data), 4000)
        predict_logits(model, data.images[:256], device=device, recipe=timed)  # warm-up
        synchronize(device)
        t0 = time.perf_counter()
        predict_logits(model, data.images[:n_eval], device=device, recipe=timed)
        synchronize(device)
        rates.append(n_eval / (time.perf_counter() - t0))
    return images / total, rates[0], rates[1], data_time / total


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


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    prof = active_profile(args.profile)
    device = pick_device(args.device)
    train, test = load_cifar10("train", profile=prof), load_cifar10("test", profile=prof)
    default = {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
    to_train = args.train if args.train is not None else [default]
    presets = [name for name in PRESETS if (name != "gpu" or device.type == "cuda")
               and (name != "mps" or device.type == "mps")]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
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
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(table + "\n")
    if args.record:
        from dataclasses import asdict

        from .provenance import RESULTS_DIR, provenance, write_json

        path = RESULTS_DIR / f"bench_{device.type}.json"
        payload = {"provenance": provenance(device=device, seconds=time.perf_counter() - started, profile=prof.name,
                                            n_train=len(train), n_test=len(test)),
                   "header": header, "pil_img_s": pil, "tensor_img_s": tensor,
                   "rows": [{**asdict(r), "to_threshold": {str(k): v for k, v in (r.to_threshold or {}).items()}}
                            for r in rows]}
        write_json(path, payload)
        print(f"recorded: {path}")
    return 0


def table_from_record(payload: dict) -> str:
    """The Markdown table of a recorded run (the README's benchmark table is generated from it)."""
    rows = []
    for r in payload["rows"]:
        r = dict(r)
        r["to_threshold"] = {float(k): v for k, v in r["to_threshold"].items()} or None
        rows.append(Row(**r))
    return format_table(rows, payload["pil_img_s"], payload["tensor_img_s"], payload["header"])
