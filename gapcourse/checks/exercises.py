"""The twelve exercise checks, two per notebook, with the course's reference answers (``ref_...``).

Each check is a body decorated with :func:`~.sandbox.check`: it runs the learner's answer through
:func:`~.sandbox.call` on fresh inputs and raises :class:`~.sandbox.Wrong` with what is wrong, in plain words; the
sandbox turns that into a :class:`~.sandbox.CheckResult`. ``allclose`` and ``equal`` below are torch's own, taken
before any learner code ran. The package :mod:`gapcourse.checks` shows these names to the learner.

Exercises, by notebook: 01 ``global_avg_pool``, ``flatten_head_params``; 02 ``adaptive_windows``, ``gap_module``;
03 ``seed_block``, ``per_class_accuracy``; 04 ``nin_head``, ``shift_right_down``; 05 ``class_activation_map``,
``peak_cell``; 06 (appendix) ``smoothed_targets``, ``ema_update``.

To add an exercise: a ``ref_<name>`` reference and a check body decorated with ``@check("<name>", "<what a right
answer does>")`` that raises ``Wrong("what is wrong, in plain words")``, in its notebook's section below; entries in
``REFERENCES`` and ``CHECKS``; the two names in the package's imports and ``__all__``. The notebook's side (the
exercise cell, the check cell, answer_or_reference) is in docs/instructors.md.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .sandbox import (NOT_ATTEMPTED, CheckResult, RecordCalls, Wrong, allclose, call, check, equal, register_course,
                      tensor_result, whole_number)


# ------------------------------------------------------------------------------------------------------------------
# Notebook 01


def ref_global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


@check("global_avg_pool", "It averages each feature map over height and width: bs×ch×h×w → bs×ch, "
                           "with gradients flowing back.")
def global_avg_pool(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(x) -> x averaged over height and width`` (bs×ch×h×w → bs×ch)."""
    x = torch.randn(3, 5, 4, 7, requires_grad=True)  # all four sizes differ, so the shape tells the axes apart
    want = x.detach().mean((2, 3))  # before the learner's code runs, whatever it does to x
    out = tensor_result(call(fn, x), "global_avg_pool", like=want)
    shape = tuple(out.shape)
    if shape != (3, 5):
        hints = {(3, 5, 1, 1): "It keeps two dimensions of size 1: average without keepdim, or flatten them.",
                 (3, 4, 7): "It averaged over the channels (dim 1). GAP averages over height and width (dims 2, 3).",
                 (): "It averaged everything into one number. GAP keeps one number per image and channel.",
                 (5, 4, 7): "It averaged over the batch (dim 0). GAP keeps every image: average over dims 2, 3.",
                 (3, 5, 4): "It averaged over the width only. Average over both height and width (dims 2 and 3).",
                 (3, 5, 7): "It averaged over the height only. Average over both height and width (dims 2 and 3)."}
        raise Wrong(hints.get(shape, f"For a 3×5×4×7 input the result should be 3×5 (bs×ch); got "
                                      f"{'×'.join(map(str, shape)) or 'a scalar'}."))
    if not allclose(out, want, atol=1e-5):
        if allclose(out, x.sum((2, 3)), atol=1e-4):
            raise Wrong("It sums each map; an average also divides by the number of positions (h·w).")
        if allclose(out, x.amax((2, 3)), atol=1e-5):
            raise Wrong("It takes each map's maximum: that is global *max* pooling. GAP takes the mean.")
        raise Wrong("The shape is right but the values are not each map's average over height and width.")
    if not out.requires_grad:
        raise Wrong("No gradient flows back to the input: avoid .detach(), .item(), .numpy() and new tensors.")
    out.sum().backward()
    if x.grad is None or not allclose(x.grad, torch.full_like(x, 1 / 28)):
        raise Wrong("The gradient is not 1/(h·w) at every position: build the result from x with torch ops.")
    other = torch.randn(2, 3, 5, 5)
    want = other.mean((2, 3))
    got = call(fn, other)
    if not isinstance(got, torch.Tensor) or got.shape != (2, 3) or not allclose(got.float(), want):
        raise Wrong("It works for a 3×5×4×7 input but not for 2×3×5×5: avoid fixed sizes in the code.")
    single = torch.randn(1, 1, 2, 3)  # one image, one channel: .squeeze() would drop the batch dimension too
    got = call(fn, single)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (1, 1):
        shape = "×".join(map(str, got.shape)) if isinstance(got, torch.Tensor) else type(got).__name__
        raise Wrong(f"For one image with one channel (1×1×2×3) the result should be 1×1, got {shape or 'a scalar'}: "
                     "don't .squeeze() (it also removes a batch or channel dimension of size 1).")


def ref_flatten_head_params(channels: int, side: int, hidden=(128, 56), classes: int = 10) -> int:
    sizes = [channels * side * side, *hidden, classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@check("flatten_head_params", "Weights and biases of every Linear layer, for any map size.")
def flatten_head_params(fn: Callable[..., int]) -> None:
    """Check ``fn(channels, side, hidden=(128, 56), classes=10)``: parameters of a flatten + FC head."""
    for channels, side, hidden, classes in [(256, 4, (128, 56), 10), (64, 3, (32,), 5), (16, 8, (20, 10), 4)]:
        got = whole_number(call(fn, channels, side, hidden, classes), "flatten_head_params")
        want = ref_flatten_head_params(channels, side, hidden, classes)
        if got == want:
            continue
        sizes = [channels * side * side, *hidden, classes]
        if got == sum(a * b for a, b in zip(sizes, sizes[1:])):
            raise Wrong("The biases are missing: each Linear(n_in, n_out) also has n_out biases.")
        if got == ref_flatten_head_params(channels, 1, tuple(h * 1 for h in hidden), classes) or \
                got == ref_flatten_head_params(1, 1, hidden, classes) or \
                got == sum(a * b + b for a, b in zip([channels * side, *hidden, classes],
                                                      [*hidden, classes])):
            raise Wrong("The first layer's input is channels × side × side numbers (every position of every map).")
        if got == sizes[0] * sizes[1] + sizes[1]:
            raise Wrong("That is the first Linear layer only: add every layer up to the class scores.")
        raise Wrong(f"For channels={channels}, side={side}, hidden={hidden}, classes={classes} the count is "
                     f"{'too high' if got > want else 'too low'}.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 02


def ref_adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * n / out), math.ceil((i + 1) * n / out)) for i in range(out)]


@check("adaptive_windows", "Start floor(i·n/out), end ceil((i+1)·n/out), end exclusive: PyTorch's rule.")
def adaptive_windows(fn: Callable[[int, int], list]) -> None:
    """Check ``fn(n, out) -> [(start, end), ...]`` (end exclusive) for adaptive pooling along one side."""
    for n, out in [(6, 2), (5, 3), (7, 3), (4, 4), (10, 4), (3, 5), (32, 7)]:
        got = call(fn, n, out)
        try:
            got = [(int(a), int(b)) for a, b in got]
        except (TypeError, ValueError):
            raise Wrong(f"Return a list of (start, end) pairs; for n={n}, out={out} got {got!r}.") from None
        want = ref_adaptive_windows(n, out)
        if got == want:
            continue
        if len(got) != out:
            raise Wrong(f"There should be one window per output cell: {out} windows for out={out}, got {len(got)}.")
        if got == [(a, b - 1) for a, b in want]:
            raise Wrong("Off by one at the end: `end` is exclusive, as in Python slices x[start:end].")
        if got == [(round(i * n / out), round((i + 1) * n / out)) for i in range(out)]:
            raise Wrong(f"Rounding to the nearest whole number is not how PyTorch picks the cells: "
                         f"{_first_difference(n, out, got, want)}")
        raise Wrong(_first_difference(n, out, got, want))


def _first_difference(n: int, out: int, got: list[tuple[int, int]], want: list[tuple[int, int]]) -> str:
    """The first window that differs from PyTorch's, said as what it leaves out or takes in too many (without giving
    PyTorch's rule away: the exercise asks the learner to find it by experiment)."""
    i, (start, end), (right_start, right_end) = next((i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w)
    wrong = []
    if start > right_start:
        wrong.append("starts too late (it leaves out a cell PyTorch averages)")
    elif start < right_start:
        wrong.append("starts too early (it takes in a cell PyTorch does not average)")
    if end < right_end:
        wrong.append("ends too early (it leaves out a cell PyTorch averages)")
    elif end > right_end:
        wrong.append("ends too late (it takes in a cell PyTorch does not average)")
    return (f"For n={n}, out={out} your window for output cell {i} is ({start}, {end}), which "
            f"{' and '.join(wrong)}. Probe nn.AdaptiveAvgPool1d({out}) with one-hot inputs of length {n} to see "
            f"which cells output {i} averages.")


def ref_gap_module() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


@check("gap_module", "AdaptiveAvgPool2d((1, 1)) + Flatten: GAP as layers, for any input size, no parameters.")
def gap_module(fn: Callable[[], nn.Module]) -> None:
    """Check ``fn()``: builds a module that maps bs×ch×h×w to bs×ch by global average pooling."""
    module = call(fn)
    if not isinstance(module, nn.Module):
        raise Wrong(f"Build an nn.Module (e.g. nn.Sequential(...)), got {type(module).__name__}.")
    if sum(p.numel() for p in module.parameters()):
        raise Wrong("GAP has no parameters; this module has some. Use pooling and flattening layers only.")
    for shape in [(2, 6, 4, 4), (3, 5, 7, 9), (1, 1, 3, 2)]:
        x = torch.randn(shape)
        want = x.mean((2, 3))
        with RecordCalls() as calls:  # sees torch functions and tensor methods, not what runs inside a layer's kernel
            out = call(module, x)
        if calls.names & {"mean", "nanmean"}:
            raise Wrong("It calls .mean (or torch.mean), which this exercise rules out: build GAP from PyTorch's "
                         "pooling and flattening layers only.")
        if calls.names & {"sum", "nansum"}:
            raise Wrong("It sums each map and divides, an average by hand; this exercise asks for PyTorch's "
                         "pooling and flattening layers only.")
        out = tensor_result(out, "the module", like=want)
        if out.shape == (shape[0], shape[1], 1, 1):
            raise Wrong("The output is bs×ch×1×1: add nn.Flatten() to get bs×ch.")
        if tuple(out.shape) != shape[:2]:
            raise Wrong(_gap_shape_hint(shape, tuple(out.shape)))
        if not allclose(out, want, atol=1e-5):
            raise Wrong("The values are not the averages of each map (max pooling instead of average?).")


def _gap_shape_hint(shape: tuple[int, ...], got: tuple[int, ...]) -> str:
    """Why the GAP module's output has the shape ``got`` for an input of ``shape`` (bs×ch×h×w), in words."""
    bs, ch = shape[:2]
    said = f"For a {'×'.join(map(str, shape))} input the output should be {bs}×{ch} (bs×ch), got " \
           f"{'×'.join(map(str, got)) or 'a single number (no dimensions)'}"
    if got == tuple(d for d in shape[:2] if d != 1):
        return (f"{said}: .squeeze() removes every dimension of size 1, the batch's and the channels' too when "
                "there is one image or one channel. Use nn.Flatten() (it keeps dimension 0).")
    if got == (bs * ch,):
        return (f"{said}: the batch was flattened in with the channels (nn.Flatten(0), .flatten() or .view(-1)). "
                "Keep dimension 0 (the batch): nn.Flatten() starts at dimension 1.")
    if len(got) == 2 and got[0] == bs and got[1] > ch and got[1] % ch == 0:
        return (f"{said}: more than one number per channel is left, so the pooling window did not cover the whole "
                "map. A fixed window (AvgPool2d) does not adapt to the input size; nn.AdaptiveAvgPool2d((1, 1)) "
                "does.")
    return f"{said}. Pool each map to a single cell, then flatten everything but the batch dimension."


# ------------------------------------------------------------------------------------------------------------------
# Notebook 03


def ref_seed_block(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_mid, 3, padding=1), nn.ReLU(), nn.Conv2d(c_mid, c_out, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2, 2), nn.BatchNorm2d(c_out))


@check("seed_block", "conv → ReLU → conv → ReLU → MaxPool2d(2, 2) → BatchNorm2d, as in the course's network.")
def seed_block(fn: Callable[[int, int, int], nn.Module]) -> None:
    """Check ``fn(c_in, c_mid, c_out)``: one block of the course network (halves height and width)."""
    block = call(fn, 3, 6, 8)
    if not isinstance(block, nn.Module):
        raise Wrong(f"Return an nn.Module (nn.Sequential of the layers), got {type(block).__name__}.")
    kinds = [type(m) for m in block.modules() if not list(m.children())]
    want = [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d]
    if kinds != want:
        raise Wrong("The layers should be, in order: Conv2d, ReLU, Conv2d, ReLU, MaxPool2d, BatchNorm2d; got "
                     + ", ".join(k.__name__ for k in kinds) + ".")
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    if any(c.kernel_size != (3, 3) for c in convs):
        raise Wrong("Both convolutions are 3×3 (kernel_size=3).")
    if any(c.dilation != (1, 1) for c in convs):
        raise Wrong("The convolutions are plain 3×3 ones, not dilated: leave dilation=1 (the default), with "
                     "padding=1.")
    if any(c.padding not in ((1, 1), "same") or c.padding_mode != "zeros" for c in convs):  # 'same' is 1 here
        raise Wrong("Give each conv padding=1 (zero padding, the default mode), so it keeps height and width.")
    if any(c.stride != (1, 1) or c.groups != 1 for c in convs):
        raise Wrong("The convolutions keep the grid (stride=1, the default) and see every input channel "
                     "(groups=1); the block shrinks the maps with its max-pool only.")
    if any(c.bias is None for c in convs):
        raise Wrong("Keep the convolutions' biases (bias=True, the default): the course's network has them, and "
                     "notebook 03 compares its parameters tensor by tensor.")
    if (convs[0].in_channels, convs[0].out_channels, convs[1].in_channels, convs[1].out_channels) != (3, 6, 6, 8):
        raise Wrong("Channels: the first conv goes c_in → c_mid, the second c_mid → c_out.")
    pool = next(m for m in block.modules() if isinstance(m, nn.MaxPool2d))
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731 - MaxPool2d keeps ints
    if (pair(pool.kernel_size), pair(pool.stride), pair(pool.padding), pair(pool.dilation), pool.ceil_mode) != \
            ((2, 2), (2, 2), (0, 0), (1, 1), False):
        raise Wrong("The pooling is MaxPool2d(2, 2): 2×2 windows, stride 2, no padding, so each output cell "
                     "takes the maximum of its own 2×2 cells.")
    norm = next(m for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    if norm.num_features != 8:
        raise Wrong("BatchNorm2d normalises the block's output channels: BatchNorm2d(c_out).")
    if not (norm.affine and norm.track_running_stats):
        raise Wrong("Keep BatchNorm2d's defaults (affine=True, track_running_stats=True), as the course's network "
                     "does.")
    out = tensor_result(call(block, torch.randn(2, 3, 16, 16)), "the block")
    if out.shape[2:] == (6, 6):
        raise Wrong("The maps shrink inside the block: give each conv padding=1 so it keeps height and width.")
    if tuple(out.shape) != (2, 8, 8, 8):
        raise Wrong(f"A 2×3×16×16 input should come out 2×8×8×8 (c_out channels, sides halved), got "
                     f"{'×'.join(map(str, out.shape))}.")


def ref_per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    return [float((predictions[labels == c] == c).float().mean()) for c in range(num_classes)]


@check("per_class_accuracy", "For each class: correct predictions among the images of that class.")
def per_class_accuracy(fn: Callable[..., Any]) -> None:
    """Check ``fn(predictions, labels, num_classes) -> K accuracies`` (share of each true class predicted right)."""
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 20 + [3] * 15)  # unbalanced, so wrong denominators show
    predictions = torch.where(torch.rand(50, generator=gen) < 0.6, labels, torch.randint(0, 4, (50,), generator=gen))
    want = ref_per_class_accuracy(predictions, labels, 4)
    got = call(fn, predictions, labels, 4)
    try:
        got = [float(v) for v in got]
    except (TypeError, ValueError):
        raise Wrong(f"Return one number per class (a list or a 1-D tensor), got {type(got).__name__}.") from None
    if len(got) != 4:
        raise Wrong(f"There are 4 classes in the test input; got {len(got)} numbers.")
    if all(abs(a - b) < 1e-6 for a, b in zip(got, want)):
        return
    counts = [float(((predictions == c) & (labels == c)).sum()) for c in range(4)]
    if all(abs(a - b) < 1e-6 for a, b in zip(got, counts)):
        raise Wrong("Those are counts of correct predictions; divide by the number of images of each class.")
    if all(abs(a - b / 50) < 1e-6 for a, b in zip(got, counts)):
        raise Wrong("It divides by all images; divide by the images of that class only.")
    by_pred = [float((labels[predictions == c] == c).float().mean()) for c in range(4)]
    if all(abs(a - b) < 1e-6 for a, b in zip(got, by_pred)):
        raise Wrong("It groups by predicted class (that is precision); group by the true class (labels == c).")
    raise Wrong("The numbers differ from the share of each true class that was predicted right.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 04


def ref_nin_head(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, classes, kernel_size=1), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


@check("nin_head", "A 1×1 conv to one map per class, then GAP: class scores with no fully connected layer.")
def nin_head(fn: Callable[[int, int], nn.Module]) -> None:
    """Check ``fn(channels, classes)``: a Network-in-Network head (1×1 conv to ``classes`` maps, then GAP)."""
    head = call(fn, 32, 7)
    if not isinstance(head, nn.Module):
        raise Wrong(f"Return an nn.Module, got {type(head).__name__}.")
    if any(isinstance(m, nn.Linear) for m in head.modules()):
        raise Wrong("The NiN head has no fully connected (Linear) layer: use a 1×1 convolution instead.")
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != 1 or convs[0].kernel_size != (1, 1):
        raise Wrong("Use exactly one convolution, with kernel_size=1: it mixes channels at each position.")
    if (convs[0].in_channels, convs[0].out_channels) != (32, 7):
        raise Wrong("The 1×1 conv maps the body's channels to one map per class (channels → classes).")
    if convs[0].bias is None:
        raise Wrong("Keep the 1×1 conv's bias (bias=True, the default): each class score needs its own offset, "
                     "and the cell after this check copies a Linear layer's biases into it (head[0].bias).")
    for side in (4, 9):
        seen: list[tuple[int, ...]] = []  # the shape of what reaches the convolution
        hook = convs[0].register_forward_hook(lambda _m, inputs, _out: seen.append(tuple(inputs[0].shape)))
        try:
            out = tensor_result(call(head, torch.randn(2, 32, side, side)), "the head")
        finally:
            hook.remove()
        if seen and seen[0][2:] != (side, side):
            raise Wrong(f"The 1×1 conv comes first, on the body's {side}×{side} maps, making one {side}×{side} map "
                         f"per class; GAP then averages each class map. Here the conv gets "
                         f"{'×'.join(map(str, seen[0][2:]))} maps: pooled first, there are no class maps to look "
                         f"at (notebook 05 draws them).")
        if not isinstance(head, nn.Sequential) or head[0] is not convs[0]:
            raise Wrong("Return an nn.Sequential whose first layer is the 1×1 conv: notebook 04 copies weights "
                         "into it as head[0].")
        if out.shape == (2, 7, 1, 1):
            raise Wrong("The output is bs×classes×1×1: add nn.Flatten().")
        if tuple(out.shape) != (2, 7):
            raise Wrong(f"For 2×32×{side}×{side} maps the output should be 2×7 (bs×classes), got "
                         f"{'×'.join(map(str, out.shape))}.")
        x = torch.randn(2, 32, side, side)
        if not allclose(call(head, x), convs[0](x).mean((2, 3)), atol=1e-5):
            raise Wrong("The scores should be the averages of the class maps (AdaptiveAvgPool2d((1, 1))).")


def ref_shift_right_down(images: torch.Tensor, shift: int) -> torch.Tensor:
    from ..canvas import shift_images  # the shift notebook 04's table is measured with

    return shift_images(images, shift)


@check("shift_right_down", "Moved right and down, uncovered border zero, nothing wrapped around.")
def shift_right_down(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(images, shift)``: move N×C×H×W images ``shift`` px right and down, filling with 0."""
    x = torch.arange(1, 2 * 3 * 6 * 7 + 1, dtype=torch.float32).reshape(2, 3, 6, 7)
    for shift in (2, 0, 3):
        want = ref_shift_right_down(x, shift)
        try:
            got = tensor_result(call(fn, x, shift), "shift_right_down", like=x)
        except Wrong as wrong:
            if shift == 0 and "raised" in str(wrong):
                raise Wrong(_fails_at_shift_zero(fn, str(wrong))) from None
            raise
        if tuple(got.shape) != tuple(x.shape):
            if shift == 0 and got.numel() == 0:
                raise Wrong(f"For shift=0 it returns an empty tensor {tuple(got.shape)}. {_MINUS_ZERO}")
            raise Wrong(f"The shape must stay {tuple(x.shape)}; got {tuple(got.shape)}.")
        if equal(got, want):
            continue
        if equal(got, torch.roll(x, (shift, shift), (2, 3))):
            raise Wrong("torch.roll wraps the pixels that leave on one side back in on the other; fill with 0.")
        if shift and equal(got[..., : -shift, : -shift], x[..., shift:, shift:]):
            raise Wrong("That moves the image left and up; move it right and down.")
        if shift and (equal(got[..., :, shift:], x[..., :, :-shift]) or
                      equal(got[..., shift:, :], x[..., :-shift, :])):
            raise Wrong("Only one direction moved: shift along both height (dim 2) and width (dim 3).")
        if shift and equal(got[..., shift:, shift:], want[..., shift:, shift:]):
            border = got.clone()
            border[..., shift:, shift:] = 0
            what = ("the pixels that were there before" if equal(border, x * (border != 0))
                    and bool((border != 0).any()) else f"values such as {border[border != 0][0].item():g}")
            raise Wrong(f"Every pixel lands in the right place, but the uncovered border (the first {shift} rows and "
                         f"columns) should be filled with 0; yours keeps {what}. Start from torch.zeros_like(...) "
                         f"(or fill the border with 0).")
        raise Wrong(f"For shift={shift} the result differs: pixel (r, c) should land at (r + shift, c + shift).")


_MINUS_ZERO = ("A slice like x[..., :-shift] is empty when shift is 0 (-0 is 0, so :-0 means :0): write "
               "x[..., :h - shift, :w - shift] with h, w = x.shape[-2:], or return a copy for shift 0.")


def _fails_at_shift_zero(fn: Callable, raised: str) -> str:
    """What to say when an answer that works at shift 2 raises at shift 0: the empty ``[:-0]`` slice when its code
    or PyTorch's message points there (a size of 0), otherwise that shift 0 means no move at all."""
    try:
        source = inspect.getsource(fn)
    except Exception:  # noqa: BLE001 - no source to read (a module, code typed at a prompt): judge by the message
        source = ""
    if ":-" in "".join(source.split()) or re.search(r"size \(?0\b|, 0\]", raised):
        return f"It fails at shift=0. {_MINUS_ZERO} ({raised})"
    return (f"It fails at shift=0, where nothing should move: return the images unchanged (as a new tensor) for "
            f"shift 0. ({raised})")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 05


def ref_class_activation_map(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,nchw->nkhw", weights, maps)


@check("class_activation_map", "M_c = Σ_k w_ck · f_k for every class: its average is the class score "
                                "(minus the bias).")
def class_activation_map(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(maps, weights)``: maps N×C×h×w, Linear weights K×C → CAMs N×K×h×w."""
    gen = torch.Generator().manual_seed(5)
    maps, weights = torch.randn(2, 6, 3, 5, generator=gen), torch.randn(4, 6, generator=gen)
    want = ref_class_activation_map(maps, weights)
    got = tensor_result(call(fn, maps, weights), "class_activation_map", like=want)
    if tuple(got.shape) != (2, 4, 3, 5):
        if tuple(got.shape) == (2, 4):
            raise Wrong("It returns one number per class (that is the score); keep the h×w map for each class.")
        if tuple(got.shape) == (2, 3, 5):
            raise Wrong("It sums over the classes too; keep one map per class: N×K×h×w.")
        raise Wrong(f"For maps 2×6×3×5 and weights 4×6 the CAMs should be 2×4×3×5, got "
                     f"{'×'.join(map(str, got.shape))}.")
    if allclose(got, want, atol=1e-5):
        return
    if allclose(got, want / 15, atol=1e-5):
        raise Wrong("It divides by h·w: CAM keeps the weighted sum at each position, the average comes later.")
    raise Wrong("The values differ: CAM for class c weights map k by weights[c, k] and sums over k.")


def ref_peak_cell(cam: torch.Tensor) -> tuple[int, int]:
    row, col = divmod(int(cam.argmax()), cam.shape[1])
    return row, col


@check("peak_cell", "(row, col) of the largest value of an h×w map.")
def peak_cell(fn: Callable[[torch.Tensor], tuple[int, int]]) -> None:
    """Check ``fn(cam)``: the (row, col) of the maximum of a 2-D map, also for non-square maps."""
    for shape, where in [((5, 8), (3, 6)), ((8, 5), (6, 1)), ((4, 4), (0, 3))]:
        cam = torch.rand(shape) * 0.5
        cam[where] = 2.0
        got = call(fn, cam)
        try:
            got = (int(got[0]), int(got[1]))
        except (TypeError, ValueError, IndexError):
            raise Wrong(f"Return a pair (row, col), got {got!r}.") from None
        if got == where:
            continue
        if got == where[::-1]:
            raise Wrong("Row and column are swapped: return (row, col).")
        flat = where[0] * shape[1] + where[1]
        if got == divmod(flat, shape[0]):
            raise Wrong("For a non-square map, divide the flat index by the width (number of columns), not the "
                         "height.")
        raise Wrong(f"For a {shape[0]}×{shape[1]} map the peak is elsewhere: use argmax and turn the flat index "
                     f"into (row, col).")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 06 (appendix: the training recipe)


def ref_smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).float() * (1 - smoothing) + smoothing / num_classes


@check("smoothed_targets", "1 − s + s/C for the true class and s/C for every other one: PyTorch's "
                            "label_smoothing.")
def smoothed_targets(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> None:
    """Check ``fn(labels, num_classes, smoothing) -> N×C`` target distributions, for two sizes and smoothings."""
    for labels, k, s in [(torch.tensor([2, 0, 4, 4]), 5, 0.2), (torch.tensor([9, 3, 0]), 10, 0.1)]:
        got = tensor_result(call(fn, labels, k, s), "smoothed_targets")
        n = len(labels)
        if tuple(got.shape) != (n, k):
            raise Wrong(f"For {n} labels and {k} classes the targets should be {n}×{k} (one distribution per "
                         f"image), got {'×'.join(map(str, got.shape))}.")
        got = got.float()
        want = ref_smoothed_targets(labels, k, s)
        if allclose(got, want, atol=1e-6):
            continue
        true = got.gather(1, labels[:, None]).squeeze(1)
        if allclose(got, torch.nn.functional.one_hot(labels, k).float()):
            raise Wrong("That is the one-hot target: no smoothing was applied.")
        if not allclose(got.sum(1), torch.ones(n), atol=1e-5):
            raise Wrong(f"Each row should sum to 1 (a probability distribution); yours sum to "
                         f"{got.sum(1)[0].item():.3f}. The share s taken from the true class goes to the classes.")
        if allclose(got, ref_smoothed_targets(labels, k, 1 - s), atol=1e-6):
            raise Wrong("s and 1 − s are swapped: the true class keeps 1 − s of the one-hot target, and s is "
                         "spread over the classes.")
        if allclose(true, torch.full((n,), 1 - s)):
            raise Wrong("It spreads s over the other C − 1 classes only. PyTorch's label_smoothing spreads s over "
                         "all C classes, the true one included.")
        raise Wrong(f"For {k} classes and smoothing {s} the values differ from PyTorch's label_smoothing targets.")


def ref_ema_update(average: torch.Tensor, weights: torch.Tensor, decay: float) -> torch.Tensor:
    return decay * average + (1 - decay) * weights


@check("ema_update", "decay · average + (1 − decay) · weights: the average moves a little towards the weights.")
def ema_update(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Check ``fn(average, weights, decay) -> new average`` (a new tensor; neither input changed in place)."""
    gen = torch.Generator().manual_seed(6)
    for decay in (0.9, 0.99):
        average, weights = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
        got = tensor_result(call(fn, average, weights, decay), "ema_update", like=average)
        if got.shape != average.shape:
            raise Wrong(f"The new average should have the weights' shape 3×4, got {'×'.join(map(str, got.shape))}.")
        if allclose(got, ref_ema_update(average, weights, decay), atol=1e-6):
            continue
        if allclose(got, ref_ema_update(weights, average, decay), atol=1e-6):
            raise Wrong("decay multiplies the new weights instead of the old average: with decay 0.99 the average "
                         "would jump to the weights at once instead of moving 1 % of the way.")
        if allclose(got, (average + weights) / 2, atol=1e-6):
            raise Wrong("It averages the two equally; decay says how much of the old average is kept.")
        if allclose(got, weights) or allclose(got, average):
            raise Wrong("It returns one of its inputs unchanged; mix them: keep decay of the average, add "
                         "(1 − decay) of the weights.")
        raise Wrong(f"With decay {decay} the values differ from an exponential moving average step.")


# ------------------------------------------------------------------------------------------------------------------

REFERENCES: dict[str, Any] = {
    "global_avg_pool": ref_global_avg_pool, "flatten_head_params": ref_flatten_head_params,
    "adaptive_windows": ref_adaptive_windows, "gap_module": ref_gap_module, "seed_block": ref_seed_block,
    "per_class_accuracy": ref_per_class_accuracy, "nin_head": ref_nin_head, "shift_right_down": ref_shift_right_down,
    "class_activation_map": ref_class_activation_map, "peak_cell": ref_peak_cell,
    "smoothed_targets": ref_smoothed_targets, "ema_update": ref_ema_update,
}
CHECKS: dict[str, Callable[[Any], CheckResult]] = {
    "global_avg_pool": global_avg_pool, "flatten_head_params": flatten_head_params,
    "adaptive_windows": adaptive_windows, "gap_module": gap_module, "seed_block": seed_block,
    "per_class_accuracy": per_class_accuracy, "nin_head": nin_head, "shift_right_down": shift_right_down,
    "class_activation_map": class_activation_map, "peak_cell": peak_cell,
    "smoothed_targets": smoothed_targets, "ema_update": ema_update,
}


def answer_or_reference(name: str, answer: Any) -> Any:
    """The learner's answer if its check passes; otherwise the course's reference, with a note saying so."""
    result = CHECKS[name](answer)
    if result.passed:
        return answer
    print(f"ℹ️  Using the course's reference `{name}` below, because yours is {result.status} "
          f"(see the check above). The rest of the notebook runs either way.")
    return REFERENCES[name]


def report(**answers: Any) -> str:
    """What the learner did in this notebook, one line per exercise (for the summary): written and passing,
    attempted but not passing yet, or not attempted. ``report(global_avg_pool=global_avg_pool, ...)``."""
    lines = []
    for name, answer in answers.items():
        if name not in CHECKS:
            raise ValueError(f"Unknown exercise {name!r}; expected one of {sorted(CHECKS)}.")
        result = CHECKS[name](answer)
        if result.passed:
            lines.append(f"✅ {name}: you wrote it, and it passed a check on inputs it had never seen.")
        elif result.status == NOT_ATTEMPTED:
            lines.append(f"⏳ {name}: not attempted yet; the notebook used the course's reference. Try it now.")
        else:
            lines.append(f"❌ {name}: attempted, not passing yet ({result.message}) Go back to it.")
    text = "\n".join(lines)
    print(text)
    return text


def _library_answers() -> dict[str, Callable]:
    """The library functions a reference is, by the name the learner is told (imported at the first check)."""
    from ..canvas import shift_images  # ref_shift_right_down's whole answer

    return {"gapcourse.canvas.shift_images": shift_images}


# last: the sandbox watches this module's names and spots an answer that is, or calls, one of the course's own
register_course(sys.modules[__name__],
                answers={"checks.answer_or_reference": answer_or_reference,
                         **{f"checks.{ref.__name__}": ref for ref in REFERENCES.values()}},
                library=_library_answers)
