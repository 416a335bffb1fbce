"""Training recipes and the arithmetic they use. Introduced in notebook 03 (the cpu preset); reused by notebooks 04,
05 and 06, the command line and the studies.

A :class:`Recipe` names every choice that makes training fast, so none of them is hidden. :data:`PRESETS` holds the
tuned recipes; :func:`pick_recipe` chooses one for the device, and :func:`choose_precision` the arithmetic (a pure
function of what the hardware does natively). A recipe with ``budget_s`` trains to a time budget: see
:mod:`gapcourse.budget`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

PRECISIONS = ("bf16", "fp16", "fp32")
TTA_MODES = ("none", "flip", "flip_shift")
WHITEN_MODES = ("none", "init", "frozen")  # Recipe.whiten: off; initialise the first conv; initialise and freeze it


@dataclass(frozen=True)
class Recipe:
    """Every training choice in one place. ``epochs`` is for the full profile; the fast profile runs one epoch."""

    name: str
    epochs: int
    batch_size: int
    lr: float  # peak learning rate of the one-cycle schedule
    width: float = 1.0  # conv width multiplier for the seed body
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True  # False: no weight decay on BatchNorm weights/biases and on layer biases
    label_smoothing: float = 0.1
    augment_padding: int | None = 4  # random shift of up to ±4 px, plus a random mirror; None turns both off
    warmup: float = 0.25  # share of the steps spent raising the learning rate
    ema: float = 0.0  # decay per step of a moving average of the weights, which is what gets evaluated (0: off)
    precision: str = "auto"  # "auto": choose_precision() for the device; or "bf16", "fp16", "fp32"
    channels_last: bool = False
    tta: str = "none"  # test-time augmentation: "none", "flip" (image + mirror), "flip_shift" (+ 1 px shifts)
    low_res_epochs: int = 0  # progressive resizing: the first epochs (never all) train on images shrunk to low_res px
    low_res: int = 24  # ... which GAP makes possible (any input size) and which costs about (24/32)² of a step
    cutout: int = 0  # side of a square (px) blanked to the mean colour at a random place in each training image (0: off)
    whiten: str = "none"  # first conv starts as patch-whitening filters: "init", or "frozen" (kept fixed); see
    # gapcourse.initialisation
    dirac: bool = False  # the other convs start with identity filters for their first in_channels outputs
    budget_s: float | None = None  # seconds for the whole run (None: run `epochs`): gapcourse.budget.fit_to_budget
    # plans the epochs that fit; gapcourse.train.fit refuses a recipe with a budget

    def __post_init__(self):
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} (need at least 1)")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} (need at least 1)")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} (need > 0)")
        if not 0 <= self.ema < 1:
            problems.append(f"ema={self.ema} (a decay in [0, 1); 0 turns it off)")
        if self.precision not in ("auto", *PRECISIONS):
            problems.append(f"precision={self.precision!r} (expected 'auto' or one of {PRECISIONS})")
        if self.tta not in TTA_MODES:
            problems.append(f"tta={self.tta!r} (expected one of {TTA_MODES})")
        if self.low_res_epochs < 0:
            problems.append(f"low_res_epochs={self.low_res_epochs} (expected ≥ 0; at most epochs − 1 are used)")
        if not 8 <= self.low_res <= 64:
            problems.append(f"low_res={self.low_res} (expected 8..64 px)")
        if not 0 <= self.cutout <= 32:
            problems.append(f"cutout={self.cutout} (a square side in px, 0..32; 0 turns it off)")
        if self.whiten not in WHITEN_MODES:
            problems.append(f"whiten={self.whiten!r} (expected one of {WHITEN_MODES})")
        if not isinstance(self.dirac, bool):
            problems.append(f"dirac={self.dirac!r} (expected True or False)")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing={self.label_smoothing} (expected 0 ≤ value < 1)")
        if self.budget_s is not None and not (isinstance(self.budget_s, (int, float)) and 0 < self.budget_s < 1e7):
            problems.append(f"budget_s={self.budget_s!r} (seconds > 0, e.g. 240 for 4 minutes; None: no budget)")
        if problems:
            raise ValueError(f"Recipe {self.name!r} is not valid: " + "; ".join(problems) + ".")

    def describe(self) -> str:
        """Every field as ``name=value``. Fields added after the first results were recorded (from ``cutout`` on)
        appear only when they differ from their default, so a recorded recipe still names the same recipe."""
        later = _LATER_FIELDS
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items()
                         if k not in later or v != later[k])


# Fields added after results were first recorded, with their defaults (see Recipe.describe).
_LATER_FIELDS = {"cutout": 0, "whiten": "none", "dirac": False, "budget_s": None}

# The recommended training budget for notebook 03 on a CPU (4 minutes, calibration and evaluation included): the
# notebook's six minutes leave two for loading data and showing results. Presets carry no budget themselves, so
# their recorded results stay theirs; pick_recipe(device, budget_s=...) adds one.
DEFAULT_BUDGET_S = 240.0

# The cpu preset at half width, as the recipe ablation built it and as the committed ablation, cpu-cutout check,
# heads comparison (its regimes) and benchmark measured it. The budget-recipe study then narrowed the preset (below);
# this one is kept, frozen, so that those results stay results of the recipe they name.
CPU_HALF_WIDTH = Recipe("cpu", epochs=16, batch_size=256, lr=0.2, width=0.5, label_smoothing=0.2,
                        decay_norm_and_bias=False, ema=0.99, channels_last=True, tta="flip_shift", low_res_epochs=8)

# The width the budget-recipe study chose for the cpu preset (gapcourse.studies.budget_recipe; docs: its table):
# in notebook 03's four minutes on a 2-core CPU in fp32, a narrower network trains more epochs and ends ahead.
CPU_WIDTH = 0.375

PRESETS: dict[str, Recipe] = {
    # A 2-core CPU: the seed's layers at 3/8 width, trained to notebook 03's 4-minute budget (or 16 epochs without
    # one). The first half of the epochs trains on 24 px images (progressive resizing, which a global-pooling head
    # makes possible: the same weights take either size).
    "cpu": replace(CPU_HALF_WIDTH, width=CPU_WIDTH),
    # Apple GPUs: the cpu preset's width, learning rate and label smoothing, but without channels_last (it has given
    # wrong results and slow backward passes on MPS in several torch releases), in fp32 and at full resolution
    # throughout. Not measured by the course: no Mac was available; the width
    # follows the cpu preset's on the assumption that a laptop GPU's budget also buys only a few epochs.
    "mps": Recipe("mps", epochs=16, batch_size=256, lr=0.2, width=CPU_WIDTH, label_smoothing=0.2,
                  decay_norm_and_bias=False, ema=0.99, precision="fp32", tta="flip_shift"),
    # One CUDA GPU: the seed network unchanged (width 1). Not measured by the course yet (docs/studies/gpu-preset.md).
    "gpu": Recipe("gpu", epochs=24, batch_size=512, lr=0.4, width=1.0, label_smoothing=0.2,
                  decay_norm_and_bias=False, ema=0.99, channels_last=True, tta="flip_shift"),
    # Plain fp32, no tricks: the baseline the presets are measured against.
    "plain": Recipe("plain", epochs=8, batch_size=128, lr=0.05, width=1.0, label_smoothing=0.0, nesterov=False,
                    precision="fp32"),
}


# --------------------------------------------------------------------------------------------------------------------
# Arithmetic precision, chosen by what the hardware does natively


@dataclass(frozen=True)
class Precision:
    """The arithmetic a run uses, and why. ``mode`` is ``bf16``, ``fp16`` (with a gradient scaler) or ``fp32``."""

    mode: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients can underflow to 0; a scaler multiplies the loss before backward and divides after."""
        return self.mode == "fp16"


def choose_precision(device_type: str, cuda_capability: tuple[int, int] | None = None,
                     cpu_native_bf16: bool = False) -> Precision:
    """The fastest arithmetic that is native on the hardware. A pure function of what it is told, so every branch
    is tested without the hardware:

    * CUDA, compute capability ≥ 8.0 (A100, RTX 30xx/40xx, L4, H100): bf16 autocast; cuDNN has bf16 convolutions.
    * CUDA 7.x (V100 7.0, T4 and RTX 20xx 7.5): fp16 autocast with a gradient scaler; cuDNN refuses bf16
      convolutions below 8.0, so bf16 would fall back to a slow path (``torch.cuda.is_bf16_supported()`` says True on
      every CUDA GPU, because it counts emulation).
    * older CUDA GPUs: fp32 (no fast 16-bit units).
    * a CPU with native bf16 (AVX-512 BF16 or AMX): bf16 autocast; any other CPU: fp32 (emulated bf16 is slower).
    * Apple MPS and anything else: fp32.
    """
    if device_type == "cuda":
        if cuda_capability is None:
            return Precision("fp32", "CUDA device of unknown compute capability")
        cap = f"{cuda_capability[0]}.{cuda_capability[1]}"
        if tuple(cuda_capability) >= (8, 0):
            return Precision("bf16", f"CUDA compute capability {cap} ≥ 8.0: native bf16 (cuDNN bf16 convolutions)")
        if tuple(cuda_capability) >= (7, 0):
            return Precision("fp16", f"CUDA compute capability {cap}: tensor cores do fp16 but cuDNN has no bf16 "
                                     "convolutions below 8.0; fp16 autocast with a gradient scaler")
        return Precision("fp32", f"CUDA compute capability {cap} < 7.0: no fast 16-bit arithmetic")
    if device_type == "cpu":
        if cpu_native_bf16:
            return Precision("bf16", "CPU with native bf16 instructions (AVX-512 BF16 or AMX)")
        return Precision("fp32", "CPU without native bf16 (emulated bf16 is slower than fp32)")
    if device_type == "mps":
        return Precision("fp32", "Apple MPS: fp32 (the course has not measured 16-bit autocast there)")
    return Precision("fp32", f"device type {device_type!r}: fp32")


def cpu_has_native_bf16() -> bool:
    """True if this CPU has AVX-512 BF16 or AMX (read from /proc/cpuinfo on Linux; False where it cannot tell)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def native_precision(device: torch.device | str) -> Precision:
    """:func:`choose_precision` for a real device, reading its capability."""
    device = torch.device(device)
    capability = None
    if device.type == "cuda" and torch.cuda.is_available():
        capability = torch.cuda.get_device_capability(device)
    return choose_precision(device.type, capability, device.type == "cpu" and cpu_has_native_bf16())


def resolve_precision(recipe: Recipe | None, device: torch.device | str) -> Precision:
    """The precision a recipe asks for on ``device``: its own choice if it names one, else the native one."""
    device = torch.device(device)
    if recipe is None:
        return Precision("fp32", "no recipe: plain fp32")
    if recipe.precision == "auto":
        return native_precision(device)
    if device.type == "meta":
        return Precision("fp32", "meta device: shapes only")
    return Precision(recipe.precision, f"set by recipe '{recipe.name}'")


def measures_precision(recipe: Recipe, device: torch.device | str) -> bool:
    """True when :func:`gapcourse.budget.fit_to_budget` chooses between bf16 and fp32 by timing both rather than by
    the rule of :func:`choose_precision`: the recipe says ``auto``, has a budget, and runs on a CPU with native bf16.
    Native bf16 is not always faster there (measured by hand): on the course's AMD EPYC it trained the cpu preset's
    network 2.2× faster than fp32, on an Intel Xeon with AVX-512 BF16 (no AMX) 0.7× as fast."""
    return (recipe.precision == "auto" and recipe.budget_s is not None and torch.device(device).type == "cpu"
            and cpu_has_native_bf16())


def pick_recipe(device: torch.device | str, name: str | None = None, *, announce: bool = True,
                budget_s: float | None = None) -> Recipe:
    """The preset for ``device`` (``gpu`` on CUDA, ``mps`` on Apple GPUs, else ``cpu``) or the one named, with its
    precision resolved for the device (recorded in the recipe, so checkpoints say what was used).

    ``budget_s`` (seconds) gives a recipe for :func:`gapcourse.budget.fit_to_budget`, which plans the number of epochs
    that fit this machine. On a CPU with native bf16 the precision then stays ``auto``: it times bf16 and fp32
    and keeps the one whose plan fits more epochs, or the same epochs sooner (its ``history.plan`` records which
    and why)."""
    device = torch.device(device)
    chosen = name or {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
    if chosen not in PRESETS:
        raise ValueError(f"Unknown preset {chosen!r}; expected one of {sorted(PRESETS)}.")
    recipe = PRESETS[chosen]
    if budget_s is not None:
        recipe = replace(recipe, budget_s=budget_s)
    precision = resolve_precision(recipe, device)
    if measures_precision(recipe, device):
        arithmetic = "bf16 or fp32, whichever fits more epochs on this CPU (timed when training starts)"
    else:
        recipe = replace(recipe, precision=precision.mode)
        arithmetic = f"{precision.mode} ({precision.reason})"
    if announce:
        length = (f"as many epochs as fit {recipe.budget_s:.0f} s (shaped on {recipe.epochs})"
                  if recipe.budget_s is not None else f"{recipe.epochs} epochs (full profile)")
        print(f"Recipe '{recipe.name}': {length}, batch {recipe.batch_size}, "
              f"width ×{recipe.width}, {arithmetic}, channels_last={recipe.channels_last}")
    return recipe
