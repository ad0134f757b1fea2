#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on loopback, and stops the server when the command ends.
#
#   scripts/with-postgres.sh swift test --no-parallel
#
# The command sees REEL_TEST_POSTGRES_URL=postgres://reel@127.0.0.1:PORT/reel (trust authentication, loopback only).
# When the server binaries are missing, they are installed with apt-get (Debian's `postgresql` package). PostgreSQL
# refuses to run as root, so as root the cluster belongs to the `postgres` user (created when missing).
set -euo pipefail

find_bin_dir() {
    local dir
    for dir in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")" \
        /usr/local/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [[ -x "$dir/pg_ctl" && -x "$dir/initdb" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if ! BIN=$(find_bin_dir); then
    echo "with-postgres: no PostgreSQL server binaries found; installing Debian's postgresql package" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    BIN=$(find_bin_dir) || { echo "with-postgres: postgresql installed but pg_ctl/initdb not found" >&2; exit 1; }
fi

# A free TCP port on loopback, chosen by the kernel.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
DIR=$(mktemp -d /tmp/reel-postgres.XXXXXX)
chmod 755 "$DIR"

# As root, run the server as an unprivileged user.
AS=()
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$DIR"
    if command -v runuser >/dev/null; then AS=(runuser -u postgres --); else AS=(su postgres -s /bin/sh -c); fi
fi
run_as() {
    if [[ ${#AS[@]} -eq 0 ]]; then "$@"
    elif [[ ${AS[0]} == runuser ]]; then "${AS[@]}" "$@"
    else "${AS[@]}" "$(printf '%q ' "$@")"; fi
}

stop() {
    run_as "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT

run_as "$BIN/initdb" -D "$DIR/data" -U reel --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
# fsync off: a throwaway cluster need not survive a power loss, and tests write a lot.
run_as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=300" start >/dev/null \
    || { cat "$DIR/server.log" >&2; exit 1; }
PSQL="$BIN/psql"
[[ -x $PSQL ]] || PSQL=psql
"$PSQL" -q -h 127.0.0.1 -p "$PORT" -U reel -d postgres -c 'CREATE DATABASE reel'

export REEL_TEST_POSTGRES_URL="postgres://reel@127.0.0.1:$PORT/reel"
echo "with-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') at $REEL_TEST_POSTGRES_URL" >&2
set +e
"$@"
status=$?
set -e
exit $status
