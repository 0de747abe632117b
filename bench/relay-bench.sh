#!/usr/bin/env bash
# relay-bench.sh -- relaying to a smart host, Tern's daemon side by side with Debian's
# Postfix on loopback: smtpd -> queue -> qmgr -> smtp(8) -> smtp-sink, measured from the
# first connection of the load until the sink has received the last message.
# The issue's target: at least 2x Postfix's messages/s, with no more connections to the
# sink than Postfix opens.
#
# Workload: N messages of 1 KiB (smtp-source -s 20 -m N -l 1024), one recipient each,
# user@remote.bench.test: a domain neither server is final destination for, relayed for
# the client (mynetworks = 127.0.0.1/32) to `relayhost = [127.0.0.1]:SINK` (brackets: no
# MX lookup, RFC 5321 5.1 aside; the address is numeric, so no DNS at all). Everything
# else is default on both sides: default_destination_concurrency_limit (20),
# default_process_limit (100), the smtp(8) connection cache (smtp_connection_cache_on_demand
# = yes, smtp_connection_cache_time_limit = 2s), no TLS (smtp-sink offers none).
#
# Each server relays to an smtp-sink of its own (its own port, started for its run), that
# keeps nothing (no -d/-D: no disk) and prints running counters (-c: "sess=S quit=Q
# mesg=M\r" after each message and each session end, flushed at once; smtp-sink(1)):
#   messages/s  N / (time the sink's mesg counter reached base + N - start of smtp-source).
#               A poller started just before smtp-source reads the last counter line of
#               the sink's output every 20 ms (the end is known to 20 ms; the counter is
#               the sink's own count of "." lines answered 250, so nothing is sampled).
#   connections the sink's sess counter over the measured run: sess counts sessions as
#               they end, so it is read after the server was stopped (stopping it closes
#               whatever it still held open or cached). Why the sink and not ss snapshots
#               (they miss short sessions), conntrack (not always loaded) or a counting
#               proxy (it would copy every byte on the 2 shared cores and slow both sides):
#               every TCP connection a server opens to the sink is one accept() there, the
#               count is exact and costs nothing. Warm-up connections: the run waits (up
#               to 10 s) until the sink holds none before the base count is taken; a server
#               that still holds some then has them counted in its measured run
#               (conservative, and noted as warm_open=K). Cross-check: the mail log's
#               sent lines without conn_use= (smtp(8) marks a reused connection's
#               deliveries conn_use=K), noted as log_first_uses=C (Postfix: equal to the
#               sink's count). Postfix's count swings from run to run (131 to 633 for
#               N=2000 on a busy 2-core machine, 4055 for N=20000): its connection cache
#               is used on demand, only while a backlog for the destination builds up,
#               so the count follows how far delivery lags behind acceptance. Compare
#               over a few runs.
#   checks      the sink got exactly N new messages (more would be duplicates), the queue
#               is empty at the end (incoming, active, deferred, hold, maildrop; waited
#               for up to 60 s after the sink's last message), and the mail log has no
#               deferred, bounced, fatal or panic line.
#
# One measured run per server, each on a fresh ext4 file system of its own (default
# mkfs.ext4 with its journal, in a loop file: the instance and its queue), one server
# running at a time: a warm-up (WARMUP messages, relayed and waited for, up to
# WARMUP_TIMEOUT s), then the N messages. A server whose warm-up does not reach the sink
# in time (its queue does not drain: e.g. Tern before its smtp transport exists, where
# mail to a remote domain is deferred with "mail transport unavailable") fails its run
# with what is left in its queue and its last deferral, and the other runs go on; the
# script then exits 1.
#
# Postfix: the private instance of bench/delivery-bench.sh (Debian's master.cf, chroot n,
# smtpd on 127.0.0.1:PORT_BASE) with relayhost. Tern: `TERN -c DIR start-fg` with relayhost
# and conf/master.cf (smtpd moved to 127.0.0.1:PORT_BASE+1; its smtp and relay services).
#
# Loopback only. Every wait is bounded in time. The only processes ended are the ones this
# script started, by pid: smtp-source, the sinks and pollers it runs, Tern's start-fg and
# its descendants, the private Postfix instance (`postfix -c DIR stop`, then whatever of its
# process tree is left). Its loop mounts are unmounted on exit and their images removed
# (KEEP_FS=1 keeps them); the rest of the work directory stays (the sinks' counters, the
# pollers' output, results.tsv).
#
# Set-up shared with the other scripts: bench/lib.sh. Usage (as root, after
# `cargo build --release -p tern-commands --bins`):
#   bash bench/relay-bench.sh
#   SERVERS=postfix N=2000 bash bench/relay-bench.sh
# Tunables (env): N (20000), WARMUP (200), SERVERS ("postfix tern"), TERN (Tern's postfix
#   binary), WORK (a directory to keep), PORT_BASE (2680: Postfix's smtpd, Tern's smtpd,
#   Postfix's sink, Tern's sink), RUN_TIMEOUT (s, one smtp-source run, 600), WARMUP_TIMEOUT
#   (s, the warm-up reaching the sink, 120), DRAIN_TIMEOUT (s, the measured run reaching
#   the sink, 900), KEEP_FS (0)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-20000}
WARMUP=${WARMUP:-200}
SIZE=1024
SESSIONS=20
SERVERS=${SERVERS:-"postfix tern"}
PORT_BASE=${PORT_BASE:-2680}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
PF_SINK=$((PORT_BASE + 2))
TERN_SINK=$((PORT_BASE + 3))
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
WARMUP_TIMEOUT=${WARMUP_TIMEOUT:-120}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-900}
QUEUE_WAIT=60                          # s: the queue emptying after the sink's last message
CONN_IDLE_WAIT=10                      # s: warm-up connections closing before the base count
HOST=$BENCH_HOST
FROM=bench@example.org
TO=user@remote.bench.test

need_root
need_cmds postfix postconf postalias smtp-source smtp-sink python3 mkfs.ext4 mount ss timeout
for s in $SERVERS; do
  case $s in postfix|tern) ;; *) die "unknown server $s" ;; esac
done
case " $SERVERS " in *" tern "*) need_tern postalias tern-delivery ;; esac

WORK=${WORK:-$(mktemp -d /var/tmp/relay-bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
RES=$WORK/results.tsv
: > "$RES"
FAILED=0
SRC_PID=""; SINK_PID=""; POLL_PID=""

# ------------------------------------------------------------------ processes, cleanup
stop_postfix() { pf_stop; }
stop_tern() { tern_stop; }
stop_sink() {
  [ -n "$SINK_PID" ] || return 0
  stop_pid "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=""
}
cleanup() {
  set +e
  [ -n "$POLL_PID" ] && stop_pid "$POLL_PID"
  [ -n "$SRC_PID" ] && stop_pid "$SRC_PID"
  stop_sink
  bench_cleanup
  log "results in $RES (work directory $WORK)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ the sink
SINK_OUT=""
start_sink() {  # start_sink SERVER PORT: a fresh counting smtp-sink for SERVER's run
  SINK_OUT=$WORK/sink.$1.out
  : > "$SINK_OUT"
  log "smtp-sink for $1 on 127.0.0.1:$2"
  smtp-sink -c -u nobody -h sink.bench.test "127.0.0.1:$2" 1000 </dev/null >"$SINK_OUT" 2>"$WORK/sink.$1.err" &
  SINK_PID=$!
  # The greeting check is a session too: the base count taken after the warm-up covers it.
  wait_greeting "$2" 10 || die "smtp-sink does not greet: $(cat "$WORK/sink.$1.err")"
}
# The sink's last counter line: "SESS QUIT MESG" (0 0 0 before any).
sink_counts() {
  python3 - "$SINK_OUT" <<'EOF'
import re, sys
with open(sys.argv[1], "rb") as f:
    f.seek(0, 2); size = f.tell(); f.seek(max(0, size - 256)); tail = f.read()
m = re.findall(rb"sess=(\d+) quit=(\d+) mesg=(\d+)", tail)
print(*(x.decode() for x in m[-1]) if m else (0, 0, 0))
EOF
}
# Connections the sink holds open now (its side of each: source port = the sink's).
sink_open() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }

POLLER=$WORK/poll.py
cat > "$POLLER" <<'EOF'
# poll.py SINK_OUT TARGET LIMIT -> "MESG DONE_AT": polls the sink's last counter line every
# 20 ms until mesg >= TARGET; gives up after LIMIT seconds (then DONE_AT is NaN).
import re, sys, time
path, target, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
pat = re.compile(rb"mesg=(\d+)")
def mesg():
    with open(path, "rb") as f:
        f.seek(0, 2); size = f.tell(); f.seek(max(0, size - 256))
        m = pat.findall(f.read())
    return int(m[-1]) if m else 0
while True:
    n, now = mesg(), time.time()
    if n >= target:
        print(n, f"{now:.6f}"); break
    if now > end:
        print(n, "NaN"); break
    time.sleep(0.02)
EOF
sink_wait() {  # sink_wait TARGET LIMIT -> "MESG DONE_AT" (foreground)
  python3 "$POLLER" "$SINK_OUT" "$1" "$2"
}

# ------------------------------------------------------------------ Postfix, private
start_postfix() {  # start_postfix SINK_PORT
  pf_configure "$FS/postfix" "$PF_PORT"
  cf_set "$PF/main.cf" "relayhost = [127.0.0.1]:$1"
  log "relayhost [127.0.0.1]:$1"
  pf_start "$PF_PORT"
}

# ------------------------------------------------------------------ Tern
start_tern() {  # start_tern SINK_PORT
  # Tern's default master.cf (smtp and relay services included), smtpd on our port.
  tern_configure "$FS/tern" "$TERN_PORT" default 100
  cf_set "$TD/conf/main.cf" "relayhost = [127.0.0.1]:$1"
  log "relayhost [127.0.0.1]:$1"
  tern_start "$TERN_PORT"
}

# ------------------------------------------------------------------ queues and logs
queue_of() { if [ "$1" = postfix ]; then echo "$PF/queue"; else echo "$TD/spool"; fi; }
queue_left() {  # files left in the queue (incoming, active, deferred, hold, maildrop)
  local q; q=$(queue_of "$1")
  find "$q/incoming" "$q/active" "$q/deferred" "$q/hold" "$q/maildrop" -type f 2>/dev/null | wc -l
}
deferred_left() { find "$(queue_of "$1")/deferred" -type f 2>/dev/null | wc -l; }
maillog_of() { if [ "$1" = postfix ]; then echo "$PF/maillog"; else echo "$TD/log/mail.log"; fi; }
queue_wait() {  # queue_wait SERVER SECONDS -> files left when empty or at the limit
  local i left
  for i in $(seq $(($2 * 5))); do
    left=$(queue_left "$1"); [ "$left" = 0 ] && break; sleep 0.2
  done
  queue_left "$1"
}
# Why a server's mail did not reach the sink: the queue and the last deferral.
why_stuck() {  # why_stuck SERVER
  local last
  last=$(grep -E 'status=(deferred|bounced)' "$(maillog_of "$1")" 2>/dev/null | tail -1 | sed 's/.*status=//')
  echo "queue: $(queue_left "$1") files ($(deferred_left "$1") deferred); last deferral: ${last:-none logged}"
}

# ------------------------------------------------------------------ load
send() {  # send SERVER COUNT -> 0 when smtp-source finished in RUN_TIMEOUT
  local port rc=0
  if [ "$1" = postfix ]; then port=$PF_PORT; else port=$TERN_PORT; fi
  timeout "$RUN_TIMEOUT" smtp-source -s "$SESSIONS" -m "$2" -l "$SIZE" -f "$FROM" -t "$TO" \
    -M client.bench.test "127.0.0.1:$port" > "$WORK/smtp-source.out" 2>&1 &
  SRC_PID=$!
  wait "$SRC_PID" || rc=$?
  SRC_PID=""
  [ "$rc" = 0 ] || log "smtp-source to $1 failed ($rc): $(tail -3 "$WORK/smtp-source.out")"
  return "$rc"
}

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" | tee -a "$RES" >&2; }
fail_run() {  # fail_run SERVER WHY: records the failure, stops the server; the script goes on
  log "FAILED: $1: $2"
  record relayed_msgs_per_s "$1" NaN "FAILED: $2"
  FAILED=1
  if [ "$1" = postfix ]; then stop_postfix; else stop_tern; fi
  stop_sink
  unmount_fs
}

# ------------------------------------------------------------------ one measured run
bench_one() {  # bench_one SERVER
  local s=$1 sink got done_at t0 t1 rate accept e2e open0 sess0 mesg0 sess1 mesg1 left bad first i
  if [ "$s" = postfix ]; then sink=$PF_SINK; else sink=$TERN_SINK; fi
  new_fs "$s"
  start_sink "$s" "$sink"
  if [ "$s" = postfix ]; then start_postfix "$sink"; else start_tern "$sink"; fi

  log "$s: warm-up, $WARMUP messages"
  send "$s" "$WARMUP" || { fail_run "$s" "smtp-source failed in the warm-up"; return 0; }
  read -r got _ < <(sink_wait "$WARMUP" "$WARMUP_TIMEOUT")
  if [ "$got" -lt "$WARMUP" ]; then
    fail_run "$s" "the queue did not drain: $got of $WARMUP warm-up messages reached smtp-sink in ${WARMUP_TIMEOUT}s; $(why_stuck "$s")"
    return 0
  fi
  left=$(queue_wait "$s" "$QUEUE_WAIT")
  [ "$left" = 0 ] || { fail_run "$s" "warm-up: $left files left in the queue; $(why_stuck "$s")"; return 0; }
  for i in $(seq $((CONN_IDLE_WAIT * 5))); do [ "$(sink_open "$sink")" = 0 ] && break; sleep 0.2; done
  open0=$(sink_open "$sink")
  read -r sess0 _ mesg0 < <(sink_counts)
  sync; sleep 1

  log "$s: $SESSIONS sessions x $N messages x $SIZE bytes to $TO"
  python3 "$POLLER" "$SINK_OUT" $((mesg0 + N)) $((RUN_TIMEOUT + DRAIN_TIMEOUT)) > "$WORK/poll.$s.out" &
  POLL_PID=$!
  t0=$(date +%s.%N)
  if send "$s" "$N"; then t1=$(date +%s.%N); else t1=NaN; fi
  wait "$POLL_PID" || true
  POLL_PID=""
  read -r got done_at < "$WORK/poll.$s.out"
  left=$(queue_wait "$s" "$QUEUE_WAIT")
  bad=$(grep -cE 'status=(deferred|bounced)|(fatal|panic):' "$(maillog_of "$s")" || true)
  # A cross-check from the log: smtp(8) adds conn_use=K to a delivery made over a reused
  # connection (K > 1), so sent lines without it are first uses: new connections. The
  # warm-up's WARMUP lines come first (it drained before the run began).
  first=$(grep -F "relay=127.0.0.1[127.0.0.1]:$sink," "$(maillog_of "$s")" | grep -F status=sent \
    | tail -n +$((WARMUP + 1)) | grep -vc conn_use= || true)
  local why=""
  [ "$done_at" = NaN ] && why="the queue did not drain: $((got - mesg0)) of $N reached smtp-sink in $((RUN_TIMEOUT + DRAIN_TIMEOUT))s; $(why_stuck "$s")"
  # Stopping the server closes what it held open; the sink then counts those sessions.
  if [ "$s" = postfix ]; then stop_postfix; else stop_tern; fi
  for i in $(seq $((CONN_IDLE_WAIT * 5))); do [ "$(sink_open "$sink")" = 0 ] && break; sleep 0.2; done
  sleep 0.5
  read -r sess1 _ mesg1 < <(sink_counts)
  stop_sink
  read -r rate accept e2e < <(python3 -c "
import sys
n, t0, t1, done = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
print('NaN' if done == 'NaN' else f'{n / (float(done) - t0):.1f}',
      'NaN' if t1 == 'NaN' else f'{float(t1) - t0:.3f}',
      'NaN' if done == 'NaN' else f'{float(done) - t0:.3f}')" "$N" "$t0" "$t1" "$done_at")
  record relayed_msgs_per_s "$s" "$rate" \
    "end_to_end=${e2e}s accepted_in=${accept}s at_sink=$((mesg1 - mesg0))/$N queue_left=$left log_deferred_bounced_fatal=$bad${why:+ FAILED: $why}"
  record sink_connections "$s" "$((sess1 - sess0))" "warm_open=$open0 log_first_uses=$first messages_per_connection=$(python3 -c "import sys; c=int(sys.argv[2]); print(f'{int(sys.argv[1]) / c:.1f}' if c else 'NaN')" "$((mesg1 - mesg0))" "$((sess1 - sess0))")"
  if [ -n "$why" ]; then log "FAILED: $s: $why"; FAILED=1; fi
  [ "$((mesg1 - mesg0))" = "$N" ] || { log "WARNING: $s: the sink got $((mesg1 - mesg0)) of $N"; FAILED=1; }
  [ "$left" = 0 ] || { log "WARNING: $s: $left files left in the queue"; FAILED=1; }
  [ "$bad" = 0 ] || log "WARNING: $s: $bad deferred/bounced/fatal lines in $(maillog_of "$s")"
  unmount_fs
}

# The whole run is one function, read before any of it runs (an edit of this file during
# a run does not change what the run does).
main() {
for s in $SERVERS; do
  bench_one "$s"
done

# ------------------------------------------------------------------ summary
python3 - "$RES" "$N" <<'EOF'
import sys
rate, conns = {}, {}
for line in open(sys.argv[1]):
    m, s, v, note = line.rstrip("\n").split("\t")
    if m == "relayed_msgs_per_s":
        rate[s] = float(v)
    elif m == "sink_connections":
        conns[s] = int(v)
nan = float("nan")
p, t = rate.get("postfix", nan), rate.get("tern", nan)
cp, ct = conns.get("postfix"), conns.get("tern")
print(f"\nrelay to smtp-sink, {sys.argv[2]} x 1 KiB, 20 sessions in")
print("server\tmsg/s\tconnections to the sink")
for s in ("postfix", "tern"):
    if s in rate:
        print(f"{s}\t{rate[s]:.1f}\t{conns.get(s, '-')}")
# A check with a side missing (not run, or failed) is "-": not met, and not measured.
r = t / p if p else nan
print("\ncheck\tvalue\ttarget\tmet")
print(f"tern/postfix msg/s\t{r:.2f}\t>= 2\t{'-' if r != r else 'yes' if r >= 2 else 'NO'}")
both = ct is not None and cp is not None
diff, met = (ct - cp, "yes" if ct <= cp else "NO") if both else ("-", "-")
print(f"tern connections - postfix's\t{diff}\t<= 0\t{met}")
EOF
[ "$FAILED" = 0 ] || { log "some runs failed (see above and $RES)"; exit 1; }
}

main "$@"
