"""A time budget's arithmetic: what one epoch costs, how many epochs fit, and the record of the plan. Introduced in
notebook 03 (its budget section); :mod:`gapcourse.budget` measures this machine and trains to the plan.

Everything here is pure (no timing, no training), so a plan can be checked exactly: :class:`Costs` predicts a run's
seconds from measured images/s, :func:`plan_epochs` picks the most epochs that fit, and :class:`Plan` (a budgeted
run's ``history.plan``) records the measurements, the plan and, after the run, how long it took.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from .recipes import Recipe

OVERSHOOT_TOLERANCE = 0.05  # a run that took more than 5 % longer than its budget is reported (never silently)


def low_res_share(low_res_epochs: int, shape_epochs: int, epochs: int) -> int:
    """How many of ``epochs`` train at low resolution when the recipe put ``low_res_epochs`` of its ``shape_epochs``
    there: the same share, rounded, and never every epoch."""
    if not low_res_epochs:
        return 0
    return min(epochs - 1, round(low_res_epochs * epochs / shape_epochs))


def low_res_epochs_for(recipe: Recipe, epochs: int) -> int:
    """:func:`low_res_share` for a recipe: what :func:`gapcourse.train.fit` runs at low resolution."""
    return low_res_share(recipe.low_res_epochs, recipe.epochs, epochs)


@dataclass(frozen=True)
class Costs:
    """What one epoch costs on this machine, from the calibration; :meth:`seconds` predicts a whole run."""

    images_per_epoch: int
    full_img_per_s: float  # training images/s at full resolution
    low_img_per_s: float  # ... at the recipe's low resolution (the full figure when there is none)
    shape_epochs: int  # the recipe's epochs and low-resolution epochs: the share kept at any length
    shape_low_res_epochs: int
    eval_images: int = 0  # test images evaluated after each epoch (0: no test split)
    eval_img_per_s: float = math.inf  # one view
    tta_views: int = 1  # views per test image in the last evaluation

    def low_res_epochs(self, epochs: int) -> int:
        return low_res_share(self.shape_low_res_epochs, self.shape_epochs, epochs)

    def train_seconds(self, epochs: int) -> float:
        low = self.low_res_epochs(epochs)
        return self.images_per_epoch * (low / self.low_img_per_s + (epochs - low) / self.full_img_per_s)

    def eval_seconds(self, epochs: int) -> float:
        """One view after each epoch but the last, the recipe's test-time views after the last."""
        return self.eval_images * (epochs - 1 + self.tta_views) / self.eval_img_per_s

    def seconds(self, epochs: int) -> float:
        return self.train_seconds(epochs) + self.eval_seconds(epochs)


def plan_epochs(available_s: float, costs: Costs, max_epochs: int = 10_000) -> int:
    """The largest number of epochs (at least 1, at most ``max_epochs``) predicted to take at most ``available_s``
    seconds. The prediction grows with every epoch, so the first that does not fit ends the search."""
    epochs = 1
    while epochs < max_epochs and costs.seconds(epochs + 1) <= available_s:
        epochs += 1
    return epochs


@dataclass
class Plan:
    """How a :func:`gapcourse.budget.fit_to_budget` run was planned, and how long it took. Seconds of
    ``predicted_s`` and ``actual_s`` cover the whole run (calibration, training, evaluation); ``*_train_s`` the
    training only."""

    budget_s: float
    epochs: int  # epochs run
    planned_epochs: int  # epochs the budget allows (the fast profile then runs one)
    low_res_epochs: int
    low_res: int
    steps_per_epoch: int
    batch_size: int
    threads: int
    precision: str
    precision_reason: str
    train_img_per_s: dict[str, float] = field(default_factory=dict)
    eval_img_per_s: dict[str, float] = field(default_factory=dict)
    calibration_s: float = 0.0
    predicted_s: float = 0.0
    predicted_train_s: float = 0.0
    actual_s: float | None = None
    actual_train_s: float | None = None
    note: str = ""

    @property
    def overshoot_s(self) -> float | None:
        """Actual minus budget (negative: time to spare); None before the run ended."""
        return None if self.actual_s is None else self.actual_s - self.budget_s

    @property
    def over_budget(self) -> bool:
        """True when the run took more than :data:`OVERSHOOT_TOLERANCE` longer than the budget."""
        return self.actual_s is not None and self.actual_s > self.budget_s * (1 + OVERSHOOT_TOLERANCE)

    def fixed_recipe(self, recipe: Recipe) -> Recipe:
        """``recipe`` with this plan's precision and no budget: with ``fit(..., epochs=self.epochs)`` and the same
        seed it repeats the planned run exactly (it is what :func:`gapcourse.budget.fit_to_budget` trains)."""
        return replace(recipe, precision=self.precision, budget_s=None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> Plan:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def describe_plan(self) -> str:
        """One line: what was measured and what was planned."""
        measured = ", ".join(f"{v:,.0f} img/s {k.replace('@', ' at ').replace('px', ' px')}"
                             for k, v in self.train_img_per_s.items())
        low = f", the first {self.low_res_epochs} at {self.low_res} px" if self.low_res_epochs else ""
        planned = "" if self.planned_epochs == self.epochs else f" (the budget allows {self.planned_epochs})"
        return (f"Budget {self.budget_s:.0f} s: calibration {self.calibration_s:.1f} s measured {measured}; "
                f"{self.precision} ({self.precision_reason}). Plan: {self.epochs} epoch{'s' * (self.epochs != 1)}"
                f"{low}{planned}, "
                f"{self.steps_per_epoch} steps each, predicted {self.predicted_s:.0f} s in all "
                f"({self.predicted_train_s:.0f} s of training)." + (f" {self.note}" if self.note else ""))

    def summary(self) -> str:
        """The plan and, after the run, the time it took against the budget."""
        return self.describe_plan() + ("" if self.actual_s is None else " " + self.outcome())

    def outcome(self) -> str:
        """After the run: the time it took against the budget."""
        if self.actual_s is None:
            return "Not run yet."
        return (f"Took {self.actual_s:.0f} s in all ({self.actual_train_s:.0f} s of training): "
                f"{abs(self.overshoot_s):.0f} s {'over' if self.overshoot_s > 0 else 'under'} the budget.")
