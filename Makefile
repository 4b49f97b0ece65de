PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The main jobs on built-in sample data; pictures land in out/.
demo: $(STAMP)
	mkdir -p out
	$(PY) examples/demo.py --out out

test: $(STAMP)
	$(PY) -m pytest -q --durations=20

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]' torch==2.13.0
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out
