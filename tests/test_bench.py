"""The benchmark times fit's own step, and ``bench --verify-gpu`` (the check for anyone with a CUDA GPU) runs its own
logic here in a dry run, with the CUDA parts faked. No timing is asserted: speed is the benchmark's job."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gapcourse.studies import bench
from gapcourse import train as train_module
from gapcourse.__main__ import main
from gapcourse.data import Cifar10Split
from gapcourse.config import RESULTS_DIR
from gapcourse.recipes import PRESETS


def _random_split(n: int) -> Cifar10Split:
    gen = torch.Generator().manual_seed(0)
    return Cifar10Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                        torch.arange(n) % 10, "train", "random")


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("steps", [2, 6])
def test_bench_times_fits_own_step_with_one_sync_per_epoch(monkeypatch, steps):
    """The timed step is fit's (here its weight average runs every step) and the device is waited for per epoch,
    not per step: the same number of synchronisations for 2 steps as for 6."""
    syncs = _counting(monkeypatch, train_module, "synchronize")
    syncs_here = _counting(monkeypatch, bench, "synchronize")
    updates = _counting(monkeypatch, train_module.WeightAverage, "update")
    recipe = replace(PRESETS["cpu"], batch_size=8, width=0.25, tta="none", precision="fp32")
    train_ips, *_ = bench.measure_throughput(recipe, _random_split(64), torch.device("cpu"), steps=steps, warmup=1)
    assert train_ips > 0
    assert len(updates) == 1 + steps  # the warm-up step, then the timed ones: fit's own loop ran them
    assert len(syncs) + len(syncs_here) == 2 * 2 + 2 + 2 * 2  # fit: 2 per epoch (2 fits); data share 2; eval 2 × 2


def test_bench_warms_evaluation_up_on_the_shapes_it_times(monkeypatch):
    shapes = []
    real = bench.predict_logits
    monkeypatch.setattr(bench, "predict_logits", lambda model, images, **kw: shapes.append(
        (tuple(images.shape), kw["recipe"].tta)) or real(model, images, **kw))
    recipe = replace(PRESETS["cpu"], batch_size=8, width=0.25, precision="fp32")
    bench.measure_throughput(recipe, _random_split(300), torch.device("cpu"), steps=1, warmup=1)
    assert [s for s, _ in shapes] == [(300, 3, 32, 32)] * 4  # 256 + 44 images: both batch shapes warmed up
    assert [t for _, t in shapes] == ["none", "none", "flip_shift", "flip_shift"]


def test_verify_gpu_without_a_cuda_gpu_says_it_needs_one(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--verify-gpu", "--record"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "needs a CUDA GPU" in err and "--dry-run" in err and err.count("\n") == 1


def test_dry_run_goes_with_verify_gpu(capsys):
    assert main(["bench", "--dry-run"]) == 2
    assert "--dry-run goes with --verify-gpu" in capsys.readouterr().err


def _committed_cuda_record() -> bytes | None:
    path = RESULTS_DIR / "bench_cuda.json"
    return path.read_bytes() if path.exists() else None


def test_the_verify_commands_dry_run_checks_its_own_logic_on_the_cpu(tmp_path, capsys):
    """(a) the sync audit, (b) fit's step timed, (c) training to the end with its TTA accuracy, (d) fp16 standing in
    for a T4 on a (faked) bf16 GPU; the table is written where asked and nothing is recorded in the results."""
    before = _committed_cuda_record()
    table = tmp_path / "verify.md"
    assert main(["bench", "--verify-gpu", "--dry-run", "--record", "--output", str(table)]) == 0
    out = capsys.readouterr().out
    assert "sync audit ok: bf16: steps 2–2 of 2 guarded, no sync" in out
    assert "sync audit ok: fp16: steps 2–2 of 2 guarded, no sync" in out
    assert "| gpu | 0.25 | bf16 |" in out and "| gpu (fp16, T4 stand-in) | 0.25 | fp16 |" in out
    assert "DRY RUN" in table.read_text() and "dry run: nothing recorded" in out
    assert _committed_cuda_record() == before


def test_the_verify_command_names_a_sync_in_the_step_and_fails(monkeypatch, capsys):
    """A blocking copy in the fp16 step only (e.g. ``torch.tensor(list, device=...)``): bf16 passes, fp16 fails
    with fit's line, and the command exits 1."""
    real_cross_entropy = torch.nn.functional.cross_entropy

    def cross_entropy(logits, y, **kwargs):
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.float16:
            torch.tensor([0.0], device=logits.device)
        return real_cross_entropy(logits, y, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", cross_entropy)
    assert main(["bench", "--verify-gpu", "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "sync audit ok: bf16" in out
    failed = next(line for line in out.splitlines() if line.startswith("SYNC AUDIT FAILED"))
    assert "fp16: a sync stopped training in step 2 of 2" in failed and "train.py" in failed
    assert "cross_entropy" in failed
