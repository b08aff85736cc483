#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust unit/integration/compat
# tests (the store tests also on a throwaway PostgreSQL, scripts/postgres.sh), and the
# Python interop suite (real Python clients and the real Emu WPS against the release
# binary). Installs what it needs: Rust crates through cargo, the distribution's
# postgresql package through scripts/postgres.sh, the Python virtualenvs through
# pyproject-interop/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "PostgreSQL for the store tests (scripts/postgres.sh)"
# A throwaway cluster on a free loopback port; the PostgreSQL tests (store conformance,
# tests/postgres_store.rs, tests/scale_out.rs) run on it and only print SKIP without it.
if pg_env=$(scripts/postgres.sh start); then
    eval "$pg_env"
    trap 'scripts/postgres.sh stop "$TWITCHER_TEST_POSTGRES_DIR"' EXIT
else
    echo "SKIP: PostgreSQL could not be started (see above); its tests will be skipped" >&2
fi

step "cargo test"
# Snapshot mismatches fail instead of writing .snap.new files.
INSTA_UPDATE=no cargo test --workspace --locked

step "Python interop suite"
pyproject-interop/run.sh "$@"
