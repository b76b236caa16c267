# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv and installs
# initlab into it first. torch is pinned here (the CPU build these machines hold); the package itself
# asks only for a range. mup (muP's reference package, for the width sweep's cross-check) declares
# torchvision, whose wheels pull a different torch; it needs neither, so it comes without them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test install clean

$(BIN)/initlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test,ray,watch]"
	$(BIN)/pip install --quiet --no-deps "mup==1.0.0"
	touch $@

install: $(BIN)/initlab

demo: install
	$(BIN)/initlab demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) initlab-out
