# YokeFlow: `make demo` runs the offline demo on SQLite, `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DB ?= var/demo.sqlite3
# The replay model plays examples/<slug>/replay; the demo copies the example under two slugs (sequential and
# parallel) and gives every scripted turn 1 s of simulated model latency, so the two runs can be compared.
# The jail's mode for the demo: what `.ci/ensure-bubblewrap --check` found when `make demo` started (jail if it works).
DEMO_ENV := DEBUG=1 DATABASE_URL=sqlite:///$(CURDIR)/$(DEMO_DB) PROJECTS_ROOT=$(CURDIR)/var/demo-projects \
	SANDBOX=$${SANDBOX:-$$(cat $(CURDIR)/var/demo-sandbox 2>/dev/null || echo jail)} \
	REPLAY_ROOT=$(CURDIR)/var/demo-replay REPLAY_TURN_SECONDS=$(or $(TURN_SECONDS),1) Q_WORKERS=4
YF := $(DEMO_ENV) $(PY) manage.py yokeflow
QUIET_QUEUE := 2> >(grep -v 'Enqueued \[' >&2)

.PHONY: demo yf serve test lint bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $$(.ci/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2> >(grep -v '^WARNING: Location' >&2)
	$(PY) -m pip install --quiet -r requirements-dev.txt 2> >(grep -v '^WARNING: Location' >&2)
	@touch $@

demo: venv
	@rm -rf $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm var/demo-projects var/demo-replay var/demo-worker.log
	@mkdir -p var && .ci/ensure-bubblewrap --check > var/demo-sandbox
	@mkdir -p var/demo-replay && cp -r examples/kvstore var/demo-replay/kvstore && \
		cp -r examples/kvstore var/demo-replay/kvstore-sequential
	@$(DEMO_ENV) $(PY) manage.py migrate --verbosity 0
	@$(DEMO_ENV) DJANGO_SUPERUSER_PASSWORD=demo $(PY) manage.py createsuperuser --noinput \
		--username demo --email demo@example.com >/dev/null
	@echo "== create the project twice from examples/kvstore/spec.md: one to build in parallel, one sequentially"
	@$(YF) new kvstore --spec examples/kvstore/spec.md --owner demo
	@$(YF) new kvstore-sequential --spec examples/kvstore/spec.md --owner demo
	@echo "== start a django-q2 cluster with 4 workers (log: var/demo-worker.log)"
	@$(DEMO_ENV) $(PY) manage.py yokeflow worker > var/demo-worker.log 2>&1 & echo $$! > var/demo-worker.pid
	@trap 'kill $$(cat var/demo-worker.pid) 2>/dev/null; rm -f var/demo-worker.pid' EXIT; \
	echo "== plan them: a planning session turns the spec into epics and tasks" && \
	$(YF) plan kvstore --wait $(QUIET_QUEUE) && $(YF) plan kvstore-sequential --wait $(QUIET_QUEUE) && \
	echo "== dependency graph: parallel batches and critical path" && \
	$(YF) graph kvstore --format ascii && \
	echo "== build it with 3 agents in parallel: each task in its own worktree, merged into main once verified" && \
	$(YF) run kvstore --parallel --max-concurrency 3 --wait $(QUIET_QUEUE) && \
	echo "== build the same plan one task at a time, for comparison" && \
	$(YF) run kvstore-sequential --sequential --wait $(QUIET_QUEUE) | tail -n 4 && \
	echo "== wall-clock speedup" && $(YF) compare kvstore-sequential kvstore && \
	echo "== sessions" && $(YF) sessions kvstore && \
	echo "== the generated repository: one merge per task on main, and its own test suite" && \
	git -C var/demo-projects/kvstore/repo log --oneline --first-parent && \
	(cd var/demo-projects/kvstore/repo && python3 -m unittest discover -s tests 2>&1 | tail -n 3)
	@echo
	@echo "Read a transcript: make yf ARGS='transcript 2'   (any yokeflow verb on the demo database)"
	@echo "Costs, models and what the agents learned: make yf ARGS='costs kvstore', make yf ARGS='expertise kvstore database'"
	@echo "Browse it: make serve, then open http://127.0.0.1:8000/ and log in as demo / demo."

yf: venv
	@$(YF) $(ARGS)

serve: venv
	$(DEMO_ENV) $(PY) manage.py runserver 127.0.0.1:8000

test: venv
	@if [ -n "$$DATABASE_URL" ]; then echo "make test: database from DATABASE_URL ($${DATABASE_URL%%://*})"; \
		else echo "make test: no DATABASE_URL, using SQLite (PostgreSQL-only tests are skipped)"; fi
	@mode=$$(.ci/ensure-bubblewrap) && SANDBOX=$${SANDBOX:-$$mode} $(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: venv
	$(PY) bench/graph.py
	$(PY) bench/agent_loop.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
