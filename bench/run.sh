#!/usr/bin/env bash
# The proxy benchmark of issue 9: twitcher beside nginx (direct, plain reverse proxy, and
# reverse proxy + sub_filter doing twitcher's capabilities rewrite) and the original
# Twitcher 0.5.5, on loopback, with wrk. Prints one table; bench/README.md explains it.
#
#   bench/run.sh [--quick] [--no-original] [--rounds N] [--duration S] [--no-pin] ...
#                (bench/bench.py --help lists every knob)
#
# This script installs what the measurement needs, then hands over to bench/bench.py:
#   - nginx and wrk from Debian's packages when missing (as root; `apt-get update` once);
#   - target/release/twitcher and twitcherctl (`cargo build --release`), unless
#     TWITCHER_BIN names a binary;
#   - unless --no-original: the original pyramid-twitcher 0.5.5 in its own virtualenv under
#     ${TWITCHER_BENCH_CACHE:-$HOME/.cache/twitcher-bench}, with the interop suite's pins
#     (pyproject-interop/requirements/twitcherctl-05.txt); reused while those pins are
#     unchanged, deleted and rebuilt otherwise. If it cannot be installed, the run goes on
#     without its column and says why.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${TWITCHER_BENCH_CACHE:-${HOME:?set HOME or TWITCHER_BENCH_CACHE}/.cache/twitcher-bench}"
PYTHON="${TWITCHER_BENCH_PYTHON:-python3}"
PINS="$ROOT/pyproject-interop/requirements/twitcherctl-05.txt"

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

original=1
for arg in "$@"; do
    case "$arg" in
        --no-original) original=0 ;;
        -h|--help) exec "$PYTHON" -B "$HERE/bench.py" --help ;;
    esac
done

command -v "$PYTHON" >/dev/null || die "no Python interpreter '$PYTHON' (set TWITCHER_BENCH_PYTHON)"

# --- nginx and wrk (Debian packages) -----------------------------------------------------
apt_updated=0
apt_install() {
    command -v apt-get >/dev/null && [[ $(id -u) == 0 ]] \
        || die "$* missing: install it (Debian: apt-get install $*), or run this as root"
    if [[ $apt_updated == 0 ]]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    say "installing $* (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}
missing=()
# nginx lives in /usr/sbin, which a non-login root shell may not have on its PATH.
export PATH="$PATH:/usr/sbin:/sbin"
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
(( ${#missing[@]} == 0 )) || apt_install "${missing[@]}"
# Debian's nginx package enables its own server on port 80 when installed; the bench never
# uses it and runs its own nginx processes with their own configs.
nginx -V 2>&1 | grep -q -- '--with-http_sub_module' \
    || die "this nginx has no sub_filter (ngx_http_sub_module); install Debian's nginx package"

# --- twitcher ----------------------------------------------------------------------------
if [[ -z "${TWITCHER_BIN:-}" ]]; then
    command -v cargo >/dev/null || die "cargo not found: install Rust or set TWITCHER_BIN"
    say "building: cargo build --release -p twitcher -p twitcherctl (may wait for the target/ lock)"
    started=$SECONDS
    (cd "$ROOT" && cargo build --release -p twitcher -p twitcherctl) || die "cargo build failed"
    say "build done after $((SECONDS - started)) s"
    target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target_dir" == /* ]] || target_dir="$ROOT/$target_dir"
    TWITCHER_BIN="$target_dir/release/twitcher"
fi
[[ -x "$TWITCHER_BIN" ]] || die "TWITCHER_BIN=$TWITCHER_BIN is not an executable file"
export TWITCHER_BIN

# --- the original Twitcher 0.5.5 (optional) ------------------------------------------------
# Prints the venv's directory, or nothing (and why, on stderr) when it cannot be had.
original_venv() {
    local hash venv log
    hash="$( { "$PYTHON" -c 'import sys; print(sys.version)'; cat "$PINS"; } | sha256sum | cut -c1-16)"
    venv="$CACHE/original-05-$hash"
    log="$venv.install.log"
    if [[ -f "$venv/.bench-complete" ]]; then
        say "original: reusing $venv"
    else
        say "original: installing pyramid-twitcher 0.5.5 into $venv (log: $log)"
        mkdir -p "$CACHE"
        rm -rf "$CACHE"/original-05-* # older pins: throw-away
        if ! (
            set -euo pipefail
            "$PYTHON" -m venv "$venv"
            "$venv/bin/pip" install --no-input --progress-bar off --disable-pip-version-check -r "$PINS"
            "$venv/bin/python" -c 'import twitcher, gunicorn, alembic'
            test -x "$venv/bin/pserve"
        ) >"$log" 2>&1; then
            tail -n 15 "$log" >&2
            say "original: installation failed (full log: $log); its column is skipped"
            return 0
        fi
        touch "$venv/.bench-complete"
    fi
    echo "$venv"
}
ORIGINAL_VENV=""
if [[ $original == 1 ]]; then
    if "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        ORIGINAL_VENV="$(original_venv)"
    else
        say "original: $PYTHON has no venv/ensurepip module; its column is skipped"
    fi
fi
export ORIGINAL_VENV

# -B: no __pycache__ left in the work tree.
exec "$PYTHON" -B "$HERE/bench.py" "$@"
