# Two commands do all the set-up on a fresh machine (see README.md):
#   make book   builds the HTML book into _build/html (warnings are errors)
#   make test   builds the book, then runs every test: unit, property, nbval, real browser
# Both create the virtual environment .venv from requirements.txt on first use.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The kernel that myst-nb and nbval start must import this environment's packages.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export JUPYTER_PLATFORM_DIRS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test lint bench clean

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

test: $(STAMP)
	bash .ci/ensure-chromium
	$(MAKE) book
	$(VENV)/bin/ruff check vgplib tests bench
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf _build
