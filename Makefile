# azsql-bulk developer entry points. Every target is idempotent.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS := airflow,bench,dev
# The emulator is its own distribution in this repository (never in the product wheel).
EMULATOR := packages/azsql-emulator
# Re-install the Python packages only when their declaration changed.
PIP_STAMP := $(VENV)/.azsql-bulk-installed

.PHONY: setup test unit integration lint doctor clean bench bench-scale demo soak e2e-airflow

setup:
	@PYTHON=$(PYTHON) bash scripts/setup-system.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(MAKE) --no-print-directory $(PIP_STAMP)
	@bash scripts/build-turbodbc.sh $(PY)
	@bash scripts/setup-azurite.sh

$(PIP_STAMP): pyproject.toml CMakeLists.txt $(wildcard native/odbc_shim/*.[ch] native/fastcast/*.c native/bcp/*.c) \
		$(EMULATOR)/pyproject.toml $(EMULATOR)/CMakeLists.txt $(wildcard $(EMULATOR)/native/tdsfast/*.[ch])
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -m pip install --quiet -e $(EMULATOR)
	@touch $@

test: setup
	bash scripts/run-pytest.sh $(PY) tests

unit: setup
	bash scripts/run-pytest.sh $(PY) tests/unit

integration: setup
	bash scripts/run-pytest.sh $(PY) tests/integration

lint: setup
	$(PY) -m ruff check engine $(EMULATOR)/azsql_emulator airflow_integration tests benchmarks
	$(PY) -m mypy

doctor: setup
	$(VENV)/bin/azsql-bulk doctor

bench: setup
	$(PY) benchmarks/run.py

# 100M rows (about 11 GB of Arrow in 100 cached Parquet files, ~10 GB on disk under
# ~/.cache/azsql-bulk/bench) through azsql-bulk load with 4 workers into the discard emulator;
# prints the three scale goals of issue 20. SCALE_ARGS="--rows 5000000" for a quick check.
bench-scale: setup
	$(PY) benchmarks/scale.py $(SCALE_ARGS)

# A real load end to end: emulator, 2M-row Parquet dataset (cached), azsql-bulk load,
# read-back verification. DEMO_ARGS passes options, e.g. make demo DEMO_ARGS="--rows 200000".
demo: setup
	$(PY) scripts/demo.py $(DEMO_ARGS)

# The reliability scenarios, 20 runs each, larger, with each transport (on 2 cores: 28.4 min
# for parameter arrays on 2026-11-25, 21.7 for bulk copy); writes tests/reliability/SOAK.md.
# SOAK_ARGS passes options, e.g. make soak SOAK_ARGS="--runs 3 --transport bulk-copy".
soak: setup
	$(PY) scripts/soak.py $(SOAK_ARGS)

# The example mapped DAG on a real distributed Airflow: PostgreSQL, Redis, the emulator, the
# scheduler, dag-processor, API server and two Celery workers, all started and stopped by
# scripts/e2e_airflow.py. The faults variant: make e2e-airflow E2E_ARGS="--faults --runs 5".
E2E_STAMP := $(VENV)/.azsql-bulk-e2e-installed

e2e-airflow: setup
	@bash scripts/e2e_setup.sh
	@$(MAKE) --no-print-directory $(E2E_STAMP)
	$(PY) scripts/e2e_airflow.py $(E2E_ARGS)

$(E2E_STAMP): pyproject.toml
	$(PY) -m pip install --quiet -e '.[airflow-celery]'
	@touch $@

clean:
	rm -rf build $(EMULATOR)/build .pytest_cache .mypy_cache .ruff_cache
