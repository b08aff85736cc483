#!/usr/bin/env bash
# Fuzzes the gate, the proxy's one access decision ("a protected operation never reaches a
# backend without a valid credential"), for a bounded time per target.
#
#   scripts/fuzz.sh [SECONDS]      # SECONDS per target, default 60
#
# Targets (bolero, in tests/fuzz_gate.rs; properties in tests/fuzz/): fuzz_path (extra
# paths stay below the service path), fuzz_kvp (parse_kvp against a first/last-value
# reading), fuzz_xml_root (scan_xml_root against roxmltree, DOCTYPEs, chunked prefixes),
# fuzz_gate (the whole gate: public grants only for public operations, token grants only
# for the valid token, no panic), fuzz_ogcapi_rules (an ogcapi request is public only as
# a GET/HEAD of a public resource, however a lenient backend decodes its path).
# `cargo test` runs each briefly; this runs them longer.
#
# Engine: with cargo-bolero installed (`cargo bolero --version` works), each target runs
# under `cargo bolero test` (engine $BOLERO_ENGINE, default libfuzzer, which needs a
# nightly toolchain; corpora go to tests/__fuzz__/). Otherwise, bolero's random engine
# under `cargo test --release`, bounded by BOLERO_RANDOM_TEST_TIME_MS.
#
# Prints each target's run time (and bolero's iteration count); exits 1 on a finding,
# after printing its input and BOLERO_RANDOM_SEED. Replay one with
#   BOLERO_RANDOM_SEED=<seed> cargo test --release --test fuzz_gate <target> -- --exact
# and turn it into a named regression test at the end of tests/fuzz_gate.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS per target]" >&2
    exit 2
fi
targets=(fuzz_path fuzz_kvp fuzz_xml_root fuzz_gate fuzz_ogcapi_rules)

if cargo bolero --version >/dev/null 2>&1; then
    runner="cargo bolero test (engine ${BOLERO_ENGINE:-libfuzzer})"
else
    runner="bolero random engine (cargo test --release; cargo-bolero not installed)"
    cargo test --release --locked --test fuzz_gate --no-run
fi
echo "fuzzing ${#targets[@]} targets for ${seconds} s each with ${runner}"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0
for target in "${targets[@]}"; do
    log="$logs/$target.log"
    start=$SECONDS
    set +e
    if cargo bolero --version >/dev/null 2>&1; then
        cargo bolero test --profile release --package twitcher \
            --engine "${BOLERO_ENGINE:-libfuzzer}" --time "${seconds}s" "$target" 2>&1 |
            tee "$log"
        status=${PIPESTATUS[0]}
    else
        BOLERO_RANDOM_TEST_TIME_MS=$((seconds * 1000)) \
            BOLERO_RANDOM_ITERATIONS=1000000000000 RUST_BACKTRACE=0 \
            cargo test --release --locked --test fuzz_gate -- --exact "$target" --nocapture \
            >"$log" 2>&1
        status=$?
    fi
    set -e
    elapsed=$((SECONDS - start))
    stats="$(grep -a -m1 -o 'run time: .*' "$log" || true)"
    # bolero's "run time" is the fuzzing itself; the wall time adds any build or lock wait.
    if [ "$status" -eq 0 ]; then
        line="$target: ok, ${elapsed} s wall${stats:+ ($stats)}"
    else
        failed=1
        line="$target: FINDING, ${elapsed} s wall${stats:+ ($stats)}"
        echo "---- $target: finding ----"
        # bolero's report: seed, input, the violated property.
        if grep -aq '== Test Failure ==' "$log"; then
            sed -n '/== Test Failure ==/,/^==========/p' "$log"
        else
            tail -n 60 "$log"
        fi
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds} s per target, ${runner}):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
