"""Where the modules of earlier versions of the course went. Since the package was regrouped in three layers (the
learner's helpers at the top, :mod:`gapcourse.studies`, :mod:`gapcourse.classroom`), an old import or ``python -m``
command (a student copy started before, a script, muscle memory) gets a ``ModuleNotFoundError`` that says where the
module is now, instead of a bare "No module named ...". The layout is in docs/reference.md."""

from __future__ import annotations

import importlib.abc
import sys

MOVED = {
    "gapcourse.experiments": "gapcourse.canvas (shifts, canvases, dilution), gapcourse.regimes (the regimes, "
                             "train_or_load, measure), gapcourse.measured (the committed results) and "
                             "gapcourse.studies.heads (compare-heads)",
    "gapcourse.budget_table": "gapcourse.measured (load_table, rows_of_width) and gapcourse.studies.budget_table",
    "gapcourse.ablation": "gapcourse.measured (steps, ablation_markdown) and gapcourse.studies.ablation",
    "gapcourse.provenance": "gapcourse.studies.provenance",
    "gapcourse.bench": "gapcourse.studies.bench",
    "gapcourse.runlog": "gapcourse.studies.runlog (a notebook's headline: gapcourse.headline)",
    "gapcourse.resume": "gapcourse.studies.resume",
    "gapcourse.grade": "gapcourse.classroom.grade (or `python -m gapcourse grade`)",
    "gapcourse.colab": "gapcourse.classroom.colab",
}


class MovedModules(importlib.abc.MetaPathFinder):
    """Asked last (after every real finder has failed): an old module name gets an error that names its new place."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            raise ModuleNotFoundError(f"{fullname} has moved: it is now {MOVED[fullname]}. A notebook from an earlier "
                                      "version of the course imports the old name: take the current notebook "
                                      "(docs/reference.md, Layout).", name=fullname)
        return None


def install() -> None:
    """Add the finder once, at the end of ``sys.meta_path`` (a module that exists is always found first)."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.append(MovedModules())
