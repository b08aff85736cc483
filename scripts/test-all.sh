#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust unit/integration/compat
# tests, and the Python interop suite (real Python clients and the real Emu WPS against
# the release binary). Installs what it needs: Rust crates through cargo, the Python
# virtualenvs through pyproject-interop/run.sh.
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

step "cargo test"
# Snapshot mismatches fail instead of writing .snap.new files.
INSTA_UPDATE=no cargo test --workspace --locked

step "Python interop suite"
pyproject-interop/run.sh "$@"
