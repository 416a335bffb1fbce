"""The studies behind the course's committed numbers (docs/RESULTS.md): the head comparison, the recipe
ablation, the gpu-preset study and cpu-cutout check, the budget table and budget-recipe study, the speed bench,
the provenance every results file carries, the run log of `make course`, and the export of the shipped weights.
Every command that writes into gapcourse/results/ goes through one results store (:mod:`.runner`: the file's
shape, lock, provenance): the head comparison, the ablation's three studies, the budget table and the budget-recipe
study run their plans through its runner (skip what is recorded, write each run as it ends); the bench's
``--record`` replaces its one record through the store. Written directly: the run log's ``course_times.json`` (made
whole in the build folder; a maintainer copies it into gapcourse/results/) and the weights' manifest. A learner
never needs them; the notebooks read their results through :mod:`gapcourse.measured`."""
