"""The benchmark times fit's own step, and ``bench --verify-gpu`` (the check for anyone with a CUDA GPU) runs its own
logic here in a dry run, with the CUDA parts faked. No timing is asserted: speed is the benchmark's job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import pytest

import torch

from gapcourse import train as train_module
from gapcourse.__main__ import main
from gapcourse.config import RESULTS_DIR
from gapcourse.data import Cifar10Split
from gapcourse.data import synthetic_cifar10
from gapcourse.recipes import PRESETS
from gapcourse.studies import bench
from gapcourse.studies.bench import measure_throughput, peak_rss_mb


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




def _fake_throughput(*_a, **_k):
    return 1000.0, 2000.0, 1500.0, 0.1


# 3 ------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_throughput_runs_on_a_small_dataset():
    small = synthetic_cifar10("train", per_class=30)  # 300 images: fewer than 15 batches of 256
    recipe = replace(PRESETS["cpu"], precision="fp32")
    train_ips, eval_ips, eval_tta_ips, share = measure_throughput(recipe, small, torch.device("cpu"), steps=4)
    assert train_ips > 0 and eval_ips > 0 and eval_tta_ips > 0 and 0 <= share < 1


def test_peak_memory_units_follow_the_platform():
    assert peak_rss_mb(2048 * 1024, system="linux") == 2048  # KiB on Linux
    assert peak_rss_mb(2048 * 2**20, system="darwin") == 2048  # bytes on macOS


def test_a_fast_bench_record_never_replaces_the_committed_record(monkeypatch, capsys, isolated_cache,
                                                                      committed_results_unchanged):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", _fake_throughput)
    monkeypatch.setattr(bench, "pil_vs_tensor", lambda data: (100.0, 800.0))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--train", "--record"]) == 0
    out = capsys.readouterr().out
    recorded = Path(next(line for line in out.splitlines() if line.startswith("recorded:")).split(": ", 1)[1])
    assert recorded.is_relative_to(isolated_cache)
    import json

    prov = json.loads(recorded.read_text())["provenance"]
    assert prov["profile"] == "fast" and prov["synthetic"] is True and len(prov["train_sha256"]) == 64


def test_bench_checks_both_outputs_before_measuring(tmp_path, monkeypatch, capsys):
    from gapcourse.studies import bench

    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: pytest.fail("measured before checking"))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["bench", "--profile", "fast", "--record", "--output", str(blocker / "table.md")]) == 2
    assert "Cannot write the Markdown table" in capsys.readouterr().err


# The record (bench --record) goes through the studies' results store -----------------------------------------------
def _committed_cpu_record() -> tuple[bytes, dict]:
    import json

    raw = (RESULTS_DIR / "bench_cpu.json").read_bytes()
    return raw, json.loads(raw)


def _rows_of(payload: dict) -> list[bench.Row]:
    return [bench.Row(**{**r, "to_threshold": {float(k): v for k, v in r["to_threshold"].items()} or None})
            for r in payload["rows"]]


def test_the_committed_record_reads_through_its_shape_and_is_written_back_byte_for_byte(tmp_path, monkeypatch,
                                                                                       capsys):
    """The committed bench_cpu.json is a bench record as it is; written again through the store (with its own
    provenance) it comes out byte-identical: same keys, same order, same layout."""
    from gapcourse.studies.runner import open_store, read_results

    raw, committed = _committed_cpu_record()
    assert read_results(RESULTS_DIR / "bench_cpu.json", bench.RECORD) == committed
    prov = committed["provenance"]
    data = {k: prov[k] for k in ("profile", "n_train", "train_sha256", "train_source", "synthetic")}
    monkeypatch.setattr(bench, "provenance", lambda **_: dict(prov))
    store = open_store(tmp_path / "bench_cpu.json", bench.RECORD, data, writer="bench")
    payload = bench.record_payload(committed["header"], committed["pil_img_s"], committed["tensor_img_s"],
                                   _rows_of(committed))
    written = bench.write_record(store, payload, device=torch.device("cpu"), started=0.0)
    assert written.read_bytes() == raw
    assert capsys.readouterr().out == f"recorded: {written}\n"


def test_a_new_record_replaces_the_old_one_whole(tmp_path):
    """A record is one measurement: a plain record after a --verify-gpu one keeps no sync audit of it."""
    import json

    from gapcourse.studies.runner import open_store

    _, committed = _committed_cpu_record()
    data = {"profile": "fast", "n_train": 20, "train_sha256": "f" * 64, "train_source": "synthetic",
            "synthetic": True}
    store = open_store(tmp_path / "bench.json", bench.RECORD, data, writer="bench")
    rows = _rows_of(committed)
    audit = bench.SyncAudit("bf16", 2, 2)
    bench.write_record(store, bench.record_payload("first", 1.0, 2.0, rows, [audit]), device=torch.device("cpu"),
                       started=0.0, profile="fast")
    assert json.loads(store.path.read_text())["sync_audits"][0]["clean"] is True
    bench.write_record(store, bench.record_payload("second", 3.0, 4.0, rows[:1]), device=torch.device("cpu"),
                       started=0.0, profile="fast")
    second = json.loads(store.path.read_text())
    assert list(second) == ["provenance", "header", "pil_img_s", "tensor_img_s", "rows"]
    assert second["header"] == "second" and len(second["rows"]) == 1
    assert second["provenance"]["train_sha256"] == "f" * 64


@pytest.mark.parametrize("content, message", [
    ('{"runs": [{"head": "gap_linear"}]}', "studies never share a file"),  # another study's file
    ('{"rows": [{"budget_s": 60}]}', "is not a bench record"),  # rows that are no bench rows
    ('{"header": "x", "rows": {}}', "is not a bench record"),
])
def test_bench_record_refuses_a_file_of_another_shape_before_measuring(tmp_path, monkeypatch, capsys, content,
                                                                       message):
    monkeypatch.setenv("GAPCOURSE_DATA", "synthetic")
    target = tmp_path / "bench_cpu.json"
    target.write_text(content)
    monkeypatch.setattr(bench, "default_output", lambda committed, data: target)
    monkeypatch.setattr(bench, "measure_throughput", lambda *a, **k: pytest.fail("measured before checking"))
    assert main(["bench", "--profile", "fast", "--device", "cpu", "--record"]) == 2
    assert message in capsys.readouterr().err.lower()
    assert target.read_text() == content
