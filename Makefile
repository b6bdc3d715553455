# Two commands do all set-up on a fresh machine: `make test` and `make book`.
# Both create .venv and install what they need when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Offline data mirror (CI and this project's machines): the shared folder beside the repo.
LIDUTILS_DATA_DIR ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
export LIDUTILS_DATA_DIR
export MPLBACKEND := Agg
.PHONY: install test test-fast book dryrun check-book browser lab publish bench clean course

install: $(STAMP)

# The install steps live in scripts/install.sh, shared with Binder (binder/postBuild). The
# browser (apt), which only `make test` and `make check-book` need, installs beside them; its
# failure here is reported, not fatal (those two targets stop on it with the fix).
$(STAMP): pyproject.toml Makefile scripts/install.sh requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(MAKE) --no-print-directory browser >$(VENV)/browser.log 2>&1 & browser=$$!; \
	sh scripts/install.sh $(PY) && { wait $$browser || cat $(VENV)/browser.log; }
	touch $(STAMP)

# Two test processes (pytest-xdist), a module per process at a time (module fixtures such as
# the smoke run of every notebook are built once); the 15 slowest tests are listed at the end.
PYTEST_ARGS ?= -n 2 --dist loadscope --durations=15
test: $(STAMP) browser
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/bench_lid.py

# Executes every claim notebook (offline tier) with papermill into _build/book_src, writes
# results/*.json, then `jupyter-book build -W` into _build/html. Caches: data/cache/.
book: $(STAMP)
	$(PY) scripts/build_book.py

# The course kit (course/*.ipynb, otter-grader master notebooks) into _build/course/: student
# notebooks, autograder zips (otter run, offline, no Docker), solved notebooks, rubric.md.
course: $(STAMP)
	$(PY) course/build.py --out _build/course

# The paper tier's code path end to end on stand-ins (untrained timm models of every family,
# generated NSD-layout data): chapters 01-05 and the claims page into _build/dryrun/_build/html,
# results in _build/dryrun/results, every page and record marked as a dry run.
dryrun: $(STAMP)
	$(PY) scripts/build_book.py --dryrun

# Opens every page of _build/html in headless Chromium: JS errors, raw math, overflow,
# images, internal links, machine paths; screenshots in _build/screenshots/.
check-book: $(STAMP) browser
	$(PY) scripts/check_book.py

# Headless Chromium + chromedriver (Debian packages) for check-book and tests/book/test_book.py.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "[browser] chromium/chromedriver missing: apt-get install -y chromium chromium-driver"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
	  && command -v chromedriver >/dev/null || { \
	  echo "[browser] FAILED: could not install headless Chromium (Debian packages chromium and" \
	       "chromium-driver, needs root). make check-book and the browser tests need it." >&2; exit 1; }; }

# JupyterLab on the project's kernel (.venv) with the notebooks; LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

publish: book
	$(VENV)/bin/ghp-import -n -p -f _build/html

clean:
	rm -rf _build results/*.json
