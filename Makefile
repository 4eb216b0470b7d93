# YokeFlow: `make demo` runs the offline demo on SQLite, `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DB ?= var/demo.sqlite3
DEMO_ENV := DEBUG=1 DATABASE_URL=sqlite:///$(CURDIR)/$(DEMO_DB) PROJECTS_ROOT=$(CURDIR)/var/demo-projects
YF := $(DEMO_ENV) $(PY) manage.py yokeflow

.PHONY: demo serve test lint bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $$(.ci/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2> >(grep -v '^WARNING: Location' >&2)
	$(PY) -m pip install --quiet -r requirements-dev.txt 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

demo: venv
	@rm -rf $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm var/demo-projects
	@$(DEMO_ENV) $(PY) manage.py migrate --verbosity 0
	@$(DEMO_ENV) DJANGO_SUPERUSER_PASSWORD=demo $(PY) manage.py createsuperuser --noinput \
		--username demo --email demo@example.com >/dev/null
	@echo "== create the project from examples/todo/spec.md"
	@$(YF) new "Todo service" --spec examples/todo/spec.md --owner demo
	@echo "== import examples/todo/plan.json"
	@$(YF) import-plan todo-service examples/todo/plan.json
	@echo "== dependency graph: parallel batches and critical path"
	@$(YF) graph todo-service --format ascii
	@echo "== status"
	@$(YF) status todo-service
	@echo
	@echo "Browse it: make serve, then open http://127.0.0.1:8000/ and log in as demo / demo."

serve: venv
	$(DEMO_ENV) $(PY) manage.py runserver 127.0.0.1:8000

test: venv
	@if [ -n "$$DATABASE_URL" ]; then echo "make test: database from DATABASE_URL ($${DATABASE_URL%%://*})"; \
		else echo "make test: no DATABASE_URL, using SQLite (PostgreSQL-only tests are skipped)"; fi
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) bench/graph.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
