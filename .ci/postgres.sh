#!/usr/bin/env bash
# Install (if needed) and start a throwaway PostgreSQL for the storage tests; prints the URL.
# initdb refuses to run as root, so the cluster belongs to the postgres user.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  fi
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${RUNNER_TEST_POSTGRES_PORT:-54329}
data=$(mktemp -d /tmp/runner-pg.XXXXXX)
chown postgres "$data"
run_as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
run_as_postgres "$bin/initdb -D $data -U postgres -A trust >/dev/null"
# A throwaway cluster: no fsync (PostgreSQL's documented settings for data one can lose), so that
# its writes wait on no disk; the tests check what the server stores, not the disk's durability.
options="-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
run_as_postgres "$bin/pg_ctl -D $data -o '$options' -l $data/log -w start >/dev/null"
run_as_postgres "$bin/createdb -h 127.0.0.1 -p $port -U postgres runner_test"
echo "postgresql://postgres@127.0.0.1:$port/runner_test"
