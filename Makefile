# Set-up and everyday commands. Both `make run` and `make test` work on a fresh machine with
# Python 3.11 and Java 17: they create .venv and install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STORE  ?= ./sparktrack-store

.PHONY: run test bench compat check-java browser clean

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

$(VENV)/.bench: $(VENV)/.base
	$(PY) -m pip install --quiet -e '.[bench]'
	@touch $@

check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "Java 17 is required to run Spark: install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17) or set JAVA_HOME."; \
	  exit 1; }

## browser: Debian's Chromium and its driver, for the MLflow UI browser tests (as root, apt-get)
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing chromium and chromium-driver (for the MLflow UI browser tests)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium chromium-driver; } >/dev/null 2>&1 \
	      || echo "warning: apt-get could not install chromium chromium-driver"; \
	  else \
	    echo "warning: chromium/chromedriver not found: the MLflow UI browser tests need them" \
	         "(Debian: apt-get install chromium chromium-driver; macOS: brew install chromium" \
	         "chromedriver, then set SPARKTRACK_CHROMIUM and SPARKTRACK_CHROMEDRIVER)"; \
	  fi; }

## run: install, then run the main job against the embedded default store ./sparktrack-store
run: check-java $(VENV)/.base
	$(PY) jobs/train_cv.py --store $(STORE)

## test: install with the dev extra, then run the whole suite
test: check-java browser $(VENV)/.dev
	$(PY) -m pytest -q

## bench: sparktrack against MLflow (SQLite store) on the same machine, same run
## The million-run search benchmark fills .bench-stores/runs-1000000 once (about 15 minutes)
## and measures it again on later runs; BENCH_MILLION=0 skips it.
BENCH_MILLION ?= 1
bench: check-java $(VENV)/.bench
	$(PY) jobs/benchmark.py
	@if [ "$(BENCH_MILLION)" != 0 ]; then \
	  $(PY) jobs/bench_search.py --sizes 1000000 --mlflow-sizes --keep .bench-stores; fi

## compat: the Spark-facing tests on the oldest and newest supported pyspark, each in its own
## virtual env (.venv-compat/pyspark-<version>). Not part of `make test`: it downloads both.
## Another set: make compat COMPAT_PYSPARK="4.1.4 4.2.1"
COMPAT_PYSPARK ?= 4.0.5 4.3.0
COMPAT_DIR     := .venv-compat

.PRECIOUS: $(COMPAT_DIR)/pyspark-%/.installed
$(COMPAT_DIR)/pyspark-%/.installed: pyproject.toml
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --upgrade pip
	$(@D)/bin/python -m pip install --quiet -e '.[dev]' 'pyspark[connect]==$*'
	@touch $@

# tests/compat_spark.py keeps the tests that use Spark (the `spark` fixture, or a module that
# imports pyspark): the data source, Spark search and filters, autologging, models.
compat: check-java $(foreach v,$(COMPAT_PYSPARK),$(COMPAT_DIR)/pyspark-$(v)/.installed)
	@failed=; for v in $(COMPAT_PYSPARK); do \
	  echo "== pyspark $$v: Spark-facing tests"; \
	  PYTHONPATH=tests $(COMPAT_DIR)/pyspark-$$v/bin/python -m pytest -q -p compat_spark \
	    -p no:cacheprovider || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "compat: FAILED on pyspark$$failed"; exit 1; fi; \
	echo "compat: passed on pyspark $(COMPAT_PYSPARK)"

clean:
	rm -rf $(VENV) $(COMPAT_DIR) $(STORE) ./sparktrack-scores .pytest_cache
