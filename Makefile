# Two commands do all the set-up: `make run` and `make test`. Both are idempotent: the
# install steps are stamped with the files they depend on and re-run only when those change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# uv resolves and installs the ~270 packages in parallel (about 15 s from an empty cache, where
# pip took about 4 minutes); pip only bootstraps uv (pinned like in constraints.txt) and torch.
UV     := $(BIN)/uv pip install --python $(BIN)/python -q
export UV_LINK_MODE ?= copy
CONFIG ?= configs/dcgan-digits.yaml
# the 25 slowest tests are listed at the end of every run (where the suite's time goes)
PYTEST_ARGS ?= --durations=25
export DO_NOT_TRACK=1 BENTOML_DO_NOT_TRACK=true GX_ANALYTICS_ENABLED=false \
       DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

.PHONY: run test test-fast install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, with pip: 2.13.0 is a CPU build that pip's configuration finds on this machine's
# disk; keep any torch already there (a CUDA build on a GPU box). uv then keeps it too.
$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || { echo "installing torch 2.13.0 (pip)"; \
	  $(PIP) install -q torch==2.13.0; }
	touch $@

$(BIN)/uv: | $(BIN)/python
	$(PIP) install -q "$$(grep -E '^uv==' constraints.txt)"

$(VENV)/.installed: pyproject.toml constraints.txt $(VENV)/.torch | $(BIN)/uv
	@echo "installing genloop and its dependencies (uv)"
	$(UV) -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt $(VENV)/.installed
	$(UV) -c constraints.txt -e '.[dev]'
	touch $@

# the browser tests drive Debian's headless chromium through chromium-driver (no browser
# download at run time): installed here when missing and this runs as root with apt-get;
# otherwise those tests skip and say why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	    >/dev/null) || echo "apt-get could not install chromium: the browser tests will skip"; \
	else echo "chromium/chromedriver missing and not root: the browser tests will skip" \
	  "(sudo apt-get install chromium chromium-driver)"; fi

# the load tools of benchmarks/serving_load.py (Debian's hey and wrk): installed here when
# missing and this runs as root with apt-get; otherwise it says how to install them.
.PHONY: load-tools
load-tools:
	@if command -v hey >/dev/null && command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing hey and wrk (apt-get) for benchmarks/serving_load.py"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey wrk \
	    >/dev/null) || echo "apt-get could not install hey and wrk: benchmarks/serving_load.py needs hey"; \
	else echo "hey/wrk missing and not root: install them for benchmarks/serving_load.py" \
	  "(sudo apt-get install hey wrk)"; fi

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/genloop data init
	$(BIN)/genloop run --config $(CONFIG)

# the full suite (what CI runs)
test: install-dev browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the quick tier: everything not marked slow (no Prefect flows, servers or bento builds)
test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf runs .genloop
