#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, a free
# loopback port, its unix socket in the same directory, a `twitcher` role (password
# `twitcher`, allowed to create databases: each test makes its own) and a `twitcher`
# database. Uses the distribution's server (Debian's `postgresql` package; installed with
# apt-get when missing and we are root). As root the server runs as the `postgres` user.
# With openssl at hand the server also offers TLS, with a certificate for 127.0.0.1 and
# localhost from a throwaway CA (TWITCHER_TEST_POSTGRES_CA names its PEM file).
#
#   scripts/postgres.sh run CMD [ARGS...]   start, run CMD with TWITCHER_TEST_POSTGRES set, stop
#   eval "$(scripts/postgres.sh start)"     start; prints `export TWITCHER_TEST_POSTGRES=...`
#                                           and `export TWITCHER_TEST_POSTGRES_DIR=...`
#                                           (and `export TWITCHER_TEST_POSTGRES_CA=...`)
#   scripts/postgres.sh stop DIR            stop the cluster started in DIR and delete DIR
#
# Messages go to stderr; `start` prints only the export lines on stdout.
set -euo pipefail

say() { printf '[postgres] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# The newest installed server's bin directory (initdb/pg_ctl of Debian are not on PATH).
find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return
    fi
    return 1
}

bindir() {
    local dir
    if ! dir=$(find_bindir); then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            say "installing the distribution's postgresql package"
            { apt-get install -y postgresql || { apt-get update && apt-get install -y postgresql; }; } >&2 \
                || die "apt-get install postgresql failed"
            dir=$(find_bindir) || die "postgresql installed but no initdb/pg_ctl found"
        else
            die "no PostgreSQL server found (install the distribution's postgresql package)"
        fi
    fi
    echo "$dir"
}

# Runs a server binary as the cluster's owner (initdb and postgres refuse to run as root).
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A CA and a server certificate signed by it (a self-signed leaf cannot be its own root
# for rustls), in DIR; prints the server options that turn TLS on.
make_tls() {
    local dir=$1
    command -v openssl >/dev/null || return 1
    (
        set -e
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=twitcher test CA" \
            -keyout ca.key -out ca.crt
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
            -extfile server.ext -out server.crt
        chmod 600 server.key
        if [[ $(id -u) == 0 ]]; then chown postgres: server.key server.crt; fi
    ) >"$dir/tls.log" 2>&1 || return 1
    echo "-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin dir port
    bin=$(bindir)
    if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    dir=$(mktemp -d /tmp/twitcher-pg.XXXXXX)
    [[ $(id -u) == 0 ]] && chown postgres: "$dir"
    chmod 700 "$dir"
    printf 'twitcher\n' >"$dir/pwfile"
    [[ $(id -u) == 0 ]] && chown postgres: "$dir/pwfile"
    # The superuser is `twitcher` itself: tests create and drop databases freely.
    as_owner "$bin/initdb" -D "$dir/data" -U twitcher --pwfile="$dir/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    local tries=0 tls_options="" ca=""
    if tls_options=$(make_tls "$dir"); then
        ca="$dir/ca.crt"
    else
        say "no TLS (openssl missing or failed: $dir/tls.log)"
    fi
    while :; do
        port=$(free_port)
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c max_connections=300 $tls_options" \
            start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        ((tries < 3)) || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
    done
    echo "$bin" >"$dir/bindir"
    echo "$port" >"$dir/port"
    as_owner "$bin/psql" -h "$dir" -p "$port" -U twitcher -d postgres -q -v ON_ERROR_STOP=1 \
        -c 'CREATE DATABASE twitcher' >&2 || { stop "$dir"; die "cannot create the twitcher database"; }
    say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
    echo "export TWITCHER_TEST_POSTGRES=postgresql://twitcher:twitcher@127.0.0.1:$port/twitcher"
    echo "export TWITCHER_TEST_POSTGRES_DIR=$dir"
    [[ -z "$ca" ]] || echo "export TWITCHER_TEST_POSTGRES_CA=$ca"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    [[ -f "$dir/bindir" ]] || die "$dir is not a cluster started by this script"
    as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    run)
        shift
        (($#)) || die "usage: postgres.sh run CMD [ARGS...]"
        eval "$(start)"
        trap 'stop "$TWITCHER_TEST_POSTGRES_DIR"' EXIT
        "$@"
        ;;
    *) die "usage: postgres.sh start | stop DIR | run CMD [ARGS...]" ;;
esac
