#!/usr/bin/env bash
# Soak test (not in CI): minutes of mixed load (GetCapabilities, token Execute,
# generate_token, revoke, register) against twitcher on SQLite with one instance, and on
# PostgreSQL with two instances the load alternates between. nginx serves static Emu
# answers as the backend (bench/stack.py's). Prints errors (must be 0), p50/p99 per
# operation, and each instance's RSS and open files at start and end.
#
#   scripts/soak.sh [--minutes N] [--store sqlite|postgres|both] [--clients N]
#
# Defaults: 10 minutes per store, both stores, 8 concurrent clients. Needs nginx (installed
# with apt-get when missing and root) and, for PostgreSQL, scripts/postgres.sh's cluster
# (started here unless TWITCHER_TEST_POSTGRES names one). Builds the release binary unless
# TWITCHER_BIN names one. Traffic goes to 127.0.0.1 only; every loop stops by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[soak] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

store=both
for arg in "$@"; do
    case "$arg" in
        --store=*) store=${arg#--store=} ;;
    esac
done
prev=""
for arg in "$@"; do
    [[ "$prev" == --store ]] && store=$arg
    prev=$arg
done

export PATH="$PATH:/usr/sbin:/sbin"
if ! command -v nginx >/dev/null; then
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || die "nginx missing: install it"
    say "installing nginx (Debian package)"
    { apt-get install -y -qq --no-install-recommends nginx \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx; }; } >&2 \
        || die "apt-get install nginx failed"
fi

if [[ -z "${TWITCHER_BIN:-}" ]]; then
    say "building: cargo build --release -p twitcher"
    (cd "$ROOT" && cargo build --release -q -p twitcher) || die "cargo build failed"
    TWITCHER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/twitcher"
    [[ "$TWITCHER_BIN" == /* ]] || TWITCHER_BIN="$ROOT/$TWITCHER_BIN"
fi
export TWITCHER_BIN

if [[ "$store" != sqlite && -z "${TWITCHER_TEST_POSTGRES:-}" ]]; then
    eval "$("$ROOT/scripts/postgres.sh" start)"
    trap '"$ROOT/scripts/postgres.sh" stop "$TWITCHER_TEST_POSTGRES_DIR"' EXIT
fi

python3 "$ROOT/scripts/soak.py" "$@"
