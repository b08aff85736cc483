#!/usr/bin/env bash
# The Python interop suite: real clients (xmlrpc.client, the original twitcherctl 0.5.5 and
# 0.6.0, OWSLib, requests-oauthlib, curl, our own twitcherctl, raw http.client requests) against
# our Rust twitcher, with the real Emu WPS and a real MapProxy WMS as backends.
#
#   pyproject-interop/run.sh [pytest args]
#
# Creates (once) the virtualenvs the suite needs under
# ${TWITCHER_INTEROP_CACHE:-$HOME/.cache/twitcher-interop}/<name>-<hash of its recipe>,
# builds target/release/twitcher and target/release/twitcherctl unless TWITCHER_BIN and
# TWITCHERCTL_BIN name binaries, installs curl when it is missing, then runs pytest.
# Their dependencies conflict, hence one venv each:
#   emu             birdhouse-emu 1.0.0 / pywps 4.6.0 (+ pytest, which Emu imports at start)
#   mapproxy        MapProxy 7.0.0 (a WMS from its debug source: no network), run on werkzeug
#                   by tests/serve_mapproxy.py
#   pygeoapi        pygeoapi 0.21.0 (OGC API - Processes and Features, TinyDB job manager), run
#                   on werkzeug by tests/serve_pygeoapi.py
#   twitcherctl-05  pyramid-twitcher 0.5.5: the original 0.5-series twitcherctl
#   twitcherctl-06  pyramid-twitcher 0.6.0: the OAuth-era twitcherctl
#                   (TWITCHER_INTEROP_SKIP_06=1 skips it and its tests)
#   tests           pytest, OWSLib, requests, requests-oauthlib, lxml
# A venv is rebuilt when its requirements file, its install function below or the Python
# interpreter changes; a venv whose install did not finish is never reused.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REQ="$HERE/requirements"
CACHE="${TWITCHER_INTEROP_CACHE:-${HOME:?set HOME or TWITCHER_INTEROP_CACHE}/.cache/twitcher-interop}"
PYTHON="${TWITCHER_INTEROP_PYTHON:-python3}"
PIP_OPTS=(--no-input --progress-bar off --disable-pip-version-check)

say() { printf '[interop %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# --- Python with venv support ---------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "no Python interpreter '$PYTHON' (set TWITCHER_INTEROP_PYTHON)"
if ! "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    # Debian's own python3 ships venv/ensurepip separately.
    if [[ "$(command -v "$PYTHON")" == /usr/bin/* ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
        say "installing python3-venv (Debian package) for $PYTHON"
        apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; } \
            || die "apt-get install python3-venv failed"
    fi
    "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' \
        || die "$PYTHON must be Python >= 3.10 with the venv and ensurepip modules"
fi
PY_ID="$("$PYTHON" -c 'import os, sys; print(sys.version); print(os.path.realpath(sys.executable))')"
say "using $(echo "$PY_ID" | tail -1) ($(echo "$PY_ID" | head -1 | cut -d' ' -f1))"
mkdir -p "$CACHE"

# --- install recipes (each runs under `set -e` in a subshell; $1 = venv directory) ------------
install_emu() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" -r "$REQ/emu.txt"
    # Emu imports its processes (and so xarray.tests -> pytest) at start: check that now
    # (in the venv: pywps drops a pywps.log into the working directory).
    cd "$1"
    bin/python -c 'import emu.processes, pywps; assert pywps.__version__ == "4.6.0", pywps.__version__'
    bin/emu --help >/dev/null
}

install_mapproxy() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" -r "$REQ/mapproxy.txt"
    "$1/bin/python" -c 'import mapproxy.wsgiapp, werkzeug.serving, PIL
from mapproxy.version import version
assert version == "7.0.0", version'
}

install_pygeoapi() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" -r "$REQ/pygeoapi.txt"
    "$1/bin/python" -c 'import pygeoapi, tinydb, werkzeug.serving
assert pygeoapi.__version__ == "0.21.0", pygeoapi.__version__'
}

install_twitcherctl_05() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" -r "$REQ/twitcherctl-05.txt"
    "$1/bin/twitcherctl" --help >/dev/null
    "$1/bin/python" -c "import psycopg2"
}

# As in shared/spec/golden/v060/INSTALL.md: PasteDeploy resolves eggs through the venv's old
# pkg_resources, which cannot match zope.* wheels built with a new setuptools; rebuild them.
install_twitcherctl_06() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" pyramid-twitcher==0.6.0 -c "$REQ/twitcherctl-06-constraints.txt"
    "$1/bin/pip" install "${PIP_OPTS[@]}" setuptools==65.5.0 wheel==0.45.1
    "$1/bin/pip" uninstall -y zope.interface zope.deprecation
    "$1/bin/pip" install "${PIP_OPTS[@]}" --no-build-isolation --no-cache-dir \
        zope.interface==5.5.2 zope.deprecation==4.4.0
    "$1/bin/python" -c "import pkg_resources; pkg_resources.require('pyramid_twitcher')"
    "$1/bin/twitcherctl" --help >/dev/null
    # The original on PostgreSQL (tests/test_postgres_originals.py): its models over psycopg2.
    "$1/bin/pip" install "${PIP_OPTS[@]}" psycopg2-binary==2.9.13
    "$1/bin/python" -c "import psycopg2"
}

install_tests() {
    "$1/bin/pip" install "${PIP_OPTS[@]}" -r "$REQ/tests.txt"
    "$1/bin/python" -c 'import pytest, owslib, requests, requests_oauthlib, lxml, pytest_timeout'
}

# prune_stale NAME KEEP: removes other venvs of NAME (older pins) unused for two days, and
# unfinished ones (no install of NAME can be running: we hold its lock).
prune_stale() {
    local dir
    for dir in "$CACHE/$1"-*/; do
        dir=${dir%/}
        [[ -d "$dir" && "$dir" != "$2" ]] || continue
        if [[ ! -f "$dir/.interop-complete" || -n "$(find "$dir/.interop-complete" -mtime +2)" ]]; then
            say "venv $1: removing stale $dir"
            rm -rf "$dir" "$dir.install.log"
        fi
    done
}

# ensure_venv NAME INSTALL_FUNCTION [FILES THE RECIPE READS...]; sets VENV to the directory.
ensure_venv() {
    local name=$1 recipe=$2
    shift 2
    local hash
    hash="$( { echo "$PY_ID"; declare -f "$recipe"; cat "$@"; } | sha256sum | cut -c1-16)"
    VENV="$CACHE/$name-$hash"
    local log="$VENV.install.log" lock
    # One installer at a time per venv name (two suites may start together on one machine).
    exec {lock}>"$CACHE/$name.lock"
    flock "$lock"
    if [[ -f "$VENV/.interop-complete" ]]; then
        say "venv $name: reusing $VENV"
        touch "$VENV/.interop-complete"  # last use, for prune_stale
    else
        say "venv $name: creating $VENV (log: $log)"
        local started=$SECONDS rc
        rm -rf "$VENV"
        set +e
        (
            set -euo pipefail
            "$PYTHON" -m venv "$VENV"
            "$recipe" "$VENV"
        ) >"$log" 2>&1
        rc=$?
        set -e
        if [[ $rc != 0 ]]; then
            tail -n 40 "$log" >&2
            die "venv $name: installation failed (exit $rc); full log: $log"
        fi
        touch "$VENV/.interop-complete"
        say "venv $name: ready after $((SECONDS - started)) s"
    fi
    prune_stale "$name" "$VENV"
    flock -u "$lock"
    exec {lock}>&-
}

setup_started=$SECONDS
ensure_venv emu install_emu "$REQ/emu.txt"
EMU_VENV=$VENV
ensure_venv mapproxy install_mapproxy "$REQ/mapproxy.txt"
MAPPROXY_VENV=$VENV
ensure_venv pygeoapi install_pygeoapi "$REQ/pygeoapi.txt"
PYGEOAPI_VENV=$VENV
ensure_venv twitcherctl-05 install_twitcherctl_05 "$REQ/twitcherctl-05.txt"
CTL05_VENV=$VENV
CTL06_BIN=""
if [[ "${TWITCHER_INTEROP_SKIP_06:-0}" != 1 ]]; then
    ensure_venv twitcherctl-06 install_twitcherctl_06 "$REQ/twitcherctl-06-constraints.txt"
    CTL06_BIN="$VENV/bin/twitcherctl"
fi
ensure_venv tests install_tests "$REQ/tests.txt"
TESTS_VENV=$VENV
say "virtualenvs ready after $((SECONDS - setup_started)) s"

# --- curl (the tutorial's HTTP client) -------------------------------------------------------
if ! command -v curl >/dev/null; then
    command -v apt-get >/dev/null && [[ $(id -u) == 0 ]] \
        || die "curl not found (the tutorial test runs it): install it"
    say "installing curl (Debian package)"
    apt-get install -y curl || { apt-get update && apt-get install -y curl; } \
        || die "apt-get install curl failed"
fi

# --- the server and the CLI under test --------------------------------------------------------
packages=()
[[ -n "${TWITCHER_BIN:-}" ]] || packages+=(-p twitcher)
[[ -n "${TWITCHERCTL_BIN:-}" ]] || packages+=(-p twitcherctl)
if (( ${#packages[@]} )); then
    command -v cargo >/dev/null || die "cargo not found: install Rust or set TWITCHER_BIN and TWITCHERCTL_BIN"
    say "building: cargo build --release ${packages[*]} (in $ROOT)"
    build_started=$SECONDS
    (cd "$ROOT" && cargo build --release "${packages[@]}") || die "cargo build failed"
    say "build done after $((SECONDS - build_started)) s"
    target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$target_dir" == /* ]] || target_dir="$ROOT/$target_dir"
    TWITCHER_BIN="${TWITCHER_BIN:-$target_dir/release/twitcher}"
    TWITCHERCTL_BIN="${TWITCHERCTL_BIN:-$target_dir/release/twitcherctl}"
fi
[[ -x "$TWITCHER_BIN" ]] || die "TWITCHER_BIN=$TWITCHER_BIN is not an executable file"
[[ -x "$TWITCHERCTL_BIN" ]] || die "TWITCHERCTL_BIN=$TWITCHERCTL_BIN is not an executable file"
TWITCHER_BIN="$(cd "$(dirname "$TWITCHER_BIN")" && pwd)/$(basename "$TWITCHER_BIN")"
TWITCHERCTL_BIN="$(cd "$(dirname "$TWITCHERCTL_BIN")" && pwd)/$(basename "$TWITCHERCTL_BIN")"
say "server under test: $TWITCHER_BIN"
say "CLI under test: $TWITCHERCTL_BIN"

# --- run --------------------------------------------------------------------------------------
export TWITCHER_BIN TWITCHERCTL_BIN
export TWITCHER_INTEROP_EMU="$EMU_VENV/bin/emu"
export TWITCHER_INTEROP_MAPPROXY_PYTHON="$MAPPROXY_VENV/bin/python"
export TWITCHER_INTEROP_PYGEOAPI_PYTHON="$PYGEOAPI_VENV/bin/python"
export TWITCHER_INTEROP_TWITCHERCTL_05="$CTL05_VENV/bin/twitcherctl"
export TWITCHER_INTEROP_TWITCHERCTL_06="$CTL06_BIN"
export TWITCHER_INTEROP_GOLDEN="${TWITCHER_INTEROP_GOLDEN:-$ROOT/compat/golden}"
# shared/spec beside the work tree, where the tutorial's master copy lives (optional: the
# suite runs on its copy in tests/data/ and only checks that both agree when it finds it)
export TWITCHER_INTEROP_SPEC="${TWITCHER_INTEROP_SPEC:-$(cd "$ROOT/.." && pwd)/shared/spec}"
export PYTHONDONTWRITEBYTECODE=1
say "running pytest $*"
cd "$HERE"
exec "$TESTS_VENV/bin/python" -m pytest "$@"
