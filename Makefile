# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(CURDIR)/data
export SURVEY_DATA_DIR ?= $(DATA)
export DAGSTER_HOME ?= $(DATA)/dagster
# The compiled parts (rust/, standard library only): rustup's cargo, or Debian's.
CARGO ?= $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)
NATIVE := survey_assets/sources/libczds_reader.so survey_assets/dns/libdns_fastpath.so

.PHONY: demo test install native lint format ui bench clean

$(BIN)/survey: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

survey_assets/sources/libczds_reader.so: $(wildcard rust/czds_reader/*.*) $(wildcard rust/czds_reader/src/*.rs)
	$(CARGO) build -q --release --offline --manifest-path rust/czds_reader/Cargo.toml
	cp rust/czds_reader/target/release/libczds_reader.so $@.tmp && mv $@.tmp $@

survey_assets/dns/libdns_fastpath.so: $(wildcard rust/dns_fastpath/*.*) $(wildcard rust/dns_fastpath/src/*.rs)
	$(CARGO) build -q --release --offline --manifest-path rust/dns_fastpath/Cargo.toml
	cp rust/dns_fastpath/target/release/libdns_fastpath.so $@.tmp && mv $@.tmp $@

native: $(NATIVE)

install: $(BIN)/survey $(NATIVE)

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
