#!/usr/bin/env bash
# postmap-bench.sh -- Tern's postmap side by side with Debian's Postfix postmap.
#
# Builds an N-entry table (default 1,000,000) with each postmap, for lmdb: and cdb:, and runs
# N random lookups through `postmap -q -` on each. Prints one TSV line per measurement and the
# Tern/Postfix ratio of each pair, from one run. Works in a temp dir; touches nothing else.
# bench/lib.sh gives it log, die and the checks.
#
# Usage: bash bench/postmap-bench.sh            (needs: cargo build --release; Debian's postfix,
#        N=100000 bash bench/postmap-bench.sh    postfix-lmdb, postfix-cdb installed)
set -euo pipefail
# TERN and PF name the two postmaps here (lib.sh uses both names for other things).
POSTMAP_TERN=${TERN:-}; POSTMAP_PF=${PF:-}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-1000000}
TYPES=${TYPES:-"lmdb cdb"}
TERN=${POSTMAP_TERN:-$HERE/target/release/postmap}
PF=${POSTMAP_PF:-/usr/sbin/postmap}
[ -x "$TERN" ] || die "build first: cargo build --release ($TERN missing)"
[ -x "$PF" ] || die "Debian's postmap is missing: apt-get install postfix postfix-lmdb postfix-cdb"
need_cmds python3 cmp

WORK=$(mktemp -d /var/tmp/postmap-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/tern" "$WORK/postfix"

# The source table and the query keys (half hits, half misses), made once.
python3 - "$N" "$WORK" <<'PY'
import random, sys
n, work = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(1)
with open(f"{work}/src", "w") as f:
    for i in range(n):
        f.write(f"key{i:09d}.example.com value-{i}-{rnd.getrandbits(32):08x}\n")
with open(f"{work}/keys", "w") as f:
    for _ in range(n):
        i = rnd.randrange(2 * n)
        f.write(f"key{i:09d}.example.com\n")
PY
cp "$WORK/src" "$WORK/tern/t"
cp "$WORK/src" "$WORK/postfix/t"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }

printf 'what\ttype\tentries\tpostfix_s\ttern_s\ttern/postfix\n'
for type in $TYPES; do
  t0=$(now); "$PF" "$type:$WORK/postfix/t"; t1=$(now)
  "$TERN" "$type:$WORK/tern/t"; t2=$(now)
  pf=$(secs "$t0" "$t1"); tn=$(secs "$t1" "$t2")
  printf 'build\t%s\t%s\t%s\t%s\t%s\n' "$type" "$N" "$pf" "$tn" "$(python3 -c "print(f'{$tn/$pf:.2f}')")"

  t0=$(now); "$PF" -q - "$type:$WORK/postfix/t" < "$WORK/keys" > "$WORK/pf.out" || true; t1=$(now)
  "$TERN" -q - "$type:$WORK/tern/t" < "$WORK/keys" > "$WORK/tern.out" || true; t2=$(now)
  pf=$(secs "$t0" "$t1"); tn=$(secs "$t1" "$t2")
  printf 'lookup\t%s\t%s\t%s\t%s\t%s\n' "$type" "$N" "$pf" "$tn" "$(python3 -c "print(f'{$tn/$pf:.2f}')")"
  # Same answers, or the figures mean nothing.
  cmp -s "$WORK/pf.out" "$WORK/tern.out" || { echo "answers differ for $type" >&2; exit 1; }
done
