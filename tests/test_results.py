"""The committed results and trained weights: complete provenance, enough seeds, files that match their manifest,
and README tables that are exactly what the results files say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gapcourse.checkpoints import CheckpointError
from gapcourse.experiments import REGIMES
from gapcourse.experiments import RESULTS_FILE as HEADS_FILE
from gapcourse.models import HEADS
from gapcourse.provenance import REQUIRED, RESULTS_DIR
from gapcourse.weights import MANIFEST, MANIFEST_FIELDS, WEIGHTS_DIR, file_sha256, load_shipped, read_manifest

ROOT = Path(__file__).resolve().parents[1]
RESULT_FILES = sorted(RESULTS_DIR.glob("*.json"))


def test_results_files_exist():
    names = {p.name for p in RESULT_FILES}
    assert {"heads.json", "recipe_ablation.json", "bench_cpu.json", "course_times.json"} <= names


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: p.name)
def test_every_results_file_carries_its_provenance(path):
    prov = json.loads(path.read_text())["provenance"]
    missing = [k for k in REQUIRED if not prov.get(k)]
    assert not missing, f"{path.name}: provenance lacks {missing}"
    assert prov["commit"] != "unknown" and len(prov["commit"].split("+")[0]) == 40
    assert prov["command"].startswith(("python -m gapcourse", "make "))


def test_heads_comparison_has_three_seeds_per_head_in_both_regimes():
    runs = json.loads(HEADS_FILE.read_text())["runs"]
    for regime in REGIMES:
        heads = {h for h in HEADS if len({r["seed"] for r in runs if r["regime"] == regime and r["head"] == h
                                          and r["profile"] == "full"}) >= 3}
        assert len(heads) >= 5, f"{regime}: only {sorted(heads)} have 3 seeds"
    for r in runs:
        assert {"head", "regime", "seed", "train_acc", "test_acc"} <= set(r)
        assert r["regime"] in ("augmented", "no_augmentation")
        if r["regime"] == "augmented":
            assert {"resized", "canvas", "translated", "crop_shift"} <= set(r)
            flat = r["head"].startswith("flatten")
            assert (r["canvas"]["48"] is None) == flat and (r["translated"]["0"] is None) == flat


def test_the_readme_tables_are_generated_from_the_results():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "readme_tables.py"), "--check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_shipped_weight_file_matches_its_manifest():
    manifest = json.loads(MANIFEST.read_text())["weights"]
    files = sorted(p.name for p in WEIGHTS_DIR.glob("*.pt"))
    assert sorted(e["file"] for e in manifest) == files and len(files) >= 4
    for entry in manifest:
        assert all(entry.get(k) not in (None, "") for k in MANIFEST_FIELDS), entry
        assert file_sha256(WEIGHTS_DIR / entry["file"]) == entry["sha256"], entry["file"]
        assert abs(entry["test_acc"] - entry["test_acc_fp32_weights"]) < 0.003, "fp16 storage changed the accuracy"


@pytest.mark.parametrize("head", sorted(read_manifest()))
def test_shipped_networks_load_safely_and_run(head):
    model, entry = load_shipped(head)
    assert model.head_name == head
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_a_tampered_weight_file_is_refused(tmp_path):
    import shutil

    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, folder)
    head = sorted(read_manifest())[0]
    victim = folder / read_manifest()[head]["file"]
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_shipped(head, folder=folder)
