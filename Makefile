# `make demo`: render the template with its defaults and train the default model offline.
# `make test`: run the template's test suite (renders, installs and trains generated projects).
# Both create .venv on first use; PYTHON picks the interpreter that creates it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR := build/demo

.PHONY: demo test lint format clean

$(BIN)/.installed: requirements-dev.txt requirements-no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements-dev.txt
	$(BIN)/python -m pip install --no-deps -r requirements-no-deps.txt
	touch $@

demo: $(BIN)/.installed
	rm -rf $(DEMO_DIR)
	$(BIN)/cookiecutter --no-input --output-dir $(DEMO_DIR) .
	$(BIN)/python -m pip install --no-build-isolation -e $(DEMO_DIR)/my-ml-project
	cd $(DEMO_DIR)/my-ml-project && WANDB_MODE=offline $(CURDIR)/$(BIN)/python train.py
	@echo
	@echo "Results: $$(ls -d $(CURDIR)/$(DEMO_DIR)/my-ml-project/logs/runs/*/* | tail -n 1)"
	@echo "  metrics.json, checkpoints/{best,last}.ckpt, learning_curves.png, confusion_matrix.png, train.log, wandb/ (offline run)"

# Two workers, one per core; a test file goes to one of them whole (tests/conftest.py), but the
# generated project's own suite runs in slices (tests/test_generated_project.py), spread over both.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 --durations=30

# The template's own Python; the Jinja sources are linted after rendering, by the tests.
LINT_PATHS := hooks tests scripts local_extensions.py

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# Format the template's own Python, and its Jinja sources through a default rendering.
format: $(BIN)/.installed
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/python scripts/format_template.py

clean:
	rm -rf build .pytest_cache .ruff_cache
