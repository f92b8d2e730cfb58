# One entry point for students, instructors, course authors and CI.
# `make demo` and `make test` set everything up on a machine that has only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test export check bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency pins change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tito demo

test: install
	$(BIN)/tito export --all --check
	$(BIN)/python -m pytest
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
	       grading/feedback grading/gradebook.db .tito demo-out
