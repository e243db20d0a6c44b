#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: `start DIR` initialises one in DIR
# (as an unprivileged user: initdb refuses root), listening only on a Unix socket in DIR, and prints
# the URL to export as VIPCLI_TEST_PG; `stop DIR` stops it. fsync is off (nothing in it is kept),
# unless PG_DURABLE=1 (the benchmarks: a server that syncs its commits, as a chain's would).
# The server binaries are Debian's (outside PATH: pg_config --bindir names their folder).
set -euo pipefail
action="${1:?usage: pg_cluster.sh start|stop DIR}"
dir="${2:?usage: pg_cluster.sh start|stop DIR}"
bindir="$(pg_config --bindir 2>/dev/null || true)"
if [ ! -x "$bindir/initdb" ]; then
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
fi
if [ ! -x "${bindir:-/nonexistent}/initdb" ]; then
    echo "pg_cluster.sh: no PostgreSQL server binaries (install Debian's postgresql package)" >&2
    exit 1
fi
as_owner=()
if [ "$(id -u)" = 0 ]; then
    as_owner=(runuser -u postgres --)
fi
case "$action" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_DURABLE:-0}" = 1 ] && durability=""
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
        "-k $dir -c listen_addresses='' $durability -c max_connections=200" \
        start >/dev/null
    echo "postgresql://postgres@/postgres?host=$dir"
    ;;
stop)
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null || true
    ;;
*)
    echo "usage: pg_cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac
