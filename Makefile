# gapcourse — the two quick-start commands:
#   make course   run every notebook in order (full profile) and write HTML to build/html/
#   make test     run the test suite (unit tests, the solution notebooks under nbval, the browser test; fast profile)
# Both create the virtual environment in .venv on first use. `make lab` opens JupyterLab on notebooks/.
#   make test-oldest   the tests not marked slow and every notebook (fast profile) on the oldest supported torch/torchvision
#                      (constraints-oldest.txt) and Python (3.10), in a second environment .venv-oldest; CI runs it
#                      after `make test`
#   make check         the fast unit loop for maintainers (tests not marked slow: no notebook, kernel, browser, wheel
#                      or real-data training; under a minute on a 2-core machine)
#   make test-colab    Colab's runtime (Python 3.13, constraints-colab.txt) built with debootstrap and cached outside
#                      the clone; there, every notebook run alone as on Colab from the wheel (needs root; CI runs it)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gapcourse-installed
HTML_DIR := build/html
# Exact torch/torchvision pins for the course environment; `make CONSTRAINTS= course` uses what pip picks.
CONSTRAINTS ?= -c constraints.txt

# A CIFAR-10 copy beside the checkout (as on the course's CI machines) is used when GAPCOURSE_DATA is not set.
SHARED_DATA := ../shared/data/cifar10-jpg
ifeq ($(origin GAPCOURSE_DATA), undefined)
  ifneq ($(wildcard $(SHARED_DATA)/train),)
    export GAPCOURSE_DATA := $(abspath $(SHARED_DATA))
  endif
endif

.PHONY: env course test check test-oldest test-colab lab clean wheel
env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || { echo "Creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install $(CONSTRAINTS) -e ".[dev]"
	$(PY) -c "import torch, torchvision; print('torch', torch.__version__, '| torchvision', torchvision.__version__)"
	@touch $@

# Notebooks `make course` runs (override to run a subset, e.g. `make course NOTEBOOKS=notebooks/01_gap_by_hand.ipynb`).
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

# Stops at the first notebook that fails (pipefail: the exit status is nbconvert's, not the filter's) and exits
# non-zero; each notebook's time and peak memory go into build/html/index.html beside its HTML.
# SKIP_INSTALL=1 uses $(PY) as it is (the tests run `make course` that way with their own interpreter).
INSTALL := $(if $(SKIP_INSTALL),,$(STAMP))

course: $(INSTALL)
	@mkdir -p $(HTML_DIR)
	@set -eo pipefail; rm -f $(HTML_DIR)/runs.tsv; for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile: $${GAPCOURSE_PROFILE:-full})"; start=$$(date +%s); \
	  GAPCOURSE_PROFILE=$${GAPCOURSE_PROFILE:-full} $(PY) -m gapcourse.studies.runlog $(HTML_DIR)/runs.tsv "$$nb" -- \
	    $(PY) -m jupyter nbconvert --to html --execute \
	    --ExecutePreprocessor.timeout=-1 --output-dir $(HTML_DIR) "$$nb" 2>&1 | { grep -v '^\[NbConvertApp\] Writing' || true; } \
	    || { echo "FAILED: $$nb (see the error above); the course run stops here." >&2; exit 1; }; \
	  echo "   done in $$(( $$(date +%s) - start )) s"; \
	done
	@$(PY) -m gapcourse.studies.runlog --index $(HTML_DIR)
	@echo; echo "Executed notebooks, rendered to HTML: $(abspath $(HTML_DIR))/index.html"

# The unit tests and the six solution notebooks under nbval on the newest pair; the Colab rehearsal (every student and
# solution notebook alone, from the wheel) is left to `make test-colab`, on Colab's own versions (the in-process tests
# of the install cell in tests/test_colab_rehearsal.py still run here).
SOLUTION_NOTEBOOKS := $(wildcard notebooks/[0-9][0-9]_*.ipynb)
NO_REHEARSAL := --deselect tests/test_colab_rehearsal.py::test_runs_alone_as_on_colab \
	--deselect tests/test_colab_rehearsal.py::test_unreachable_source_gives_advice_then_a_clear_import_error
# nbval's options for the notebooks (a notebook as a test: its outputs are not compared, only errors fail it).
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with=tests/sanitize.cfg
test: $(STAMP)
	GAPCOURSE_PROFILE=fast $(PY) -m pytest $(NBVAL) tests $(SOLUTION_NOTEBOOKS) $(NO_REHEARSAL)

# The maintainer's fast loop: every test not marked slow (pyproject.toml's markers), in under a minute.
check: $(STAMP)
	GAPCOURSE_PROFILE=fast $(PY) -m pytest tests -m "not slow" -q

# The oldest pair the course supports (pyproject.toml's lower bounds), installed the same way as .venv: the tests not
# marked slow and every notebook (solutions and student copies) under nbval. The slow tests (grader kernels, browser,
# wheel, real-data training) run in `make test`, the Colab rehearsal in `make test-colab`.
VENV_OLDEST ?= .venv-oldest
# ... on the oldest Python the course supports (pyproject.toml's requires-python: 3.10) where this machine has one
# (the system's or pyenv's), else on $(PYTHON)
PYTHON_OLDEST ?= $(or $(firstword $(wildcard /usr/bin/python3.10 /usr/local/bin/python3.10 \
	$(HOME)/.pyenv/versions/3.10*/bin/python3.10)),$(PYTHON))
PY_OLDEST := $(VENV_OLDEST)/bin/python
STAMP_OLDEST := $(VENV_OLDEST)/.gapcourse-installed

$(STAMP_OLDEST): pyproject.toml constraints-oldest.txt
	@test -x $(PY_OLDEST) || { echo "Creating $(VENV_OLDEST) with $$($(PYTHON_OLDEST) --version)"; $(PYTHON_OLDEST) -m venv $(VENV_OLDEST); }
	$(PY_OLDEST) -m pip install -q --upgrade pip
	$(PY_OLDEST) -m pip install -c constraints-oldest.txt -e ".[dev]"
	$(PY_OLDEST) -c "import torch, torchvision; print('torch', torch.__version__, '| torchvision', torchvision.__version__)"
	@touch $@

test-oldest: $(STAMP_OLDEST)
	GAPCOURSE_PROFILE=fast $(PY_OLDEST) -m pytest $(NBVAL) tests notebooks -m "not slow"

# Colab's runtime (tools/colab_env.py): Debian trixie's Python 3.13 in a debootstrap root with exactly the versions in
# constraints-colab.txt, cached under ~/.cache/gapcourse-colab (GAPCOURSE_COLAB_CACHE) and rebuilt only when that file
# or the build recipe changes; there, the Colab rehearsal (every student and solution notebook alone, its install cell
# installing the wheel), tests/test_colab_env.py and the T4 precision tests. Needs root (debootstrap, mount, chroot).
test-colab:
	GAPCOURSE_PROFILE=fast $(PYTHON) tools/colab_env.py test

# A wheel of the helpers, e.g. to upload to Colab when the install cell cannot reach the repository.
wheel: $(STAMP)
	rm -rf build  # setuptools copies build/lib as it finds it: modules since moved away would ship beside their moves
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .
	@echo "Wheel: $$(ls -1 dist/gapcourse-*.whl | tail -1) (upload it to Colab, then: !pip install --no-deps /content/<file>)"

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks/

clean:
	rm -rf build dist *.egg-info
