"""How a check runs a learner's answer safely (notebook 01 introduces the checks; :mod:`.exercises` holds them).

A check body (a function decorated with :func:`check`) raises :class:`Wrong` with the message for the learner; the
decorator turns that, a placeholder's ``NotImplementedError``, a crash or a side effect into a :class:`CheckResult`
and never raises. Around the answer, the sandbox puts back what it changed in torch's global state (settings, backend
flags, torch modes, random generators, torch functions and the course's own names it replaced) and spots an answer
that is, or calls, one of the course's own answers. :func:`call`, :func:`tensor_result` and :func:`whole_number` are
what a check body uses to run the answer and read its result; :data:`allclose` and :data:`equal` are torch's own
comparisons, taken before any learner code runs.

What the sandbox watches besides torch is given to it, not imported: the module holding the checks calls
:func:`register_course` (its references and the library functions they are), and the package calls :func:`watch` for
the names it shows the learner.
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
from types import CodeType, FrameType, ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

CORRECT, WRONG, NOT_ATTEMPTED = "correct", "wrong", "not attempted"

# Taken at import, before any learner code runs: an answer that replaces torch.allclose or torch.equal (or a check's
# own name for them, watched like torch's) cannot change what the checks compare with.
allclose, equal = torch.allclose, torch.equal


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


class Wrong(Exception):
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


# The modules and classes whose attributes an answer could replace to change what torch or a check computes
# (``torch.allclose = ...``, ``torch.Tensor.mean = ...``, ``nn.Module.__call__ = ...``), by the names shown; the
# course's own modules (this one, the checks, the package) join through watch() as they are imported.
_TORCH_SPACES: dict[str, Any] = {
    "torch": torch, "torch.Tensor": torch.Tensor, "torch.nn": nn, "torch.nn.functional": nn.functional,
    "torch.nn.init": nn.init, "torch.linalg": torch.linalg, "torch.autograd": torch.autograd,
    "torch.testing": torch.testing, "torch.backends": torch.backends, "builtins": builtins, "math": math}
_COURSE_SPACES: dict[str, Any] = {}
_MODULE_CLASSES: dict[str, Any] = {f"torch.nn.{name}": cls for name, cls in vars(nn).items()
                                   if isinstance(cls, type) and issubclass(cls, nn.Module)}


def _namespaces() -> dict[str, Any]:
    return {**_TORCH_SPACES, **_COURSE_SPACES, **_MODULE_CLASSES}


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
    """Before a check (not inside another): put back the torch functions (and the course's names) and modes as they
    were when the checks were imported, whatever earlier cells replaced or entered; returns what was put back."""
    restored = _restore_namespaces(_PRISTINE)
    return restored + [f"a {name} (a torch mode)" for name in _leave_modes(0, 0)]


class _Guard:
    """``with _Guard() as did:`` runs learner code; on leaving, puts back torch's global settings and backend flags,
    every torch function (and name of the course's modules) it replaced, the torch modes it left switched on, and every
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


class RecordCalls(TorchFunctionMode):
    """``with RecordCalls() as calls:`` collects the names of the torch functions and tensor methods called."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", "").split(".")[0])  # torch.ops.aten.mean.dim → "mean"
        return func(*args, **(kwargs or {}))


# What the course gives the sandbox (register_course): the module whose code is the checks' own, the course's own
# answers by the name a learner is told, and a function that returns the library functions a reference is.
_COURSE: dict[str, Any] = {"home": None, "answers": {}, "library": dict}


def register_course(home: ModuleType, answers: dict[str, Callable],
                    library: Callable[[], dict[str, Callable]]) -> None:
    """Called once by the module that holds the checks (:mod:`.exercises`), at its end.

    ``home``: that module; its calls to a reference are the checks' own, and it is watched like torch (an answer
    that replaces one of its names, e.g. its :data:`allclose`, is wrong and the name is put back). ``answers``: the
    course's own answers (the references, ``answer_or_reference``) by the name the learner is told; an answer that is
    or calls one is not an attempt. ``library``: returns the library functions that are a reference's whole answer,
    by name; it is called at the first check, so the checks do not import the library when they are imported."""
    _COURSE.update(home=vars(home), answers=dict(answers), library=library)
    _reference_code.cache_clear()
    watch(home.__name__, home)


def watch(label: str, namespace: Any) -> None:
    """Watch ``namespace``'s attributes as torch's are (shown as ``label.name``), from now on: what an answer replaces
    there is put back, and so is what an earlier cell replaced there since this call."""
    _COURSE_SPACES[label] = namespace
    _PRISTINE[label] = dict(vars(namespace))


@cache
def _reference_code() -> dict[CodeType, str]:
    """The course's own answers, by code object: the references, answer_or_reference, and the library functions a
    reference is (the shift exercise's)."""
    codes = {fn.__code__: name for name, fn in _COURSE["answers"].items()}
    codes.update({fn.__code__: name for name, fn in _COURSE["library"]().items()})
    return codes


_DEPTH = [0]  # checks running now: only the outermost puts back what earlier cells changed


def _spot_references(used: list[str]) -> Callable:
    """A profile function (``sys.setprofile``) that lists in ``used`` the course's references that code other than
    the checks' own calls (the learner's answer, a module or object it built)."""
    codes, home = _reference_code(), _COURSE["home"]

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            caller = frame.f_back
            ours = caller is not None and (caller.f_globals is globals() or caller.f_globals is home) \
                and caller.f_code is not call.__code__
            if not ours and codes[frame.f_code] not in used:
                used.append(codes[frame.f_code])

    return profile


def _uses_reference(exercise: str, names: list[str], *, is_it: bool) -> CheckResult:
    return CheckResult(exercise, NOT_ATTEMPTED,
                       f"Your answer {'is' if is_it else 'calls'} the course's reference ({', '.join(names)}), not "
                       "code of your own, so it does not count as an attempt: write the exercise yourself. (The "
                       "cells below use the reference by themselves until your answer passes.)")


def check(exercise: str, ok_message: str) -> Callable[[Callable[[Any], None]], Callable[[Any], CheckResult]]:
    """Decorator: turns a check body that raises Wrong / NotImplementedError into a CheckResult."""

    def wrap(body: Callable[..., None]) -> Callable[..., CheckResult]:
        def run(answer: Any) -> CheckResult:
            if answer is None or answer is Ellipsis:
                return CheckResult(exercise, NOT_ATTEMPTED, "Fill in the exercise cell above, run it, then this one.")
            course = [name for name, fn in _COURSE["answers"].items() if answer is fn]
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
        run.__module__, run.__qualname__ = body.__module__, body.__qualname__
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
    except Wrong as wrong:
        return CheckResult(exercise, WRONG, str(wrong))
    except _STOPPERS as err:
        return CheckResult(exercise, WRONG, f"Your code {_stopper_message(err)}")
    except Exception as err:  # noqa: BLE001 - the learner's errors arrive as Wrong; this is the check's
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


def call(fn: Callable, *args: Any) -> Any:
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
            raise Wrong(_side_effects(did)) from None
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a) for a in args)
        if isinstance(err, _STOPPERS):
            raise Wrong(f"Called with ({shapes}) it {_stopper_message(err)}") from None
        raise Wrong(f"Called with ({shapes}) it raised {type(err).__name__}: {err}") from None
    if did:
        raise Wrong(_side_effects(did))
    for arg, copy in zip(args, before):
        if copy is not None and not equal(arg.detach(), copy):
            raise Wrong("It changes its input tensor in place (e.g. x.zero_(), x += ..., x[...] = ...). Compute "
                         "a new tensor and leave the input as it was.")
    return out


def tensor_result(out: Any, what: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """The learner's result as a tensor; with ``like``, it must also have that tensor's floating-point dtype."""
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"{what} should return a torch.Tensor, got {type(out).__name__}.")
    if type(out) not in (torch.Tensor, nn.Parameter):  # a subclass could answer the check's comparisons itself
        raise Wrong(f"{what} returns a {type(out).__name__}, a subclass of torch.Tensor; return a plain tensor "
                     "made with torch operations.")
    if like is not None and out.dtype != like.dtype:
        raise Wrong(f"{what} returns {str(out.dtype).replace('torch.', '')} for a "
                     f"{str(like.dtype).replace('torch.', '')} input; keep the input's dtype (no .double(), "
                     ".long() or .half()).")
    return out


def whole_number(value: Any, what: str) -> int:
    """The learner's count as an int (an int, a NumPy integer, a whole float, or a one-number integer tensor); an
    object of another type is refused: its ``==`` could say yes to anything."""
    if type(value) is torch.Tensor and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int or isinstance(value, np.integer):
        return int(value)
    raise Wrong(f"{what} should return a whole number (an int), got {type(value).__name__} {value!r:.60}.")


# torch's functions (and this module's) as they were when the checks were imported; watch() adds the course's modules
_PRISTINE = _snapshot()
watch(__name__, sys.modules[__name__])
