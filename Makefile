# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/data
export SURVEY_DATA_DIR ?= $(DATA)
export DAGSTER_HOME ?= $(DATA)/dagster

.PHONY: demo test install lint format ui bench clean

$(BIN)/survey: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/survey

demo: install
	$(BIN)/survey demo --days $${DAYS:-14} --scale $${SCALE:-demo}

test: install
	$(BIN)/ruff check survey_assets survey_assets_tests bench
	$(BIN)/ruff format --check survey_assets survey_assets_tests bench
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check survey_assets survey_assets_tests bench

format:
	$(BIN)/ruff format survey_assets survey_assets_tests bench
	$(BIN)/ruff check --fix survey_assets survey_assets_tests bench

ui: install
	mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/ || true
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	$(BIN)/python bench/lab_dns_qps.py
	$(BIN)/python bench/czds_ingest.py
	$(BIN)/python bench/scan_rate.py
	$(BIN)/python bench/starttls_rate.py

clean:
	rm -rf $(DATA)
