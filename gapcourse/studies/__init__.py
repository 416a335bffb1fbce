"""The studies behind the course's committed numbers (docs/RESULTS.md): the head comparison, the recipe
ablation, the gpu-preset study and cpu-cutout check, the budget table and budget-recipe study, the speed bench,
the provenance every results file carries, the run log of `make course`, and the export of the shipped weights.
A learner never needs them; the notebooks read their results through :mod:`gapcourse.measured`."""
