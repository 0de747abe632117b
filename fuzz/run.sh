#!/bin/sh
# A longer fuzzing run of one target: fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#
# The inputs it finds are kept in fuzz/run/TARGET/ (not committed) so that the next run
# goes on from there; a crash, hang or memory blow-up leaves its reproducer in
# fuzz/artifacts/TARGET/ and makes the script fail. Examples:
#   fuzz/run.sh smtp_stream 600
#   fuzz/run.sh queuefile 300 -jobs=2 -workers=2
#   fuzz/run.sh postcat 120          (builds the postcat feature)
set -eu
[ $# -ge 2 ] || { echo "usage: $0 TARGET SECONDS [libFuzzer flags...]" >&2; exit 2; }
target=$1
seconds=$2
shift 2

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
[ -d "corpus/$target" ] || { echo "$0: no target $target (fuzz/corpus/$target)" >&2; exit 2; }
# cargo-fuzz and the build, as the smoke does them.
features=""
[ "$target" = postcat ] && features="--features postcat"
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
# shellcheck disable=SC2086 # $features is one optional word pair
cargo fuzz build -s none $features "$target"
triple=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "run/$target" "artifacts/$target"
exec "target/$triple/release/$target" "run/$target" "corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
    -artifact_prefix="$here/artifacts/$target/" -print_final_stats=1 "$@"
