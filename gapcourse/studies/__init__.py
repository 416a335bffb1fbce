"""The studies behind the course's committed numbers (docs/RESULTS.md): the head comparison, the recipe
ablation, the gpu-preset study and cpu-cutout check, the budget table and budget-recipe study, the speed bench,
the provenance every results file carries, the run log of `make course`, and the export of the shipped weights.
Every study that writes a results file runs through one runner and one results store (:mod:`.runner`: plan, skip
what is recorded, lock, write each run with provenance). A learner never needs them; the notebooks read their results through :mod:`gapcourse.measured`."""
