# Two commands on a fresh machine:  make demo  (the whole pipeline on the bundled sample, offline)
#                                   make test  (the test suite)
# Both create .venv and install the project into it first; nothing else needs doing by hand.

PYTHON ?= python3
VENV ?= .venv
# torch first, pinned: 2.13.0 is the CPU wheel this project is tested with (on the build machines it
# installs from local disk in seconds; an unpinned torch would pull a multi-GB CUDA build)
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_ALL := $(VENV)/.installed-all

.PHONY: install demo test clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# the tests cover every optional feature, so they get every extra (tensorboard, export, tune)
$(STAMP_ALL): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test,all]"
	touch $(STAMP_ALL)

test: $(STAMP_ALL)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

clean-demo:
	rm -rf demo_output
