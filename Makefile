# One command per habit; CI calls the same targets a person does.
.PHONY: setup up down up-local down-local test lint lint-web bench load chaos compose-e2e

# uv from PyPI when missing, then the whole workspace: every service, library and dev tool,
# compiled to bytecode (see scripts/compile-bytecode).
setup:
	command -v uv >/dev/null 2>&1 || python3 -m pip install uv
	uv sync --all-packages --compile-bytecode
	bash scripts/compile-bytecode

# The whole stack in containers, offline by default (see .env.example); returns once healthy.
up:
	docker compose up --build --wait

down:
	docker compose down

# Every service as a local process against NATS, Redis and Postgres already running here.
up-local:
	uv run python scripts/local_stack.py up

down-local:
	uv run python scripts/local_stack.py down

test:
	bash scripts/test.sh

# The stack built, started and tested end to end in Docker, then removed (CI runs it too).
compose-e2e:
	bash scripts/compose-e2e

lint: lint-web
	uv run ruff check . && uv run ruff format --check . && uv run mypy libs services scripts tests benchmarks

# The browser client's plain ES modules: eslint, and tsc --checkJs on their JSDoc types
# (tools pinned in services/web/package-lock.json; their unit tests run under `make test`).
lint-web: services/web/node_modules
	npm --prefix services/web run --silent lint

services/web/node_modules: services/web/package-lock.json
	npm --prefix services/web ci --no-audit --no-fund
	touch $@

# Every benchmark in turn, each against floors measured in its own run; a missed target is
# reported at the end (benchmarks/RESULTS.md has the figures of a full run, and what each change
# bought). JSON lands in benchmarks/results/.
bench:
	@missed=""; for bench in benchmarks/bench_*.py; do \
		echo "== $$bench"; uv run python "$$bench" || missed="$$missed $$bench"; \
	done; \
	if [ -n "$$missed" ]; then echo "missed a target:$$missed"; exit 1; fi

# Many protocol-level voice sessions, then an exact accounting (LOAD_ARGS to size it).
load:
	uv run python benchmarks/load.py $(LOAD_ARGS)

# The same load while services are killed and NATS, Redis and Postgres restart.
chaos:
	uv run python benchmarks/load.py --chaos $(CHAOS_ARGS)
