"""gapcourse.checks: every check accepts right answers, names typical mistakes, and reports placeholders as
"not attempted" without raising."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gapcourse import checks
from gapcourse.checks import CHECKS, CORRECT, NOT_ATTEMPTED, REFERENCES, WRONG, answer_or_reference


def placeholder(*_args, **_kwargs):
    raise NotImplementedError


def answer(name):
    return REFERENCES[name]


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_reference_answers_pass(name):
    result = CHECKS[name](answer(name))
    assert result.status == CORRECT, result
    assert repr(result).startswith("✅")


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_placeholders_are_not_attempted_and_never_raise(name):
    for todo in (placeholder, None, ...):
        result = CHECKS[name](todo)
        assert result.status == NOT_ATTEMPTED, result
        assert repr(result).startswith("⏳")


WRONG_ANSWERS = [
    ("global_avg_pool", lambda x: x.mean((2, 3), keepdim=True), "keeps two dimensions of size 1"),
    ("global_avg_pool", lambda x: x.mean(1), "averaged over the channels"),
    ("global_avg_pool", lambda x: x.mean(), "into one number"),
    ("global_avg_pool", lambda x: x.mean(0), "averaged over the batch"),
    ("global_avg_pool", lambda x: x.mean(3), "width only"),
    ("global_avg_pool", lambda x: x.sum((2, 3)), "sums each map"),
    ("global_avg_pool", lambda x: x.amax((2, 3)), "global \\*max\\* pooling"),
    ("global_avg_pool", lambda x: x.detach().mean((2, 3)), "No gradient flows back"),
    ("global_avg_pool", lambda x: torch.tensor(x.detach().numpy().mean((2, 3))), "No gradient flows back"),
    ("global_avg_pool", lambda x: x.sum((2, 3)) / 28, "not for 2×3×5×5"),
    ("global_avg_pool", lambda x: x.view(x.shape[0], x.shape[1], -1).mean(1), "3×5 \\(bs×ch\\); got 3×28"),
    ("flatten_head_params", lambda c, s, h=(128, 56), k=10: sum(a * b for a, b in zip([c * s * s, *h], [*h, k])),
     "biases are missing"),
    ("flatten_head_params", lambda c, s, h=(128, 56), k=10: sum(a * b + b for a, b in zip([c * s, *h], [*h, k]))
     , "channels × side × side"),
    ("flatten_head_params", lambda c, s, h=(128, 56), k=10: c * s * s * h[0] + h[0], "first Linear layer only"),
    ("flatten_head_params", lambda c, s, h=(128, 56), k=10: 1, "too low"),
    ("adaptive_windows", lambda n, o: [(math.floor(i * n / o), math.ceil((i + 1) * n / o) - 1) for i in range(o)],
     "end` is exclusive"),
    ("adaptive_windows", lambda n, o: [(math.floor(i * n / o), math.floor((i + 1) * n / o)) for i in range(o)],
     "rounded down"),
    ("adaptive_windows", lambda n, o: [(round(i * n / o), round((i + 1) * n / o)) for i in range(o)],
     "nearest integer"),
    ("adaptive_windows", lambda n, o: [(0, n)] * (o + 1), "one window per output cell"),
    ("gap_module", lambda: nn.AdaptiveAvgPool2d((1, 1)), "add nn.Flatten"),
    ("gap_module", lambda: nn.Sequential(nn.AvgPool2d(4), nn.Flatten()), "fixed window"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten()), "max pooling"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6)),
     "no parameters"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, m, 3), nn.ReLU(), nn.Conv2d(m, o, 3), nn.ReLU(),
                                                 nn.MaxPool2d(2, 2), nn.BatchNorm2d(o)), "padding=1"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, m, 3, padding=1), nn.ReLU(),
                                                 nn.Conv2d(m, o, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(o),
                                                 nn.MaxPool2d(2, 2)), "in order"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, m, 5, padding=2), nn.ReLU(),
                                                 nn.Conv2d(m, o, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
                                                 nn.BatchNorm2d(o)), "3×3"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(),
                                                 nn.Conv2d(o, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                                                 nn.BatchNorm2d(o)), "c_in → c_mid"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, m, 3, padding=1), nn.ReLU(),
                                                 nn.Conv2d(m, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                                                 nn.BatchNorm2d(m)), "BatchNorm2d\\(c_out\\)"),
    ("per_class_accuracy", lambda p, y, k: [((p == c) & (y == c)).sum() for c in range(k)], "counts"),
    ("per_class_accuracy", lambda p, y, k: [((p == c) & (y == c)).sum() / len(y) for c in range(k)],
     "divides by all images"),
    ("per_class_accuracy", lambda p, y, k: [(y[p == c] == c).float().mean() for c in range(k)], "precision"),
    ("nin_head", lambda c, k: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, k)),
     "no fully connected"),
    ("nin_head", lambda c, k: nn.Sequential(nn.Conv2d(c, k, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
     "kernel_size=1"),
    ("nin_head", lambda c, k: nn.Sequential(nn.Conv2d(c, k, 1), nn.AdaptiveAvgPool2d(1)), "add nn.Flatten"),
    ("nin_head", lambda c, k: nn.Sequential(nn.Conv2d(c, k, 1), nn.AdaptiveMaxPool2d(1), nn.Flatten()),
     "averages of the class maps"),
    ("shift_right_down", lambda x, s: torch.roll(x, (s, s), (2, 3)), "wraps"),
    ("shift_right_down", lambda x, s: checks.ref_shift_right_down(x.flip(2, 3), s).flip(2, 3), "left and up"),
    ("shift_right_down", lambda x, s: torch.cat([torch.zeros_like(x[..., :s]), x[..., :x.shape[-1] - s]], -1),
     "Only one direction"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nk", w, m), "one number per class"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nhw", w, m), "sums over the classes"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nkhw", w, m) / 15, "divides by h·w"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nkhw", w.flip(0), m), "values differ"),
    ("peak_cell", lambda c: divmod(int(c.argmax()), c.shape[1])[::-1], "swapped"),
    ("peak_cell", lambda c: divmod(int(c.argmax()), c.shape[0]), "divide the flat index by the width"),
    ("peak_cell", lambda c: (0, 0), "peak is elsewhere"),
]


@pytest.mark.parametrize("name, wrong, message", WRONG_ANSWERS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG_ANSWERS)])
def test_typical_wrong_answers_get_their_message(name, wrong, message):
    result = CHECKS[name](wrong)
    assert result.status == WRONG, result
    assert __import__("re").search(message, result.message), result.message
    assert repr(result).startswith("❌")


def test_every_check_has_wrong_answers_in_the_list():
    assert {name for name, _, _ in WRONG_ANSWERS} == set(CHECKS)


def test_messages_do_not_print_the_answer():
    # the expected parameter count of the first combination must not appear in any message
    expected = str(checks.ref_flatten_head_params(256, 4))
    for name, wrong, _ in WRONG_ANSWERS:
        if name == "flatten_head_params":
            assert expected not in CHECKS[name](wrong).message


def test_crashing_answers_are_reported_not_raised():
    result = checks.global_avg_pool(lambda x: x.reshape(7))
    assert result.status == WRONG and "RuntimeError" in result.message


def test_answer_or_reference_prefers_a_passing_answer(capsys):
    mine = lambda x: x.mean(dim=(-2, -1))  # noqa: E731 - a right answer written differently
    assert answer_or_reference("global_avg_pool", mine) is mine
    assert capsys.readouterr().out == ""
    fallback = answer_or_reference("global_avg_pool", placeholder)
    assert fallback is checks.ref_global_avg_pool
    assert "reference" in capsys.readouterr().out
    build = answer_or_reference("gap_module", None)
    assert build is checks.ref_gap_module and build()(torch.randn(2, 3, 5, 5)).shape == (2, 3)


def test_report_speaks_only_of_what_the_learner_did(capsys):
    def not_yet(*args):
        raise NotImplementedError()

    text = checks.report(global_avg_pool=checks.ref_global_avg_pool, flatten_head_params=not_yet,
                         peak_cell=lambda cam: (0, 0))
    lines = text.splitlines()
    assert lines[0].startswith("✅ global_avg_pool: you wrote it")
    assert lines[1].startswith("⏳ flatten_head_params: not attempted") and "you wrote" not in lines[1]
    assert lines[2].startswith("❌ peak_cell: attempted, not passing")
    assert capsys.readouterr().out.strip() == text
