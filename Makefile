# routerkit — two commands do everything on a fresh Debian machine:
#   make demo   set up what is missing, then run the whole journey on the virtual sample
#   make test   set up what is missing, then run the test suite (hil tests included)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
LINT_PATHS := toolkit tests benchmarks examples
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Host packages: the virtual sample (QEMU, stock U-Boot), firmware build tools, serial peers,
# the signify cross-check, tmux for the terminal test, chromium for the build-log page test,
# Noto Sans CJK for Chinese on the share card and the weekly page.
APT_PACKAGES := qemu-system-arm qemu-utils u-boot-qemu u-boot-tools device-tree-compiler \
	busybox-static dropbear-bin ser2net socat lrzsz cpio e2fsprogs dosfstools mtools \
	signify-openbsd openssh-client openssh-server tmux chromium fdisk iproute2 ca-certificates \
	fonts-noto-cjk

.PHONY: help setup apt venv demo test check test-fast bench reliability lint typecheck clean i18n

help:
	@echo "make demo         set up, then run the whole journey on the virtual sample"
	@echo "make test         set up, then run every test (unit + hil), and the every_board"
	@echo "                  journeys again on each other shipped board (es-arm32)"
	@echo "make bench        run every benchmark in benchmarks/ (BENCH='share photos' for some);"
	@echo "                  fails if any of them failed or did not print its figures"
	@echo "make reliability  long fault-injection runs"
	@echo "make lint         ruff check, ruff format --check, mypy (also run by make test)"

setup: apt venv

# Installs only what is missing; a no-op (one dpkg-query) when everything is there.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,heic]'
	@touch $@

venv: $(VENV)/.installed

demo: setup
	$(BIN)/routerkit demo

# Every shipped board besides the default (es-virt, which the whole suite runs on): the journeys
# marked `every_board` run again on each of them, on that board's own virtual sample.
OTHER_BOARDS := $(filter-out es-virt,$(basename $(notdir $(wildcard firmware/boards/*.toml))))

# Lint first (seconds), then every test, then the journeys on every other board; a pass that
# fails stops make with its summary closing the log.
test: setup check
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	@for board in $(OTHER_BOARDS); do \
		echo "== the every_board journeys on $$board"; \
		ROUTERKIT_TEST_BOARD=$$board $(BIN)/python -m pytest -q -p no:cacheprovider \
			-m every_board $(PYTEST_ARGS) || exit 1; \
	done

# ruff (lint + formatting) and mypy, as CI runs them.
check: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

test-fast: setup
	$(BIN)/python -m pytest -q -m "not hil" $(PYTEST_ARGS)

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/_run_all.py $(BENCH)

reliability: setup
	ROUTERKIT_RELIABILITY=1 $(BIN)/python -m pytest -q -m reliability $(PYTEST_ARGS)

lint: check

# Messages: extract (Babel, through toolkit.i18n.extract), merge into the zh_CN catalog, compile.
# Translate the new empty msgstr entries in the .po, then run it again.
I18N_KEYWORDS := -k t -k both -k t_en -k t_zh -k N_
i18n: venv
	$(BIN)/pybabel extract -F toolkit/locale/babel.cfg $(I18N_KEYWORDS) --sort-output --no-location \
		--project routerkit -o toolkit/locale/routerkit.pot .
	$(BIN)/pybabel update -i toolkit/locale/routerkit.pot -d toolkit/locale -D routerkit -l zh_CN \
		--ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d toolkit/locale -D routerkit --statistics

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
