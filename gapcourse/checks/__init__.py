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
with references to torch's functions taken when this package is imported, and run with PyTorch's own functions even
if an earlier cell replaced some (they are put back, and the message says so). What this cannot stop (code that
rewrites this package, reads the answers from the solution notebooks...) is in docs/instructors.md.

:func:`answer_or_reference` lets later cells use the learner's answer when it passes, and the course's reference
implementation (saying so) when it does not, so a student copy runs to the end with nothing filled in.

Exercises, by notebook: 01 ``global_avg_pool``, ``flatten_head_params``; 02 ``adaptive_windows``, ``gap_module``;
03 ``seed_block``, ``per_class_accuracy``; 04 ``nin_head``, ``shift_right_down``; 05 ``class_activation_map``,
``peak_cell``; 06 (appendix) ``smoothed_targets``, ``ema_update``.

Layout: :mod:`.sandbox` runs an answer safely (what it puts back, how it spots the reference); :mod:`.exercises`
holds the twelve checks and their references. To add an exercise, see :mod:`.exercises`.
"""

from __future__ import annotations

import sys

from . import sandbox
from .exercises import (CHECKS, REFERENCES, adaptive_windows, answer_or_reference, class_activation_map, ema_update,
                        flatten_head_params, gap_module, global_avg_pool, nin_head, peak_cell, per_class_accuracy,
                        ref_adaptive_windows, ref_class_activation_map, ref_ema_update, ref_flatten_head_params,
                        ref_gap_module, ref_global_avg_pool, ref_nin_head, ref_peak_cell, ref_per_class_accuracy,
                        ref_seed_block, ref_shift_right_down, ref_smoothed_targets, report, seed_block,
                        shift_right_down, smoothed_targets)
from .sandbox import CORRECT, NOT_ATTEMPTED, WRONG, CheckResult

__all__ = [
    "CORRECT", "NOT_ATTEMPTED", "WRONG", "CheckResult", "CHECKS", "REFERENCES", "answer_or_reference", "report",
    "global_avg_pool", "flatten_head_params", "adaptive_windows", "gap_module", "seed_block", "per_class_accuracy",
    "nin_head", "shift_right_down", "class_activation_map", "peak_cell", "smoothed_targets", "ema_update",
    "ref_global_avg_pool", "ref_flatten_head_params", "ref_adaptive_windows", "ref_gap_module", "ref_seed_block",
    "ref_per_class_accuracy", "ref_nin_head", "ref_shift_right_down", "ref_class_activation_map", "ref_peak_cell",
    "ref_smoothed_targets", "ref_ema_update",
]

# last, with every name above bound: an answer that replaces one (checks.answer_or_reference = ...) is caught too
sandbox.watch(__name__, sys.modules[__name__])
