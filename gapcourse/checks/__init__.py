"""Exercise checks with instant feedback, for every notebook. Introduced in notebook 01.

Each exercise asks the learner for a function (or a module). ``checks.<name>(answer)`` runs it on fresh inputs and
says in plain words what is wrong (wrong shape, wrong axis, sums instead of averages, an off-by-one window, no
gradient...) without printing the answer; a right answer gets a short confirmation; an exercise still holding its
placeholder (``raise NotImplementedError``) gets "not attempted yet", and so does an answer that is, or calls, the
course's reference (``checks.REFERENCES[...]``, ``checks.ref_...``, :func:`answer_or_reference`). A check never
raises, so *Run all* goes on: an answer that raises ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit`` is a
wrong answer. A check puts back what the answer changed in torch's global state (default dtype and device, number
of threads, random generators, deterministic-algorithms and gradient modes, backend flags such as
``torch.backends.mkldnn.enabled``, a torch function replaced, e.g. ``torch.allclose = ...``) and reports it as
wrong, naming what it put back; the check itself leaves the random generators as it found them. The checks compare
with references to torch's functions taken when this module is imported, and run with PyTorch's own functions even
if an earlier cell replaced some (they are put back, and the message says so). What this cannot stop (code that
rewrites this module, reads the answers from the solution notebooks...) is in the README's section for instructors.

:func:`answer_or_reference` lets later cells use the learner's answer when it passes, and the course's reference
implementation (saying so) when it does not, so a student copy runs to the end with nothing filled in.

Exercises, by notebook: 01 ``global_avg_pool``, ``flatten_head_params``; 02 ``adaptive_windows``, ``gap_module``;
03 ``seed_block``, ``per_class_accuracy``; 04 ``nin_head``, ``shift_right_down``; 05 ``class_activation_map``,
``peak_cell``; 06 (appendix) ``smoothed_targets``, ``ema_update``.
"""

from __future__ import annotations

import builtins
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

CORRECT, WRONG, NOT_ATTEMPTED = "correct", "wrong", "not attempted"

# Taken at import, before any learner code runs: an answer that replaces torch.allclose or torch.equal (or a check's
# own name for them) cannot change what the checks compare with.
_allclose, _equal = torch.allclose, torch.equal


@dataclass
class CheckResult:
    """What a check found. Printed in a notebook it reads as one friendly line."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:
        mark = {CORRECT: "✅", WRONG: "❌", NOT_ATTEMPTED: "⏳"}[self.status]
        label = {CORRECT: "Correct", WRONG: "Not yet", NOT_ATTEMPTED: "Not attempted yet"}[self.status]
        return f"{mark} {self.exercise}: {label}. {self.message}"


class _Wrong(Exception):
    """Raised inside a check with the message for the learner."""


_STOPPERS = (SystemExit, KeyboardInterrupt, GeneratorExit)  # not Exceptions: uncaught, they would stop Run all


def _settings() -> dict[str, Any]:
    """torch's global settings that an answer could change, under the names the learner is told."""
    deterministic = "off"
    if torch.are_deterministic_algorithms_enabled():
        deterministic = "warn only" if torch.is_deterministic_algorithms_warn_only_enabled() else "on"
    settings = {
        "torch's default dtype": torch.get_default_dtype(),
        "the number of CPU threads": torch.get_num_threads(),
        "the deterministic-algorithms mode": deterministic,
        "the gradient mode": torch.is_grad_enabled(),
        "autograd's anomaly detection": torch.is_anomaly_enabled(),
        "the float32 matmul precision": torch.get_float32_matmul_precision(),
        "the cuDNN switch": torch.backends.cudnn.enabled,
        "cuDNN's benchmark mode": torch.backends.cudnn.benchmark,
        "cuDNN's deterministic mode": torch.backends.cudnn.deterministic,
    }
    if hasattr(torch, "get_default_device"):  # torch >= 2.3
        settings["torch's default device"] = _default_device()
    for name, (get, _set) in _FLAGS.items():
        try:
            settings[name] = get()
        except Exception:  # noqa: BLE001 - a flag this build of torch does not have
            pass
    return settings


def _flag(module: Any, attribute: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return (lambda: getattr(module, attribute)), (lambda value: setattr(module, attribute, value))


# backend flags and modes an answer could switch (name shown → getter, setter), beyond those in _settings above
_FLAGS: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "torch.backends.mkldnn.enabled": _flag(torch.backends.mkldnn, "enabled"),
    "torch.backends.cudnn.allow_tf32": _flag(torch.backends.cudnn, "allow_tf32"),
    "torch.backends.cuda.matmul.allow_tf32": _flag(torch.backends.cuda.matmul, "allow_tf32"),
    "torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction":
        _flag(torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction"),
    "torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction":
        _flag(torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction"),
    "torch.backends.opt_einsum.enabled": _flag(torch.backends.opt_einsum, "enabled"),
    "torch.backends.opt_einsum.strategy": _flag(torch.backends.opt_einsum, "strategy"),
    "NNPACK (torch.backends.nnpack)": (torch._C._get_nnpack_enabled, torch._C._set_nnpack_enabled),
    "the multi-head attention fast path": (torch.backends.mha.get_fastpath_enabled,
                                           torch.backends.mha.set_fastpath_enabled),
    "the warn-always mode": (torch.is_warn_always_enabled, torch.set_warn_always),
    "autocast on the CPU": (lambda: torch.is_autocast_enabled("cpu"),
                            lambda value: torch.set_autocast_enabled("cpu", value)),
    "autocast's CPU dtype": (lambda: torch.get_autocast_dtype("cpu"),
                             lambda value: torch.set_autocast_dtype("cpu", value)),
}


def _default_device() -> torch.device:
    """``torch.get_default_device()``; torch 2.9 raises AttributeError there once ``set_default_device(None)`` has
    run (it reads a device mode that is gone), and the default is then the CPU."""
    try:
        return torch.get_default_device()
    except AttributeError:
        return torch.device("cpu")


def _set_default_device(device: torch.device) -> None:
    torch.set_default_device(None if device == torch.device("cpu") else device)  # None: no device mode at all


def _set_cudnn(flag: str) -> Callable[[bool], None]:
    return lambda value: setattr(torch.backends.cudnn, flag, value)


_SETTERS: dict[str, Callable[[Any], None]] = {
    "torch's default dtype": torch.set_default_dtype,
    "the number of CPU threads": torch.set_num_threads,
    "the deterministic-algorithms mode":
        lambda v: torch.use_deterministic_algorithms(v != "off", warn_only=v == "warn only"),
    "the gradient mode": torch.set_grad_enabled,
    "autograd's anomaly detection": torch.set_anomaly_enabled,
    "the float32 matmul precision": torch.set_float32_matmul_precision,
    "the cuDNN switch": _set_cudnn("enabled"),
    "cuDNN's benchmark mode": _set_cudnn("benchmark"),
    "cuDNN's deterministic mode": _set_cudnn("deterministic"),
    "torch's default device": _set_default_device,
    **{name: setter for name, (_get, setter) in _FLAGS.items()},
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).replace("torch.", "")


def _rng_states() -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "random": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


# taken now, before any _Guard watches these names (a guard inside another must not report its own restoring)
_RESET = {"torch": torch.set_rng_state, "random": random.setstate, "numpy": np.random.set_state}


def _set_rng_states(states: dict[str, Any]) -> None:
    for name, reset in _RESET.items():
        reset(states[name])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


# (module, function, name shown): the ways an answer reseeds or resets a random generator, watched while it runs
_SEEDERS = [(mod, fn, f"{label}.{fn}") for mod, label in ((torch, "torch"), (torch.random, "torch.random"))
            for fn in ("manual_seed", "seed", "set_rng_state")]
_SEEDERS += [(random, "seed", "random.seed"), (random, "setstate", "random.setstate"),
             (np.random, "seed", "numpy.random.seed"), (np.random, "set_state", "numpy.random.set_state"),
             (torch.cuda, "manual_seed", "torch.cuda.manual_seed"),
             (torch.cuda, "manual_seed_all", "torch.cuda.manual_seed_all")]


_ABSENT = object()


@cache
def _namespaces() -> dict[str, Any]:
    """The modules and classes whose attributes an answer could replace to change what torch or a check computes
    (``torch.allclose = ...``, ``torch.Tensor.mean = ...``, ``nn.Module.__call__ = ...``), by the names shown."""
    spaces: dict[str, Any] = {
        "torch": torch, "torch.Tensor": torch.Tensor, "torch.nn": nn, "torch.nn.functional": nn.functional,
        "torch.nn.init": nn.init, "torch.linalg": torch.linalg, "torch.autograd": torch.autograd,
        "torch.testing": torch.testing, "torch.backends": torch.backends, "builtins": builtins, "math": math,
        "gapcourse.checks": sys.modules[__name__]}
    spaces.update({f"torch.nn.{name}": cls for name, cls in vars(nn).items()
                   if isinstance(cls, type) and issubclass(cls, nn.Module)})
    return spaces


# the builtins a check relies on (others, such as input, are replaced by Jupyter itself at every cell)
_BUILTINS = ("isinstance", "issubclass", "type", "len", "getattr", "hasattr", "setattr", "delattr", "int", "float",
             "bool", "str", "repr", "tuple", "list", "dict", "set", "sum", "abs", "any", "all", "min", "max", "zip",
             "range", "next", "iter", "map", "enumerate", "sorted", "round", "divmod", "id", "vars", "object", "super")


def _snapshot() -> dict[str, dict[str, Any]]:
    spaces = {label: dict(vars(space)) for label, space in _namespaces().items() if space is not builtins}
    spaces["builtins"] = {name: getattr(builtins, name) for name in _BUILTINS}
    return spaces


_TORCH_DIR = str(Path(torch.__file__).parent)


def _torch_wrapper(old: Any, new: Any) -> bool:
    """Whether ``new`` is torch's own wrapper of ``old`` (importing torch._dynamo, which torch.compile and some
    optimizers do, wraps ``torch.manual_seed`` so), not a learner's replacement."""
    code = getattr(new, "__code__", None)
    return getattr(new, "__wrapped__", None) is old and code is not None and code.co_filename.startswith(_TORCH_DIR)


# Attributes Python itself adds to a class on first use: copyreg caches ``__slotnames__`` when an instance is copied
# or pickled (copy.deepcopy of a network does it), and annotations are computed lazily. Not a learner's doing.
_PYTHON_CACHES = ("__slotnames__", "__annotations__", "__annotate__", "__annotations_cache__")


def _restore_namespaces(before: dict[str, dict[str, Any]]) -> list[str]:
    """Put back every attribute that differs from ``before`` (a class's new attribute, which would hide the one it
    inherits, is removed; a module's new names change nothing and stay; torch's own wrapping is kept and noted in
    ``before``); returns the names put back."""
    restored = []
    for label, space in _namespaces().items():
        old, now = before[label], vars(space)
        for name, value in list(old.items()):
            if now.get(name, _ABSENT) is not value and _torch_wrapper(value, now.get(name)):
                old[name] = now[name]
        changed = [name for name, value in old.items() if now.get(name, _ABSENT) is not value]
        added = [name for name in now if name not in old and name not in _PYTHON_CACHES] \
            if isinstance(space, type) else []
        for name in changed:
            setattr(space, name, old[name])
        for name in added:
            delattr(space, name)
        restored += [f"{label}.{name}" for name in changed + added]
    return restored


def _leave_modes(function_depth: int, dispatch_depth: int) -> list[str]:
    """Switch off the torch function and dispatch modes (which intercept every torch call, ``torch.allclose``
    included) entered since the stacks had these depths; returns their class names. The default device's own mode
    (``torch.set_default_device``) is dealt with as a setting."""
    from torch.utils._device import DeviceContext

    left = []
    keep = []  # default-device modes above the depth, put back in their order
    while torch._C._len_torch_function_stack() > function_depth:
        mode = torch._C._pop_torch_function_stack()
        if isinstance(mode, DeviceContext):
            keep.append(mode)
        else:
            left.append(type(mode).__name__)
    for mode in reversed(keep):
        torch._C._push_on_torch_function_stack(mode)
    while torch._C._len_torch_dispatch_stack() > dispatch_depth:
        left.append(type(torch._C._pop_torch_dispatch_stack()).__name__)
    return left


def _mode_depths() -> tuple[int, int]:
    return torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()


def _reinstate_pristine() -> list[str]:
    """Before a check (not inside another): put back the torch functions and modes as they were when this module
    was imported, whatever earlier cells replaced or entered; returns what was put back."""
    restored = _restore_namespaces(_PRISTINE)
    return restored + [f"a {name} (a torch mode)" for name in _leave_modes(0, 0)]


class _Guard:
    """``with _Guard() as did:`` runs learner code; on leaving, puts back torch's global settings and backend flags,
    every torch function (and function of this module) it replaced, the torch modes it left switched on, and every
    random generator's state as they were, and lists in ``did`` what the code changed."""

    def __enter__(self) -> list[str]:
        self.did: list[str] = []
        self.inside = 0  # depth of watched calls: one reseeding call may make others
        self.spaces, self.modes = _snapshot(), _mode_depths()
        self.settings, self.rng = _settings(), _rng_states()
        self.originals = [(mod, fn, getattr(mod, fn)) for mod, fn, _ in _SEEDERS]
        for (mod, fn, original), (_, _, shown) in zip(self.originals, _SEEDERS):
            setattr(mod, fn, self._watch(original, shown))
        return self.did

    def _watch(self, original: Callable, shown: str) -> Callable:
        def watched(*args, **kwargs):
            note = f"reseeds a random generator ({shown})"
            if not self.inside and note not in self.did:  # torch.manual_seed calls torch.cuda.manual_seed_all
                self.did.append(note)
            self.inside += 1
            try:
                return original(*args, **kwargs)
            finally:
                self.inside -= 1

        return watched

    def __exit__(self, *exc: Any) -> bool:
        for mod, fn, original in self.originals:
            setattr(mod, fn, original)
        replaced = _restore_namespaces(self.spaces)  # first: the getters below must be torch's own
        if replaced:
            self.did.append(f"replaces {', '.join(replaced)}")
        now = _settings()
        for name, value in self.settings.items():
            if now.get(name) != value:
                self.did.append(f"changes {name} ({_show(value)} → {_show(now.get(name))})")
                _SETTERS[name](value)
        left = _leave_modes(*self.modes)
        if left:
            self.did.append(f"leaves {', '.join(left)} switched on (a torch mode that sees every torch call)")
        _set_rng_states(self.rng)
        return False


def _side_effects(did: list[str]) -> str:
    return (f"Besides its result, it {' and '.join(did)}: that would change every later cell of the notebook. "
            f"The check put it back; an answer should leave torch's global settings and seeds alone.")


class _RecordCalls(TorchFunctionMode):
    """``with _RecordCalls() as calls:`` collects the names of the torch functions and tensor methods called."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", "").split(".")[0])  # torch.ops.aten.mean.dim → "mean"
        return func(*args, **(kwargs or {}))


@cache
def _reference_code() -> dict[CodeType, str]:
    """The course's own answers, by code object: the references, answer_or_reference, and the library function the
    shift exercise's reference is."""
    codes = {fn.__code__: f"checks.{fn.__name__}" for fn in REFERENCES.values()}
    codes[answer_or_reference.__code__] = "checks.answer_or_reference"
    try:
        from ..canvas import shift_images
    except ImportError:  # pragma: no cover - the library without its experiments
        pass
    else:
        codes[shift_images.__code__] = "gapcourse.canvas.shift_images"
    return codes


_DEPTH = [0]  # checks running now: only the outermost puts back what earlier cells changed


def _spot_references(used: list[str]) -> Callable:
    """A profile function (``sys.setprofile``) that lists in ``used`` the course's references that code other than
    the checks' own calls (the learner's answer, a module or object it built)."""
    codes = _reference_code()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            caller = frame.f_back
            ours = caller is not None and caller.f_globals is globals() and caller.f_code is not _call.__code__
            if not ours and codes[frame.f_code] not in used:
                used.append(codes[frame.f_code])

    return profile


def _uses_reference(exercise: str, names: list[str], *, is_it: bool) -> CheckResult:
    return CheckResult(exercise, NOT_ATTEMPTED,
                       f"Your answer {'is' if is_it else 'calls'} the course's reference ({', '.join(names)}), not "
                       "code of your own, so it does not count as an attempt: write the exercise yourself. (The "
                       "cells below use the reference by themselves until your answer passes.)")


def _check(exercise: str, ok_message: str):
    """Decorator: turns a check body that raises _Wrong / NotImplementedError into a CheckResult."""

    def wrap(body: Callable[..., None]) -> Callable[..., CheckResult]:
        def run(answer: Any) -> CheckResult:
            if answer is None or answer is Ellipsis:
                return CheckResult(exercise, NOT_ATTEMPTED, "Fill in the exercise cell above, run it, then this one.")
            course = [name for fn, name in ((answer_or_reference, "checks.answer_or_reference"),
                                            *((ref, f"checks.{ref.__name__}") for ref in REFERENCES.values()))
                      if answer is fn]
            if course:
                return _uses_reference(exercise, course, is_it=True)
            put_back = _reinstate_pristine() if _DEPTH[0] == 0 else []
            used: list[str] = []
            profiler = sys.getprofile()
            _DEPTH[0] += 1
            sys.setprofile(_spot_references(used))
            try:
                result = _run_body(exercise, ok_message, body, answer)
            finally:
                sys.setprofile(profiler)
                _DEPTH[0] -= 1
            if used:
                result = _uses_reference(exercise, used, is_it=False)
            if put_back:
                result.message += (f" (Before this check, an earlier cell had replaced {', '.join(put_back)}; the "
                                   "check put PyTorch's own back and used it.)")
            return result

        run.__name__ = exercise
        run.__doc__ = body.__doc__
        return run

    return wrap


def _run_body(exercise: str, ok_message: str, body: Callable[[Any], None], answer: Any) -> CheckResult:
    try:
        # a notebook may have switched autograd off; the checks need it. _Guard: whatever the answer (or a module it
        # built, run by the check) changes in torch's global state is put back and reported
        with _Guard() as did, torch.enable_grad():
            body(answer)
    except NotImplementedError:
        return CheckResult(exercise, NOT_ATTEMPTED, "Replace `raise NotImplementedError` with your code.")
    except _Wrong as wrong:
        return CheckResult(exercise, WRONG, str(wrong))
    except _STOPPERS as err:
        return CheckResult(exercise, WRONG, f"Your code {_stopper_message(err)}")
    except Exception as err:  # noqa: BLE001 - the learner's errors arrive as _Wrong; this is the check's
        return CheckResult(exercise, WRONG, f"The check could not use what your code returned "
                                            f"({type(err).__name__}: {str(err)[:200]}). Compare its type, "
                                            "dtype and shape with what the exercise asks for.")
    if did:
        return CheckResult(exercise, WRONG, _side_effects(did))
    return CheckResult(exercise, CORRECT, ok_message)


def _stopper_message(err: BaseException) -> str:
    extra = " (If you pressed Stop yourself, run the check again.)" if isinstance(err, KeyboardInterrupt) else ""
    return (f"raised {type(err).__name__}, which would stop the whole notebook (Run all) rather than report a "
            f"problem: return a result, and raise an ordinary exception (ValueError...) if you must.{extra}")


def _call(fn: Callable, *args):
    """Call the learner's function; NotImplementedError passes through (not attempted), other errors are shown.

    Tensor arguments are compared before and after the call: an answer that changes its input in place is wrong
    even if its result looks right (the caller's data would be destroyed). So is one that changes torch's global
    state (put back at once, see :class:`_Guard`), and one that raises SystemExit, KeyboardInterrupt or
    GeneratorExit (reported, never let through)."""
    before = [a.detach().clone() if isinstance(a, torch.Tensor) else None for a in args]
    did: list[str] = []
    try:
        with _Guard() as did:
            out = fn(*args)
    except NotImplementedError:
        raise
    except (Exception, *_STOPPERS) as err:  # noqa: BLE001
        if did:
            raise _Wrong(_side_effects(did)) from None
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a) for a in args)
        if isinstance(err, _STOPPERS):
            raise _Wrong(f"Called with ({shapes}) it {_stopper_message(err)}") from None
        raise _Wrong(f"Called with ({shapes}) it raised {type(err).__name__}: {err}") from None
    if did:
        raise _Wrong(_side_effects(did))
    for arg, copy in zip(args, before):
        if copy is not None and not _equal(arg.detach(), copy):
            raise _Wrong("It changes its input tensor in place (e.g. x.zero_(), x += ..., x[...] = ...). Compute "
                         "a new tensor and leave the input as it was.")
    return out


def _tensor(out, what: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """The learner's result as a tensor; with ``like``, it must also have that tensor's floating-point dtype."""
    if not isinstance(out, torch.Tensor):
        raise _Wrong(f"{what} should return a torch.Tensor, got {type(out).__name__}.")
    if type(out) not in (torch.Tensor, nn.Parameter):  # a subclass could answer the check's comparisons itself
        raise _Wrong(f"{what} returns a {type(out).__name__}, a subclass of torch.Tensor; return a plain tensor "
                     "made with torch operations.")
    if like is not None and out.dtype != like.dtype:
        raise _Wrong(f"{what} returns {str(out.dtype).replace('torch.', '')} for a "
                     f"{str(like.dtype).replace('torch.', '')} input; keep the input's dtype (no .double(), "
                     ".long() or .half()).")
    return out


def _whole_number(value: Any, what: str) -> int:
    """The learner's count as an int (an int, a NumPy integer, a whole float, or a one-number integer tensor); an
    object of another type is refused: its ``==`` could say yes to anything."""
    if type(value) is torch.Tensor and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int or isinstance(value, np.integer):
        return int(value)
    raise _Wrong(f"{what} should return a whole number (an int), got {type(value).__name__} {value!r:.60}.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 01


def ref_global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


@_check("global_avg_pool", "It averages each feature map over height and width: bs×ch×h×w → bs×ch, "
                           "with gradients flowing back.")
def global_avg_pool(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(x) -> x averaged over height and width`` (bs×ch×h×w → bs×ch)."""
    x = torch.randn(3, 5, 4, 7, requires_grad=True)  # all four sizes differ, so the shape tells the axes apart
    want = x.detach().mean((2, 3))  # before the learner's code runs, whatever it does to x
    out = _tensor(_call(fn, x), "global_avg_pool", like=want)
    shape = tuple(out.shape)
    if shape != (3, 5):
        hints = {(3, 5, 1, 1): "It keeps two dimensions of size 1: average without keepdim, or flatten them.",
                 (3, 4, 7): "It averaged over the channels (dim 1). GAP averages over height and width (dims 2, 3).",
                 (): "It averaged everything into one number. GAP keeps one number per image and channel.",
                 (5, 4, 7): "It averaged over the batch (dim 0). GAP keeps every image: average over dims 2, 3.",
                 (3, 5, 4): "It averaged over the width only. Average over both height and width (dims 2 and 3).",
                 (3, 5, 7): "It averaged over the height only. Average over both height and width (dims 2 and 3)."}
        raise _Wrong(hints.get(shape, f"For a 3×5×4×7 input the result should be 3×5 (bs×ch); got "
                                      f"{'×'.join(map(str, shape)) or 'a scalar'}."))
    if not _allclose(out, want, atol=1e-5):
        if _allclose(out, x.sum((2, 3)), atol=1e-4):
            raise _Wrong("It sums each map; an average also divides by the number of positions (h·w).")
        if _allclose(out, x.amax((2, 3)), atol=1e-5):
            raise _Wrong("It takes each map's maximum: that is global *max* pooling. GAP takes the mean.")
        raise _Wrong("The shape is right but the values are not each map's average over height and width.")
    if not out.requires_grad:
        raise _Wrong("No gradient flows back to the input: avoid .detach(), .item(), .numpy() and new tensors.")
    out.sum().backward()
    if x.grad is None or not _allclose(x.grad, torch.full_like(x, 1 / 28)):
        raise _Wrong("The gradient is not 1/(h·w) at every position: build the result from x with torch ops.")
    other = torch.randn(2, 3, 5, 5)
    want = other.mean((2, 3))
    got = _call(fn, other)
    if not isinstance(got, torch.Tensor) or got.shape != (2, 3) or not _allclose(got.float(), want):
        raise _Wrong("It works for a 3×5×4×7 input but not for 2×3×5×5: avoid fixed sizes in the code.")
    single = torch.randn(1, 1, 2, 3)  # one image, one channel: .squeeze() would drop the batch dimension too
    got = _call(fn, single)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (1, 1):
        shape = "×".join(map(str, got.shape)) if isinstance(got, torch.Tensor) else type(got).__name__
        raise _Wrong(f"For one image with one channel (1×1×2×3) the result should be 1×1, got {shape or 'a scalar'}: "
                     "don't .squeeze() (it also removes a batch or channel dimension of size 1).")


def ref_flatten_head_params(channels: int, side: int, hidden=(128, 56), classes: int = 10) -> int:
    sizes = [channels * side * side, *hidden, classes]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


@_check("flatten_head_params", "Weights and biases of every Linear layer, for any map size.")
def flatten_head_params(fn: Callable[..., int]) -> None:
    """Check ``fn(channels, side, hidden=(128, 56), classes=10)``: parameters of a flatten + FC head."""
    for channels, side, hidden, classes in [(256, 4, (128, 56), 10), (64, 3, (32,), 5), (16, 8, (20, 10), 4)]:
        got = _whole_number(_call(fn, channels, side, hidden, classes), "flatten_head_params")
        want = ref_flatten_head_params(channels, side, hidden, classes)
        if got == want:
            continue
        sizes = [channels * side * side, *hidden, classes]
        if got == sum(a * b for a, b in zip(sizes, sizes[1:])):
            raise _Wrong("The biases are missing: each Linear(n_in, n_out) also has n_out biases.")
        if got == ref_flatten_head_params(channels, 1, tuple(h * 1 for h in hidden), classes) or \
                got == ref_flatten_head_params(1, 1, hidden, classes) or \
                got == sum(a * b + b for a, b in zip([channels * side, *hidden, classes],
                                                      [*hidden, classes])):
            raise _Wrong("The first layer's input is channels × side × side numbers (every position of every map).")
        if got == sizes[0] * sizes[1] + sizes[1]:
            raise _Wrong("That is the first Linear layer only: add every layer up to the class scores.")
        raise _Wrong(f"For channels={channels}, side={side}, hidden={hidden}, classes={classes} the count is "
                     f"{'too high' if got > want else 'too low'}.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 02


def ref_adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    return [(math.floor(i * n / out), math.ceil((i + 1) * n / out)) for i in range(out)]


@_check("adaptive_windows", "Start floor(i·n/out), end ceil((i+1)·n/out), end exclusive: PyTorch's rule.")
def adaptive_windows(fn: Callable[[int, int], list]) -> None:
    """Check ``fn(n, out) -> [(start, end), ...]`` (end exclusive) for adaptive pooling along one side."""
    for n, out in [(6, 2), (5, 3), (7, 3), (4, 4), (10, 4), (3, 5), (32, 7)]:
        got = _call(fn, n, out)
        try:
            got = [(int(a), int(b)) for a, b in got]
        except (TypeError, ValueError):
            raise _Wrong(f"Return a list of (start, end) pairs; for n={n}, out={out} got {got!r}.") from None
        want = ref_adaptive_windows(n, out)
        if got == want:
            continue
        if len(got) != out:
            raise _Wrong(f"There should be one window per output cell: {out} windows for out={out}, got {len(got)}.")
        if got == [(a, b - 1) for a, b in want]:
            raise _Wrong("Off by one at the end: `end` is exclusive, as in Python slices x[start:end].")
        if got == [(round(i * n / out), round((i + 1) * n / out)) for i in range(out)]:
            raise _Wrong(f"Rounding to the nearest whole number is not how PyTorch picks the cells: "
                         f"{_first_difference(n, out, got, want)}")
        raise _Wrong(_first_difference(n, out, got, want))


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


@_check("gap_module", "AdaptiveAvgPool2d((1, 1)) + Flatten: GAP as layers, for any input size, no parameters.")
def gap_module(fn: Callable[[], nn.Module]) -> None:
    """Check ``fn()``: builds a module that maps bs×ch×h×w to bs×ch by global average pooling."""
    module = _call(fn)
    if not isinstance(module, nn.Module):
        raise _Wrong(f"Build an nn.Module (e.g. nn.Sequential(...)), got {type(module).__name__}.")
    if sum(p.numel() for p in module.parameters()):
        raise _Wrong("GAP has no parameters; this module has some. Use pooling and flattening layers only.")
    for shape in [(2, 6, 4, 4), (3, 5, 7, 9), (1, 1, 3, 2)]:
        x = torch.randn(shape)
        want = x.mean((2, 3))
        with _RecordCalls() as calls:  # sees torch functions and tensor methods, not what runs inside a layer's kernel
            out = _call(module, x)
        if calls.names & {"mean", "nanmean"}:
            raise _Wrong("It calls .mean (or torch.mean), which this exercise rules out: build GAP from PyTorch's "
                         "pooling and flattening layers only.")
        if calls.names & {"sum", "nansum"}:
            raise _Wrong("It sums each map and divides, an average by hand; this exercise asks for PyTorch's "
                         "pooling and flattening layers only.")
        out = _tensor(out, "the module", like=want)
        if out.shape == (shape[0], shape[1], 1, 1):
            raise _Wrong("The output is bs×ch×1×1: add nn.Flatten() to get bs×ch.")
        if tuple(out.shape) != shape[:2]:
            raise _Wrong(_gap_shape_hint(shape, tuple(out.shape)))
        if not _allclose(out, want, atol=1e-5):
            raise _Wrong("The values are not the averages of each map (max pooling instead of average?).")


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


@_check("seed_block", "conv → ReLU → conv → ReLU → MaxPool2d(2, 2) → BatchNorm2d, as in the course's network.")
def seed_block(fn: Callable[[int, int, int], nn.Module]) -> None:
    """Check ``fn(c_in, c_mid, c_out)``: one block of the course network (halves height and width)."""
    block = _call(fn, 3, 6, 8)
    if not isinstance(block, nn.Module):
        raise _Wrong(f"Return an nn.Module (nn.Sequential of the layers), got {type(block).__name__}.")
    kinds = [type(m) for m in block.modules() if not list(m.children())]
    want = [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d]
    if kinds != want:
        raise _Wrong("The layers should be, in order: Conv2d, ReLU, Conv2d, ReLU, MaxPool2d, BatchNorm2d; got "
                     + ", ".join(k.__name__ for k in kinds) + ".")
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    if any(c.kernel_size != (3, 3) for c in convs):
        raise _Wrong("Both convolutions are 3×3 (kernel_size=3).")
    if any(c.dilation != (1, 1) for c in convs):
        raise _Wrong("The convolutions are plain 3×3 ones, not dilated: leave dilation=1 (the default), with "
                     "padding=1.")
    if any(c.padding not in ((1, 1), "same") or c.padding_mode != "zeros" for c in convs):  # 'same' is 1 here
        raise _Wrong("Give each conv padding=1 (zero padding, the default mode), so it keeps height and width.")
    if any(c.stride != (1, 1) or c.groups != 1 for c in convs):
        raise _Wrong("The convolutions keep the grid (stride=1, the default) and see every input channel "
                     "(groups=1); the block shrinks the maps with its max-pool only.")
    if any(c.bias is None for c in convs):
        raise _Wrong("Keep the convolutions' biases (bias=True, the default): the course's network has them, and "
                     "notebook 03 compares its parameters tensor by tensor.")
    if (convs[0].in_channels, convs[0].out_channels, convs[1].in_channels, convs[1].out_channels) != (3, 6, 6, 8):
        raise _Wrong("Channels: the first conv goes c_in → c_mid, the second c_mid → c_out.")
    pool = next(m for m in block.modules() if isinstance(m, nn.MaxPool2d))
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)  # noqa: E731 - MaxPool2d keeps ints
    if (pair(pool.kernel_size), pair(pool.stride), pair(pool.padding), pair(pool.dilation), pool.ceil_mode) != \
            ((2, 2), (2, 2), (0, 0), (1, 1), False):
        raise _Wrong("The pooling is MaxPool2d(2, 2): 2×2 windows, stride 2, no padding, so each output cell "
                     "takes the maximum of its own 2×2 cells.")
    norm = next(m for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    if norm.num_features != 8:
        raise _Wrong("BatchNorm2d normalises the block's output channels: BatchNorm2d(c_out).")
    if not (norm.affine and norm.track_running_stats):
        raise _Wrong("Keep BatchNorm2d's defaults (affine=True, track_running_stats=True), as the course's network "
                     "does.")
    out = _tensor(_call(block, torch.randn(2, 3, 16, 16)), "the block")
    if out.shape[2:] == (6, 6):
        raise _Wrong("The maps shrink inside the block: give each conv padding=1 so it keeps height and width.")
    if tuple(out.shape) != (2, 8, 8, 8):
        raise _Wrong(f"A 2×3×16×16 input should come out 2×8×8×8 (c_out channels, sides halved), got "
                     f"{'×'.join(map(str, out.shape))}.")


def ref_per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    return [float((predictions[labels == c] == c).float().mean()) for c in range(num_classes)]


@_check("per_class_accuracy", "For each class: correct predictions among the images of that class.")
def per_class_accuracy(fn: Callable[..., Any]) -> None:
    """Check ``fn(predictions, labels, num_classes) -> K accuracies`` (share of each true class predicted right)."""
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 20 + [3] * 15)  # unbalanced, so wrong denominators show
    predictions = torch.where(torch.rand(50, generator=gen) < 0.6, labels, torch.randint(0, 4, (50,), generator=gen))
    want = ref_per_class_accuracy(predictions, labels, 4)
    got = _call(fn, predictions, labels, 4)
    try:
        got = [float(v) for v in got]
    except (TypeError, ValueError):
        raise _Wrong(f"Return one number per class (a list or a 1-D tensor), got {type(got).__name__}.") from None
    if len(got) != 4:
        raise _Wrong(f"There are 4 classes in the test input; got {len(got)} numbers.")
    if all(abs(a - b) < 1e-6 for a, b in zip(got, want)):
        return
    counts = [float(((predictions == c) & (labels == c)).sum()) for c in range(4)]
    if all(abs(a - b) < 1e-6 for a, b in zip(got, counts)):
        raise _Wrong("Those are counts of correct predictions; divide by the number of images of each class.")
    if all(abs(a - b / 50) < 1e-6 for a, b in zip(got, counts)):
        raise _Wrong("It divides by all images; divide by the images of that class only.")
    by_pred = [float((labels[predictions == c] == c).float().mean()) for c in range(4)]
    if all(abs(a - b) < 1e-6 for a, b in zip(got, by_pred)):
        raise _Wrong("It groups by predicted class (that is precision); group by the true class (labels == c).")
    raise _Wrong("The numbers differ from the share of each true class that was predicted right.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 04


def ref_nin_head(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, classes, kernel_size=1), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


@_check("nin_head", "A 1×1 conv to one map per class, then GAP: class scores with no fully connected layer.")
def nin_head(fn: Callable[[int, int], nn.Module]) -> None:
    """Check ``fn(channels, classes)``: a Network-in-Network head (1×1 conv to ``classes`` maps, then GAP)."""
    head = _call(fn, 32, 7)
    if not isinstance(head, nn.Module):
        raise _Wrong(f"Return an nn.Module, got {type(head).__name__}.")
    if any(isinstance(m, nn.Linear) for m in head.modules()):
        raise _Wrong("The NiN head has no fully connected (Linear) layer: use a 1×1 convolution instead.")
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != 1 or convs[0].kernel_size != (1, 1):
        raise _Wrong("Use exactly one convolution, with kernel_size=1: it mixes channels at each position.")
    if (convs[0].in_channels, convs[0].out_channels) != (32, 7):
        raise _Wrong("The 1×1 conv maps the body's channels to one map per class (channels → classes).")
    if convs[0].bias is None:
        raise _Wrong("Keep the 1×1 conv's bias (bias=True, the default): each class score needs its own offset, "
                     "and the cell after this check copies a Linear layer's biases into it (head[0].bias).")
    for side in (4, 9):
        seen: list[tuple[int, ...]] = []  # the shape of what reaches the convolution
        hook = convs[0].register_forward_hook(lambda _m, inputs, _out: seen.append(tuple(inputs[0].shape)))
        try:
            out = _tensor(_call(head, torch.randn(2, 32, side, side)), "the head")
        finally:
            hook.remove()
        if seen and seen[0][2:] != (side, side):
            raise _Wrong(f"The 1×1 conv comes first, on the body's {side}×{side} maps, making one {side}×{side} map "
                         f"per class; GAP then averages each class map. Here the conv gets "
                         f"{'×'.join(map(str, seen[0][2:]))} maps: pooled first, there are no class maps to look "
                         f"at (notebook 05 draws them).")
        if not isinstance(head, nn.Sequential) or head[0] is not convs[0]:
            raise _Wrong("Return an nn.Sequential whose first layer is the 1×1 conv: notebook 04 copies weights "
                         "into it as head[0].")
        if out.shape == (2, 7, 1, 1):
            raise _Wrong("The output is bs×classes×1×1: add nn.Flatten().")
        if tuple(out.shape) != (2, 7):
            raise _Wrong(f"For 2×32×{side}×{side} maps the output should be 2×7 (bs×classes), got "
                         f"{'×'.join(map(str, out.shape))}.")
        x = torch.randn(2, 32, side, side)
        if not _allclose(_call(head, x), convs[0](x).mean((2, 3)), atol=1e-5):
            raise _Wrong("The scores should be the averages of the class maps (AdaptiveAvgPool2d((1, 1))).")


def ref_shift_right_down(images: torch.Tensor, shift: int) -> torch.Tensor:
    from ..canvas import shift_images  # the shift notebook 04's table is measured with

    return shift_images(images, shift)


@_check("shift_right_down", "Moved right and down, uncovered border zero, nothing wrapped around.")
def shift_right_down(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check ``fn(images, shift)``: move N×C×H×W images ``shift`` px right and down, filling with 0."""
    x = torch.arange(1, 2 * 3 * 6 * 7 + 1, dtype=torch.float32).reshape(2, 3, 6, 7)
    for shift in (2, 0, 3):
        want = ref_shift_right_down(x, shift)
        try:
            got = _tensor(_call(fn, x, shift), "shift_right_down", like=x)
        except _Wrong as wrong:
            if shift == 0 and "raised" in str(wrong):
                raise _Wrong(f"{wrong} {_MINUS_ZERO}") from None
            raise
        if tuple(got.shape) != tuple(x.shape):
            if shift == 0 and got.numel() == 0:
                raise _Wrong(f"For shift=0 it returns an empty tensor {tuple(got.shape)}. {_MINUS_ZERO}")
            raise _Wrong(f"The shape must stay {tuple(x.shape)}; got {tuple(got.shape)}.")
        if _equal(got, want):
            continue
        if _equal(got, torch.roll(x, (shift, shift), (2, 3))):
            raise _Wrong("torch.roll wraps the pixels that leave on one side back in on the other; fill with 0.")
        if shift and _equal(got[..., : -shift, : -shift], x[..., shift:, shift:]):
            raise _Wrong("That moves the image left and up; move it right and down.")
        if shift and (_equal(got[..., :, shift:], x[..., :, :-shift]) or
                      _equal(got[..., shift:, :], x[..., :-shift, :])):
            raise _Wrong("Only one direction moved: shift along both height (dim 2) and width (dim 3).")
        if shift and _equal(got[..., shift:, shift:], want[..., shift:, shift:]):
            border = got.clone()
            border[..., shift:, shift:] = 0
            what = ("the pixels that were there before" if _equal(border, x * (border != 0))
                    and bool((border != 0).any()) else f"values such as {border[border != 0][0].item():g}")
            raise _Wrong(f"Every pixel lands in the right place, but the uncovered border (the first {shift} rows and "
                         f"columns) should be filled with 0; yours keeps {what}. Start from torch.zeros_like(...) "
                         f"(or fill the border with 0).")
        raise _Wrong(f"For shift={shift} the result differs: pixel (r, c) should land at (r + shift, c + shift).")


_MINUS_ZERO = ("A slice like x[..., :-shift] is empty when shift is 0 (-0 is 0, so :-0 means :0): write "
               "x[..., :h - shift, :w - shift] with h, w = x.shape[-2:], or return a copy for shift 0.")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 05


def ref_class_activation_map(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,nchw->nkhw", weights, maps)


@_check("class_activation_map", "M_c = Σ_k w_ck · f_k for every class: its average is the class score "
                                "(minus the bias).")
def class_activation_map(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(maps, weights)``: maps N×C×h×w, Linear weights K×C → CAMs N×K×h×w."""
    gen = torch.Generator().manual_seed(5)
    maps, weights = torch.randn(2, 6, 3, 5, generator=gen), torch.randn(4, 6, generator=gen)
    want = ref_class_activation_map(maps, weights)
    got = _tensor(_call(fn, maps, weights), "class_activation_map", like=want)
    if tuple(got.shape) != (2, 4, 3, 5):
        if tuple(got.shape) == (2, 4):
            raise _Wrong("It returns one number per class (that is the score); keep the h×w map for each class.")
        if tuple(got.shape) == (2, 3, 5):
            raise _Wrong("It sums over the classes too; keep one map per class: N×K×h×w.")
        raise _Wrong(f"For maps 2×6×3×5 and weights 4×6 the CAMs should be 2×4×3×5, got "
                     f"{'×'.join(map(str, got.shape))}.")
    if _allclose(got, want, atol=1e-5):
        return
    if _allclose(got, want / 15, atol=1e-5):
        raise _Wrong("It divides by h·w: CAM keeps the weighted sum at each position, the average comes later.")
    raise _Wrong("The values differ: CAM for class c weights map k by weights[c, k] and sums over k.")


def ref_peak_cell(cam: torch.Tensor) -> tuple[int, int]:
    row, col = divmod(int(cam.argmax()), cam.shape[1])
    return row, col


@_check("peak_cell", "(row, col) of the largest value of an h×w map.")
def peak_cell(fn: Callable[[torch.Tensor], tuple[int, int]]) -> None:
    """Check ``fn(cam)``: the (row, col) of the maximum of a 2-D map, also for non-square maps."""
    for shape, where in [((5, 8), (3, 6)), ((8, 5), (6, 1)), ((4, 4), (0, 3))]:
        cam = torch.rand(shape) * 0.5
        cam[where] = 2.0
        got = _call(fn, cam)
        try:
            got = (int(got[0]), int(got[1]))
        except (TypeError, ValueError, IndexError):
            raise _Wrong(f"Return a pair (row, col), got {got!r}.") from None
        if got == where:
            continue
        if got == where[::-1]:
            raise _Wrong("Row and column are swapped: return (row, col).")
        flat = where[0] * shape[1] + where[1]
        if got == divmod(flat, shape[0]):
            raise _Wrong("For a non-square map, divide the flat index by the width (number of columns), not the "
                         "height.")
        raise _Wrong(f"For a {shape[0]}×{shape[1]} map the peak is elsewhere: use argmax and turn the flat index "
                     f"into (row, col).")


# ------------------------------------------------------------------------------------------------------------------
# Notebook 06 (appendix: the training recipe)


def ref_smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).float() * (1 - smoothing) + smoothing / num_classes


@_check("smoothed_targets", "1 − s + s/C for the true class and s/C for every other one: PyTorch's "
                            "label_smoothing.")
def smoothed_targets(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> None:
    """Check ``fn(labels, num_classes, smoothing) -> N×C`` target distributions, for two sizes and smoothings."""
    for labels, k, s in [(torch.tensor([2, 0, 4, 4]), 5, 0.2), (torch.tensor([9, 3, 0]), 10, 0.1)]:
        got = _tensor(_call(fn, labels, k, s), "smoothed_targets")
        n = len(labels)
        if tuple(got.shape) != (n, k):
            raise _Wrong(f"For {n} labels and {k} classes the targets should be {n}×{k} (one distribution per "
                         f"image), got {'×'.join(map(str, got.shape))}.")
        got = got.float()
        want = ref_smoothed_targets(labels, k, s)
        if _allclose(got, want, atol=1e-6):
            continue
        true = got.gather(1, labels[:, None]).squeeze(1)
        if _allclose(got, torch.nn.functional.one_hot(labels, k).float()):
            raise _Wrong("That is the one-hot target: no smoothing was applied.")
        if not _allclose(got.sum(1), torch.ones(n), atol=1e-5):
            raise _Wrong(f"Each row should sum to 1 (a probability distribution); yours sum to "
                         f"{got.sum(1)[0].item():.3f}. The share s taken from the true class goes to the classes.")
        if _allclose(got, ref_smoothed_targets(labels, k, 1 - s), atol=1e-6):
            raise _Wrong("s and 1 − s are swapped: the true class keeps 1 − s of the one-hot target, and s is "
                         "spread over the classes.")
        if _allclose(true, torch.full((n,), 1 - s)):
            raise _Wrong("It spreads s over the other C − 1 classes only. PyTorch's label_smoothing spreads s over "
                         "all C classes, the true one included.")
        raise _Wrong(f"For {k} classes and smoothing {s} the values differ from PyTorch's label_smoothing targets.")


def ref_ema_update(average: torch.Tensor, weights: torch.Tensor, decay: float) -> torch.Tensor:
    return decay * average + (1 - decay) * weights


@_check("ema_update", "decay · average + (1 − decay) · weights: the average moves a little towards the weights.")
def ema_update(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Check ``fn(average, weights, decay) -> new average`` (a new tensor; neither input changed in place)."""
    gen = torch.Generator().manual_seed(6)
    for decay in (0.9, 0.99):
        average, weights = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
        got = _tensor(_call(fn, average, weights, decay), "ema_update", like=average)
        if got.shape != average.shape:
            raise _Wrong(f"The new average should have the weights' shape 3×4, got {'×'.join(map(str, got.shape))}.")
        if _allclose(got, ref_ema_update(average, weights, decay), atol=1e-6):
            continue
        if _allclose(got, ref_ema_update(weights, average, decay), atol=1e-6):
            raise _Wrong("decay multiplies the new weights instead of the old average: with decay 0.99 the average "
                         "would jump to the weights at once instead of moving 1 % of the way.")
        if _allclose(got, (average + weights) / 2, atol=1e-6):
            raise _Wrong("It averages the two equally; decay says how much of the old average is kept.")
        if _allclose(got, weights) or _allclose(got, average):
            raise _Wrong("It returns one of its inputs unchanged; mix them: keep decay of the average, add "
                         "(1 − decay) of the weights.")
        raise _Wrong(f"With decay {decay} the values differ from an exponential moving average step.")


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


_PRISTINE = _snapshot()  # torch's functions (and this module's) as they were when the checks were imported
