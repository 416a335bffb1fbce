"""gapcourse.studies.export: shipped weights are written with a manifest entry each; exporting some heads keeps the
other heads' entries, and a damaged manifest is refused rather than replaced."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY_RECIPE
from gapcourse.data import synthetic_cifar10
from gapcourse.models import build_net
from gapcourse.outputs import OutputError
from gapcourse.studies.export import export
from gapcourse.weights import load_shipped


def _export(folder, heads, trained_by=None, seed=0):
    test = synthetic_cifar10("test", per_class=2)
    torch.manual_seed(seed)
    models = {h: build_net(h, width=0.25) for h in heads}
    return export(models, test, {h: TINY_RECIPE for h in heads}, device=torch.device("cpu"), command="test",
                  folder=folder, trained_by=trained_by)


def test_exporting_one_head_keeps_the_other_heads_entries(tmp_path):
    _export(tmp_path, ["gap_linear", "gmp_linear"])
    before = {e["head"]: e for e in json.loads((tmp_path / "manifest.json").read_text())["weights"]}
    made_by = {"command": "python -m gapcourse compare-heads --heads concat_linear", "commit": "0" * 40}
    _export(tmp_path, ["concat_linear"], trained_by={"concat_linear": made_by})
    after = {e["head"]: e for e in json.loads((tmp_path / "manifest.json").read_text())["weights"]}
    assert sorted(after) == ["concat_linear", "gap_linear", "gmp_linear"]
    assert {h: after[h] for h in before} == before  # the earlier entries verbatim
    model, entry = load_shipped("concat_linear", folder=tmp_path)
    assert model.head_name == "concat_linear" and entry["sha256"] == after["concat_linear"]["sha256"]
    assert after["concat_linear"]["trained_by"] == made_by and "trained_by" not in after["gap_linear"]


def test_a_damaged_manifest_is_refused_not_replaced(tmp_path):
    (tmp_path / "manifest.json").write_text('{"weights": "not a list"}')
    with pytest.raises(OutputError, match="not a weights manifest"):
        _export(tmp_path, ["gap_linear"])
    assert (tmp_path / "manifest.json").read_text() == '{"weights": "not a list"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # refused before any network was written


def test_an_export_stopped_midway_replaces_no_network(tmp_path, monkeypatch):
    """Ctrl-C (or an error) while the second of two networks is measured: the first one's file, already written
    beside its place, is not moved in, so every shipped file still matches the manifest."""
    from gapcourse.studies import export as export_module

    _export(tmp_path, ["gap_linear", "nin"])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real, calls = export_module.evaluate, []

    def evaluate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # gap_linear's two evaluations done; nin's first one
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(export_module, "evaluate", evaluate_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, ["gap_linear", "nin"], seed=1)  # other weights than the ones exported first
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing replaced, nothing left beside
