"""gapcourse.checks: every check accepts right answers, names typical mistakes, and reports placeholders as
"not attempted" without raising."""

from __future__ import annotations

import inspect
import math
import pytest
import random
import textwrap

from torch import nn
import numpy as np
import torch

from gapcourse import checks
from gapcourse.checks import CHECKS, CORRECT, NOT_ATTEMPTED, REFERENCES, WRONG, answer_or_reference
from gapcourse.checks import exercises, sandbox


def placeholder(*_args, **_kwargs):
    raise NotImplementedError


OWN_SHIFT = """
def shift_right_down(images, shift):
    out = torch.zeros_like(images)
    h, w = images.shape[2:]
    out[..., shift:, shift:] = images[..., :h - shift, :w - shift]
    return out
"""


def answer(name):
    """A right answer of the learner's own: the reference's code compiled anew, outside the checks' module (the
    shift reference calls the library's shift_images, so that one is written out)."""
    ref = REFERENCES[name]
    source = OWN_SHIFT if name == "shift_right_down" else textwrap.dedent(inspect.getsource(ref))
    space = {**vars(exercises), "__name__": "learner"}  # the names the references use (torch, nn, math)
    exec(compile(source.replace(f"def {ref.__name__}(", f"def {name}("), "<learner>", "exec"), space)  # noqa: S102
    return space[name]


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


class MeanModule(nn.Module):  # GAP written with .mean: what the gap_module exercise rules out
    def forward(self, x):
        return x.mean((2, 3))


class SumModule(nn.Module):  # GAP as sum / count: an average by hand, not layers
    def forward(self, x):
        return x.sum((2, 3)) / (x.shape[2] * x.shape[3])


class NinWrapped(nn.Module):  # right values, but notebook 04 could not take the conv as head[0]
    def __init__(self, c, k):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(c, k, 1), nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(x)).flatten(1)


class SqueezeModule(nn.Module):  # adaptive pooling, then .squeeze(): drops a batch or channel of size 1 too
    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 1).squeeze()


def shifted_onto(canvas, x, s):
    """x moved s pixels right and down onto ``canvas`` (whatever the canvas holds stays in the border)."""
    h, w = x.shape[2:]
    canvas[..., s:, s:] = x[..., :h - s, :w - s]
    return canvas


def minus_shift_slice(x, s):
    """The common slice ``[:-s]``: right for s > 0, an empty slice at s = 0."""
    out = torch.zeros_like(x)
    out[..., s:, s:] = x[..., :-s, :-s]
    return out


def minus_shift_then_checks(x, s):
    """The [:-s] slice, then an error whose message names no size 0: the check reads the code to explain it."""
    moved = x[..., :-s, :-s]
    if moved.numel() == 0:
        raise RuntimeError("nothing to move")
    return minus_shift_slice(x, s)


def refuses_shift_zero(x, s):
    """Right for s > 0; refuses s = 0 with an error of its own (nothing to do with slicing)."""
    if s == 0:
        raise ValueError("shift must be positive")
    return minus_shift_slice(x, s)


def block(i, m, o, conv=None, pool=None):
    """The course's block with some convolution arguments or the pooling layer changed."""
    conv = {"padding": 1, **(conv or {})}
    return nn.Sequential(nn.Conv2d(i, m, 3, **conv), nn.ReLU(), nn.Conv2d(m, o, 3, **conv), nn.ReLU(),
                         pool or nn.MaxPool2d(2, 2), nn.BatchNorm2d(o))


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
     "n=5, out=3 your window for output cell 0 is \\(0, 1\\), which ends too early \\(it leaves out a cell"),
    ("adaptive_windows", lambda n, o: [(math.ceil(i * n / o), math.ceil((i + 1) * n / o)) for i in range(o)],
     "n=5, out=3 your window for output cell 1 is \\(2, 4\\), which starts too late \\(it leaves out a cell"),
    ("adaptive_windows", lambda n, o: [(round(i * n / o), round((i + 1) * n / o)) for i in range(o)],
     "nearest whole number.*cell 1 is \\(2, 3\\), which starts too late .* and ends too early"),
    ("adaptive_windows", lambda n, o: [(0, n)] * (o + 1), "one window per output cell"),
    ("gap_module", lambda: nn.AdaptiveAvgPool2d((1, 1)), "add nn.Flatten"),
    ("gap_module", lambda: nn.Sequential(nn.AvgPool2d(4), nn.Flatten()),
     "3×5×7×9 input the output should be 3×5 \\(bs×ch\\), got 3×10: more than one number per channel.*fixed window"),
    ("gap_module", lambda: SqueezeModule(),
     "1×1×3×2 input the output should be 1×1 \\(bs×ch\\), got a single number \\(no dimensions\\): \\.squeeze\\(\\)"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(0)),
     "2×6×4×4 input the output should be 2×6 \\(bs×ch\\), got 12: the batch was flattened in"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten()), "max pooling"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6)),
     "no parameters"),
    ("gap_module", lambda: MeanModule(), "calls \\.mean"),
    ("gap_module", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), MeanModule()), "calls \\.mean"),
    ("gap_module", lambda: SumModule(), "sums each map and divides"),
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
    ("seed_block", lambda i, m, o: block(i, m, o, conv=dict(padding=2, dilation=2)), "not dilated"),
    ("seed_block", lambda i, m, o: block(i, m, o, pool=nn.MaxPool2d(3, 2, 1)), "MaxPool2d\\(2, 2\\): 2×2 windows"),
    ("seed_block", lambda i, m, o: block(i, m, o, pool=nn.MaxPool2d(2, 2, ceil_mode=True)), "MaxPool2d\\(2, 2\\)"),
    ("seed_block", lambda i, m, o: block(i, m, o, conv=dict(bias=False)), "Keep the convolutions' biases"),
    ("seed_block", lambda i, m, o: block(i, m, o, conv=dict(padding=1, padding_mode="reflect")), "zero padding"),
    ("seed_block", lambda i, m, o: nn.Sequential(nn.Conv2d(i, m, 3, padding=1), nn.ReLU(),
                                                 nn.Conv2d(m, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                                                 nn.BatchNorm2d(o, affine=False)), "affine=True"),
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
    ("nin_head", lambda c, k: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, k, 1), nn.Flatten()),
     "1×1 conv comes first.*Here the conv gets 1×1 maps"),
    ("nin_head", lambda c, k: NinWrapped(c, k), "nn.Sequential whose first layer is the 1×1 conv"),
    ("nin_head", lambda c, k: nn.Sequential(nn.Conv2d(c, k, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
     "Keep the 1×1 conv's bias \\(bias=True, the default\\).*head\\[0\\]\\.bias"),
    ("shift_right_down", lambda x, s: torch.roll(x, (s, s), (2, 3)), "wraps"),
    ("shift_right_down", lambda x, s: answer("shift_right_down")(x.flip(2, 3), s).flip(2, 3), "left and up"),
    ("shift_right_down", lambda x, s: torch.cat([torch.zeros_like(x[..., :s]), x[..., :x.shape[-1] - s]], -1),
     "Only one direction"),
    ("shift_right_down", lambda x, s: shifted_onto(x.clone(), x, s),
     "right place, but the uncovered border \\(the first 2 rows and columns\\) should be filled with 0; yours keeps "
     "the pixels that were there before"),
    ("shift_right_down", lambda x, s: shifted_onto(torch.ones_like(x), x, s), "border .* yours keeps values such as 1"),
    ("shift_right_down", lambda x, s: minus_shift_slice(x, s),
     "^It fails at shift=0\\. A slice like x\\[\\.\\.\\., :-shift\\] is empty when shift is 0.*"
     "write x\\[\\.\\.\\., :h - shift, :w - shift\\].*\\(Called with .* raised RuntimeError"),
    ("shift_right_down", minus_shift_then_checks, "^It fails at shift=0\\. A slice like x\\[\\.\\.\\., :-shift\\]"),
    ("shift_right_down", lambda x, s: refuses_shift_zero(x, s),
     "^It fails at shift=0, where nothing should move: return the images unchanged.*raised ValueError: shift must "
     "be positive"),
    ("shift_right_down", lambda x, s: nn.functional.pad(x, (s, 0, s, 0))[..., :-s, :-s],
     "For shift=0 it returns an empty tensor \\(2, 3, 0, 0\\)\\. A slice like x\\[\\.\\.\\., :-shift\\]"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nk", w, m), "one number per class"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nhw", w, m), "sums over the classes"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nkhw", w, m) / 15, "divides by h·w"),
    ("class_activation_map", lambda m, w: torch.einsum("kc,nchw->nkhw", w.flip(0), m), "values differ"),
    ("peak_cell", lambda c: divmod(int(c.argmax()), c.shape[1])[::-1], "swapped"),
    ("peak_cell", lambda c: divmod(int(c.argmax()), c.shape[0]), "divide the flat index by the width"),
    ("peak_cell", lambda c: (0, 0), "peak is elsewhere"),
    ("smoothed_targets", lambda y, k, s: torch.nn.functional.one_hot(y, k).float(), "one-hot"),
    ("smoothed_targets", lambda y, k, s: torch.nn.functional.one_hot(y, k).float() * (1 - s), "sum to 1"),
    ("smoothed_targets", lambda y, k, s: torch.where(torch.nn.functional.one_hot(y, k).bool(), 1 - s, s / (k - 1)),
     "other C − 1 classes only"),
    ("smoothed_targets", lambda y, k, s: torch.nn.functional.one_hot(y, k).float() * s + (1 - s) / k, "swapped"),
    ("smoothed_targets", lambda y, k, s: torch.nn.functional.one_hot(y, k).float() * (1 - s / 2) + s / (2 * k),
     "values differ"),
    ("smoothed_targets", lambda y, k, s: torch.full((k, len(y)), 1 / k), "one distribution per image"),
    ("ema_update", lambda a, w, d: d * w + (1 - d) * a, "instead of the old average"),
    ("ema_update", lambda a, w, d: (a + w) / 2, "equally"),
    ("ema_update", lambda a, w, d: w.clone(), "unchanged"),
    ("ema_update", lambda a, w, d: a.mul_(d).add_((1 - d) * w), "in place"),
    ("ema_update", lambda a, w, d: d * a + d * w, "values differ"),
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


def _settings_now():
    return (torch.get_default_dtype(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.is_grad_enabled(), torch.get_float32_matmul_precision(), sandbox._default_device())


def _generators_now():
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].tolist()


def _changing(change):
    """A right GAP answer that also does ``change()`` to torch's global state."""
    def answer(x):
        change()
        return x.mean((2, 3))

    return answer


GLOBAL_CHANGES = {
    "default dtype": (lambda: torch.set_default_dtype(torch.float64), "default dtype \\(float32 → float64\\)"),
    "threads": (lambda: torch.set_num_threads(torch.get_num_threads() + 1), "number of CPU threads"),
    "deterministic": (lambda: torch.use_deterministic_algorithms(True),
                      "deterministic-algorithms mode \\(off → on\\)"),
    "grad mode": (lambda: torch.set_grad_enabled(False), "gradient mode \\(on → off\\)"),
    "matmul precision": (lambda: torch.set_float32_matmul_precision("medium"), "float32 matmul precision"),
    "default device": (lambda: torch.set_default_device("meta"), "default device \\(cpu → meta\\)"),
    "torch seed": (lambda: torch.manual_seed(0), "reseeds a random generator \\(torch.manual_seed\\):"),
    "random seed": (lambda: random.seed(0), "random.seed"),
    "numpy seed": (lambda: np.random.seed(0), "numpy.random.seed"),
}


@pytest.mark.parametrize("change", sorted(GLOBAL_CHANGES))
def test_an_answer_that_changes_global_state_is_wrong_says_what_and_is_undone(change):
    make_change, message = GLOBAL_CHANGES[change]
    settings, generators = _settings_now(), _generators_now()
    result = checks.global_avg_pool(_changing(make_change))
    assert result.status == WRONG, result
    assert __import__("re").search(message, result.message), result.message
    assert "put it back" in result.message and "Float did not match Double" not in result.message
    assert _settings_now() == settings
    after = _generators_now()
    assert torch.equal(after[0], generators[0]) and after[1:] == generators[1:]
    assert torch.randn(2).dtype == torch.float32  # what a later cell of the notebook gets


def test_a_module_built_by_the_answer_is_watched_too_and_a_failing_answer_is_undone():
    class Leaky(nn.Module):
        def forward(self, x):
            torch.set_default_dtype(torch.float64)
            return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)

    result = checks.gap_module(Leaky)
    assert result.status == WRONG and "default dtype" in result.message, result
    assert torch.get_default_dtype() == torch.float32

    def breaks_after_changing(x):
        torch.set_num_threads(torch.get_num_threads() + 1)
        raise ValueError("oops")

    threads = torch.get_num_threads()
    result = checks.global_avg_pool(breaks_after_changing)
    assert result.status == WRONG and "number of CPU threads" in result.message, result
    assert torch.get_num_threads() == threads


def test_a_nested_reseed_is_reported_once():
    result = checks.global_avg_pool(_changing(lambda: torch.manual_seed(0)))
    assert result.message.count("reseeds") == 1, result.message  # torch.manual_seed also seeds CUDA's generators


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_checks_leave_the_random_generators_as_they_found_them(name):
    before = _generators_now()
    assert CHECKS[name](answer(name)).passed
    assert CHECKS[name](placeholder).status == NOT_ATTEMPTED
    after = _generators_now()
    assert torch.equal(after[0], before[0]) and after[1:] == before[1:]


@pytest.mark.parametrize("stopper", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_answers_raising_what_would_stop_the_notebook_are_wrong_answers(stopper, capsys):
    def stops(*_args):
        raise stopper()

    result = checks.global_avg_pool(stops)  # raised by the learner's function
    assert result.status == WRONG and f"raised {stopper.__name__}, which would stop" in result.message, result

    class StopsInForward(nn.Module):
        def forward(self, x):
            raise stopper()

    result = checks.gap_module(StopsInForward)  # raised by a module the answer built, when the check runs it
    assert result.status == WRONG and stopper.__name__ in result.message, result

    class StopsWhenInspected(nn.Sequential):
        def modules(self):
            raise stopper()

    result = checks.nin_head(lambda c, k: StopsWhenInspected(nn.Conv2d(c, k, 1)))  # outside any call of the answer
    assert result.status == WRONG and result.message.startswith(f"Your code raised {stopper.__name__}"), result
    assert answer_or_reference("global_avg_pool", stops) is checks.ref_global_avg_pool
    assert "reference" in capsys.readouterr().out


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

    text = checks.report(global_avg_pool=answer("global_avg_pool"), flatten_head_params=not_yet,
                         peak_cell=lambda cam: (0, 0))
    lines = text.splitlines()
    assert lines[0].startswith("✅ global_avg_pool: you wrote it")
    assert lines[1].startswith("⏳ flatten_head_params: not attempted") and "you wrote" not in lines[1]
    assert lines[2].startswith("❌ peak_cell: attempted, not passing")
    assert capsys.readouterr().out.strip() == text


def test_seed_block_accepts_padding_same_whose_outputs_are_the_references():
    def same(c_in, c_mid, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_mid, 3, padding="same"), nn.ReLU(),
                             nn.Conv2d(c_mid, c_out, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2, 2),
                             nn.BatchNorm2d(c_out))

    result = checks.seed_block(same)
    assert result.status == CORRECT, result
    mine, ref = same(3, 6, 8), checks.ref_seed_block(3, 6, 8)
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(mine(x), ref(x))  # why it must pass: the same function as padding=1


def test_adaptive_windows_messages_do_not_give_the_rule_away():
    for name, wrong, _ in WRONG_ANSWERS:
        if name == "adaptive_windows":
            message = CHECKS[name](wrong).message
            assert "floor" not in message and "ceil" not in message, message


def _allclose_says_yes(x):
    torch.allclose = lambda *a, **k: True
    return x[:, :, 0, 0]


def _equal_says_yes(x, shift):
    torch.equal = lambda *a, **k: True
    return x


def _tensor_sum_replaced(x):
    torch.Tensor.sum = lambda self, *a, **k: self.mean((2, 3)) * 28  # a new attribute hiding the real method
    return x[:, :, 0, 0]


def _checks_own_name_replaced(x):
    exercises.allclose = lambda *a, **k: True  # the name the checks compare with
    return x[:, :, 0, 0]


def _sandbox_name_replaced(x):
    sandbox.equal = lambda *a, **k: True  # the name the in-place test compares with
    return x.mean((2, 3))


def _package_name_replaced(x):
    checks.answer_or_reference = lambda name, answer: answer  # what later cells of the notebook call
    return x.mean((2, 3))


def _course_names():
    return exercises.allclose, sandbox.equal, checks.answer_or_reference


@pytest.mark.parametrize("check, cheat, replaced", [
    ("global_avg_pool", _allclose_says_yes, "torch.allclose"),
    ("shift_right_down", _equal_says_yes, "torch.equal"),
    ("global_avg_pool", _tensor_sum_replaced, "torch.Tensor.sum"),
    ("global_avg_pool", _checks_own_name_replaced, "gapcourse.checks.exercises.allclose"),
    ("global_avg_pool", _sandbox_name_replaced, "gapcourse.checks.sandbox.equal"),
    ("global_avg_pool", _package_name_replaced, "gapcourse.checks.answer_or_reference"),
], ids=["allclose", "equal", "Tensor.sum", "checks' allclose", "sandbox's equal", "package's name"])
def test_an_answer_that_replaces_a_torch_function_is_wrong_named_and_put_back(check, cheat, replaced):
    originals = torch.allclose, torch.equal, vars(torch.Tensor).get("sum"), _course_names()
    result = CHECKS[check](cheat)
    assert result.status == WRONG, result
    assert f"it replaces {replaced}:" in result.message and "put it back" in result.message, result.message
    assert (torch.allclose, torch.equal, vars(torch.Tensor).get("sum"), _course_names()) == originals
    assert checks.global_avg_pool(lambda x: x.sum((2, 3))).status == WRONG  # a later wrong answer still fails


def test_a_backend_flag_switched_by_the_answer_is_named_and_put_back():
    def no_onednn(x):
        torch.backends.mkldnn.enabled = False
        return x.mean((2, 3))

    assert torch.backends.mkldnn.enabled
    result = checks.global_avg_pool(no_onednn)
    assert result.status == WRONG and "changes torch.backends.mkldnn.enabled (on → off)" in result.message, result
    assert torch.backends.mkldnn.enabled


def test_a_torch_function_replaced_by_an_earlier_cell_is_put_back_before_the_check():
    real = torch.allclose
    torch.allclose = lambda *a, **k: True  # an earlier cell of the notebook
    torch.Tensor.mean = lambda self, *a, **k: self.sum((2, 3))
    try:
        result = checks.global_avg_pool(lambda x: x[:, :, 0, 0])
        put_back = torch.allclose is real and "mean" not in vars(torch.Tensor)
    finally:  # the check should have done this; if it did not, the other tests must not pay for it
        torch.allclose = real
        vars(torch.Tensor).get("mean") and delattr(torch.Tensor, "mean")
    assert result.status == WRONG and "not each map's average" in result.message, result
    assert "an earlier cell had replaced torch.allclose, torch.Tensor.mean; the check put PyTorch's own back" \
        in result.message
    assert put_back


def test_a_course_name_replaced_by_an_earlier_cell_is_put_back_before_the_check():
    real = _course_names()
    exercises.allclose = lambda *a, **k: True  # an earlier cell of the notebook
    checks.answer_or_reference = lambda name, answer: answer
    try:
        result = checks.global_avg_pool(lambda x: x[:, :, 0, 0])
        put_back = _course_names() == real
    finally:  # the check should have done this; if it did not, the other tests must not pay for it
        exercises.allclose, sandbox.equal, checks.answer_or_reference = real
    assert result.status == WRONG and "not each map's average" in result.message, result
    assert ("an earlier cell had replaced gapcourse.checks.exercises.allclose, gapcourse.checks.answer_or_reference; "
            "the check put PyTorch's own back") in result.message, result.message
    assert put_back


def test_a_torch_mode_left_switched_on_is_switched_off():
    from torch.overrides import TorchFunctionMode

    class SaysYes(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return True if func is torch.allclose else func(*args, **(kwargs or {}))

    def enters(x):
        SaysYes().__enter__()
        return x[:, :, 0, 0]

    result = checks.global_avg_pool(enters)
    assert result.status == WRONG and "leaves SaysYes switched on" in result.message, result
    assert torch._C._len_torch_function_stack() == 0


def test_a_tensor_subclass_that_answers_comparisons_itself_is_refused():
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            return True if func is torch.allclose else super().__torch_function__(func, types, args, kwargs)

    result = checks.global_avg_pool(lambda x: x[:, :, 0, 0].as_subclass(Liar))
    assert result.status == WRONG and "returns a Liar, a subclass of torch.Tensor" in result.message, result


def test_a_count_that_equals_anything_is_refused():
    class Everything:
        def __eq__(self, other):
            return True

    result = checks.flatten_head_params(lambda *a: Everything())
    assert result.status == WRONG and "should return a whole number (an int), got Everything" in result.message
    assert checks.flatten_head_params(lambda c, s, h=(128, 56), k=10: float(
        answer("flatten_head_params")(c, s, h, k))).status == CORRECT  # a whole float is a count too


def _calls_shift_images(x, shift):
    from gapcourse.canvas import shift_images

    return shift_images(x, shift)


@pytest.mark.parametrize("check, given, is_it, named", [
    ("global_avg_pool", lambda: REFERENCES["global_avg_pool"], "is", "checks.ref_global_avg_pool"),
    ("flatten_head_params", lambda: answer_or_reference("flatten_head_params", None), "is",
     "checks.ref_flatten_head_params"),
    ("global_avg_pool", lambda: answer_or_reference, "is", "checks.answer_or_reference"),
    ("global_avg_pool", lambda: lambda x: checks.ref_global_avg_pool(x), "calls", "checks.ref_global_avg_pool"),
    ("global_avg_pool", lambda: lambda x: answer_or_reference("global_avg_pool", None)(x), "calls",
     "checks.answer_or_reference, checks.ref_global_avg_pool"),
    ("global_avg_pool", lambda: __import__("functools").partial(checks.ref_global_avg_pool), "calls",
     "checks.ref_global_avg_pool"),
    ("gap_module", lambda: lambda: checks.REFERENCES["gap_module"](), "calls", "checks.ref_gap_module"),
    ("shift_right_down", lambda: _calls_shift_images, "calls", "gapcourse.canvas.shift_images"),
], ids=["is", "answer_or_reference(None)", "answer_or_reference itself", "calls", "calls via answer_or_reference",
        "partial", "module builder", "shift_images"])
def test_an_answer_that_is_or_calls_the_reference_is_not_attempted(check, given, is_it, named, capsys):
    result = CHECKS[check](given())
    assert result.status == NOT_ATTEMPTED, result
    assert f"Your answer {is_it} the course's reference ({named}), not code of your own" in result.message
    assert repr(result).startswith("⏳")
    assert "not attempted yet" in checks.report(**{check: given()})


@pytest.mark.slow
def test_torch_wrapping_its_own_functions_is_not_taken_for_a_cheat():
    """Importing torch._dynamo (torch.compile, some optimizers) rewraps torch.manual_seed: in a fresh interpreter,
    an answer that does so, and a check after an earlier cell did, still pass without a note."""
    import subprocess
    import sys

    code = ("import torch\nfrom gapcourse import checks\nimport torch._dynamo\n"  # the earlier cell
            "def mine(x):\n    import torch._inductor.config\n    return x.mean((2, 3))\n"
            "first = checks.global_avg_pool(mine)\nsecond = checks.global_avg_pool(lambda x: x.mean((2, 3)))\n"
            "print(repr(first)); print(repr(second))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 2, out.stderr[-2000:]
    assert all(line.startswith("✅") and "replaced" not in line for line in lines), lines


def test_python_caching_slotnames_on_a_torch_class_is_not_taken_for_a_cheat():
    """CI found `(Before this check, an earlier cell had replaced torch.Tensor.__slotnames__ ...)` on a plain wrong
    answer: copyreg caches __slotnames__ on a class the first time one of its instances is copied or pickled."""
    before = sandbox._snapshot()
    had = "__slotnames__" in vars(torch.nn.Linear)
    torch.nn.Linear.__slotnames__ = []  # as copyreg does for a class seen for the first time
    try:
        assert sandbox._restore_namespaces(before) == [] or had
    finally:
        if not had and "__slotnames__" in vars(torch.nn.Linear):
            del torch.nn.Linear.__slotnames__


def test_an_answer_that_destroys_its_input_fails_its_check():
    def zeroing(x):
        out = x.detach().mean((2, 3))
        x.data.zero_()
        return out

    result = checks.global_avg_pool(zeroing)
    assert not result.passed and "in place" in result.message

    def zeroing_counts(predictions, labels, k):  # the learner's own code (calling the reference is not an attempt)
        out = [(predictions[labels == c] == c).float().mean().item() for c in range(k)]
        labels.zero_()
        return out

    assert "in place" in checks.per_class_accuracy(zeroing_counts).message


def test_a_float64_answer_is_told_about_its_dtype_not_that_it_raised():
    result = checks.global_avg_pool(lambda x: x.double().mean((2, 3)))
    assert not result.passed and "float64" in result.message and "raised" not in result.message


def test_a_squeezing_answer_fails_on_a_batch_of_one():
    result = checks.global_avg_pool(lambda x: x.mean((2, 3)).squeeze())
    assert not result.passed and "squeeze" in result.message
