#!/usr/bin/env bash
# Run every test against real servers. Installs uv if it is missing. NATS is private to the
# run (a nats-server from the locked dev dependencies) unless NATS_URL is set: a stack already
# running on the shared NATS would compete for the tests' consumers. Redis is private too (a
# redis-server on the PATH, in a temporary folder) unless REDIS_URL is set: the gateway's sweep
# set and rate counters are deployment-wide keys, and what an earlier run left there would
# reach this one. Without a redis-server, the one on the usual local port is used. Postgres
# comes from DATABASE_URL, else the usual local port; each run makes a fresh database on it.
# Without a server, the fixtures try a testcontainer, then skip with the reason.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
uv sync --all-packages --frozen --quiet --compile-bytecode
bash scripts/compile-bytecode

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1 && listening 6379; then
  export REDIS_URL=redis://127.0.0.1:6379/0
fi
if [ -z "${DATABASE_URL:-}" ] && listening 5432; then
  export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
fi

exec uv run pytest "$@"
