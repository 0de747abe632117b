#!/bin/sh
# Fuzz smoke test for CI: builds every cargo-fuzz target with the STABLE toolchain and
# runs each for a few seconds from its committed seed corpus. Fails on the first target
# that crashes, hangs (-timeout) or runs out of memory (-rss_limit_mb), printing the
# reproducer's path and the command that replays it.
#
#   fuzz/smoke.sh                       every target but postcat, FUZZ_SECONDS (5) each
#   fuzz/smoke.sh -t 60 smtp_stream     one target, 60 seconds (also: fuzz/run.sh)
#   fuzz/smoke.sh --postcat             also postcat (builds tern-commands: slower)
#
# Why this works on stable: with `-s none` (no sanitizer) cargo-fuzz passes only stable
# -C flags (SanitizerCoverage via -Cpasses=sancov-module) and libfuzzer-sys builds
# libFuzzer with the C++ compiler, so no nightly feature is needed. Assertions beyond
# "no panic" are in crates/fuzzcheck (the target bodies); `cargo test -p tern-fuzzcheck`
# replays the corpora without cargo-fuzz.
#
# Needs: cargo, a C++ compiler (g++), and crates.io the first time (cargo-fuzz is
# installed if missing, pinned to a version that builds on Rust 1.85+).
set -eu

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-5}
postcat=no
targets=""
while [ $# -gt 0 ]; do
    case $1 in
    -t) seconds=$2; shift 2 ;;
    --postcat) postcat=yes; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "usage: $0 [-t SECONDS] [--postcat] [TARGET...]" >&2; exit 2 ;;
    *) targets="$targets $1"; shift ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
case " $targets " in *" postcat "*) postcat=yes ;; esac

t0=$(date +%s)
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
t1=$(date +%s)

features=""
[ $postcat = yes ] && features="--features postcat"
echo "== building the fuzz targets (stable, no sanitizer)"
# shellcheck disable=SC2086 # $features is one optional word pair
cargo fuzz build -s none $features
t2=$(date +%s)

triple=$(rustc -vV | sed -n 's/^host: //p')
bin=$here/target/$triple/release
if [ -z "$targets" ]; then
    targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tern-fuzz$')
    [ $postcat = yes ] || targets=$(echo "$targets" | grep -v '^postcat$')
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$here/artifacts"
failed=""
printf '%-14s %10s %8s %6s\n' target execs exec/s cov
for t in $targets; do
    mkdir -p "$work/$t" "$here/artifacts/$t"
    log=$work/$t.log
    # The first corpus directory receives new inputs: a scratch copy, never the
    # committed seeds. -timeout: one input may take 10 s at most ("no hang");
    # -rss_limit_mb: "bounded memory"; -max_len: room for the table-file seeds.
    if "$bin/$t" "$work/$t" "corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
        -artifact_prefix="$here/artifacts/$t/" -print_final_stats=1 \
        >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
        printf '%-14s %10s %8s %6s\n' "$t" "$execs" "$speed" "$cov"
    else
        printf '%-14s FAILED\n' "$t"
        grep -E 'panicked|ERROR: libFuzzer|timeout|out-of-memory|Test unit written' "$log" | head -20
        unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        if [ -n "$unit" ]; then
            echo "reproducer: $unit"
            echo "replay: (cd fuzz && cargo fuzz run -s none $t $unit)"
            echo "then commit it as fuzz/corpus/$t/<name> with the fix; cargo test -p tern-fuzzcheck replays it"
        else
            tail -30 "$log"
        fi
        failed="$failed $t"
    fi
done
t3=$(date +%s)
echo "== times: cargo-fuzz install $((t1 - t0)) s, build $((t2 - t1)) s, runs $((t3 - t2)) s"
if [ -n "$failed" ]; then
    echo "== FAILED:$failed" >&2
    exit 1
fi
echo "== fuzz smoke passed"
