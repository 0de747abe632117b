#!/usr/bin/env bash
# bench.sh -- the side-by-side benchmark: Tern and Debian's Postfix 3.7 on one machine, the
# same workloads, one table.
#
# Both servers run from the same main.cf settings (bench/lib.sh: pf_configure,
# tern_configure), one at a time, each on a fresh ext4 file system of its own in a loop
# file under WORK (/var/tmp), on 127.0.0.1. Equal durability: neither answers 250 after
# the data before the message is on disk (Postfix's cleanup fsyncs the queue file, its
# default; Tern syncs a commit-journal record, docs/queue-format.md), and both local
# delivery agents fsync the mailbox file before reporting success.
#
# Workloads (the load: Postfix's smtp-source, one connection per message, HELO):
#   accept   the server only stores the mail: Postfix puts every message on HOLD at the
#            end of data (smtpd_end_of_data_restrictions = check_client_access
#            static:HOLD: cleanup writes and fsyncs the queue file, the queue manager never
#            sees it); Tern runs smtpd alone (no qmgr line: mail stays in incoming/).
#            Recipient root@localhost. Done when smtp-source ends. (bench/smtp-bench.sh)
#   maildir  local delivery to one user's Maildir (bench-u000, made for the run when
#            missing, removed at the end): done when the last message is in new/.
#            (bench/delivery-bench.sh)
#   relay    relayhost = [127.0.0.1]:SINK, an smtp-sink that keeps nothing: done when the
#            sink's own counter (smtp-sink -c) has grown by N. (bench/relay-bench.sh)
#   idle     IDLE (10,000) connections opened at once and held silent after the greeting.
#   ceiling  smtp-source straight into smtp-sink (no disk): the load's own limit.
#
# Each (workload, sessions, size) cell, per server: a run of smtp-source (-s S -m N -l
# SIZE) gives messages/s (N over the time from its start to done), the CPU seconds per
# 1,000 messages (utime + stime of the server's whole process tree, /proc, over the same
# time: bench/lib.sh cpu_ticks) and the peak resident memory (VmRSS summed over the tree,
# sampled every 0.2 s). Then a run of smtp-load (crates/client/src/bin/smtp-load.rs: the
# same sessions and size, N/2 messages, one connection per message) gives the latency per
# message, MAIL to the 250 after the data, p50 and p99. Each run waits for its mail to be
# done before the next starts, and checks the count (accept: queue files; maildir: files
# in new/; relay: the sink's counter); a cell whose count is short is marked "!".
#
# Process limits: smtpd's maxproc is MAXPROC (1000) on both, so 1000 sessions are 1000
# concurrent server sessions (Postfix's default_process_limit, 100, stays for its other
# services). For the idle connections Tern's smtpd has no limit (maxproc 0: a session is
# a task, not a process) and Postfix's has PF_IDLE_MAXPROC (1000): Postfix needs one smtpd
# process per connection (about 1.5 MB of PSS each), so 10,000 would take some 15 GB on a
# machine shared with others; its listen queue (backlog = maxproc) holds 1,000 more,
# unanswered, and the rest are not accepted. The idle row shows how many were greeted.
#
# Default: a few minutes (sessions 1/20/200/1000 at 1 KiB, 20/200 at 100 KiB, 1/20 at
# 5 MiB; few messages per cell). --full: every sessions x size cell, 10x the messages.
# message_size_limit stays at its default (10240000) on both: 5 MiB fits.
#
# Loopback only. Every wait has a timeout. Everything is cleaned up on exit: the servers
# and helpers this script started (by pid), its loop mounts and their images, its work
# directory (KEEP=1 keeps results.tsv and the logs, KEEP_FS=1 the images too), the user
# it made. Not for CI: a benchmark is not a test.
#
# Usage (as root; Debian's postfix is installed when missing):
#   bench/bench.sh [--full]
# It builds what it measures first (cargo build --release -p tern-commands -p tern-client;
# BUILD=0 skips that, e.g. with TERN= and LOAD= pointing at other builds).
# Tunables (env): WORKLOADS ("accept maildir relay idle"), CELLS ("S:SIZE ..."), N_SCALE (1;
#   10 with --full), MAXPROC (1000), IDLE (10000), PF_IDLE_MAXPROC (1000), PORT_BASE
#   (2700), RUN_TIMEOUT (s, one load run, 600), DRAIN_TIMEOUT (s, mail done after the
#   load, 600), TERN, LOAD (smtp-load), WORK, KEEP (0), KEEP_FS (0), BUILD (1)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

FULL=0
for a in "$@"; do
  case $a in
    --full) FULL=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $a (bench.sh [--full])" ;;
  esac
done
KIB=1024; MIB=$((1024 * 1024))
if [ "$FULL" = 1 ]; then
  N_SCALE=${N_SCALE:-10}
  CELLS=${CELLS:-"1:$KIB 20:$KIB 200:$KIB 1000:$KIB 1:$((100 * KIB)) 20:$((100 * KIB)) 200:$((100 * KIB)) 1000:$((100 * KIB)) 1:$((5 * MIB)) 20:$((5 * MIB)) 200:$((5 * MIB)) 1000:$((5 * MIB))"}
else
  N_SCALE=${N_SCALE:-1}
  CELLS=${CELLS:-"1:$KIB 20:$KIB 200:$KIB 1000:$KIB 20:$((100 * KIB)) 200:$((100 * KIB)) 1:$((5 * MIB)) 20:$((5 * MIB))"}
fi
WORKLOADS=${WORKLOADS:-"accept maildir relay idle"}
SERVERS="postfix tern"
MAXPROC=${MAXPROC:-1000}
IDLE=${IDLE:-10000}
PF_IDLE_MAXPROC=${PF_IDLE_MAXPROC:-1000}
PORT_BASE=${PORT_BASE:-2700}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
SINK_PORT=$((PORT_BASE + 2))
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
WARMUP=200
LOAD=${LOAD:-$HERE/target/release/smtp-load}
KEEP=${KEEP:-0}
FROM=bench@example.org
BUSER=bench-u000

# Messages per cell: enough for the rate to settle, at least one per session (5 MiB
# cells: the accept workload keeps every message, so --full scales them 5x, not 10x).
n_for() {  # n_for SESSIONS SIZE
  local base min=$((2 * $1))
  case $2 in
    $KIB) base=$((1000 * N_SCALE)) ;;
    $((100 * KIB))) base=$((300 * N_SCALE)) ;;
    *) base=$(( ($1 == 1 ? 20 : 40) * (N_SCALE > 5 ? 5 : N_SCALE) )); min=$1 ;;
  esac
  echo $(( base > min ? base : min ))
}
# Bytes a workload keeps on its file system (the accept workload keeps every message;
# a Maildir every delivered one): smtp-source's and smtp-load's messages of each cell.
disk_need() {
  local cell sess size n total=0
  for cell in $CELLS; do
    sess=${cell%%:*}; size=${cell##*:}; n=$(n_for "$sess" "$size")
    total=$(( total + (n + (n / 2 > sess ? n / 2 : sess)) * (size + 1024) ))
  done
  echo $(( total + WARMUP * 2048 + 512 * MIB ))
}

START=$(date +%s)
need_root
if [ "${BUILD:-1}" = 1 ]; then
  log "building Tern (release)"
  (cd "$HERE" && cargo build --release -q -p tern-commands -p tern-client) || die "cargo build --release failed"
fi
ensure_postfix
need_cmds postfix postconf postalias smtp-source smtp-sink python3 mkfs.ext4 mount timeout useradd userdel
need_tern postalias tern-delivery
[ -x "$LOAD" ] || die "$LOAD missing: cargo build --release -p tern-client"
ulimit -n 20000 || die "cannot raise the open-file limit to 20000 (1000 sessions, 10,000 idle connections)"

WORK=${WORK:-$(mktemp -d /var/tmp/bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
RES=$WORK/results.tsv
: > "$RES"
SINK_PID=""; SRC_PID=""; POLL_PID=""; RSS_PID=""; HOLD_PID=""; MADE_USER=0
ROOT_PID=""   # the measured server's top process (Postfix's master, Tern, the sink)

cleanup() {
  set +e
  local p
  for p in "$HOLD_PID" "$RSS_PID" "$POLL_PID" "$SRC_PID" "$SINK_PID"; do stop_pid "$p"; done
  bench_cleanup
  [ "$MADE_USER" = 1 ] && { userdel "$BUSER" 2>/dev/null || log "userdel $BUSER failed"; }
  if [ "$KEEP" = 1 ] || [ "$KEEP_FS" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  log "wall time $(( $(date +%s) - START )) s"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! getent passwd "$BUSER" >/dev/null; then
  useradd -M -N -g users -d /nonexistent -s /usr/sbin/nologin -c "tern bench" "$BUSER" || die "useradd $BUSER failed"
  MADE_USER=1
elif [ "$(id -u "$BUSER")" = 0 ]; then
  die "$BUSER is root"
fi

# ------------------------------------------------------------------ helpers
record() { local IFS=$'\t'; printf '%s\n' "$*" >> "$RES"; }
rcpt_of() {  # rcpt_of WORKLOAD
  case $1 in
    accept|idle) echo root@localhost ;;
    maildir) echo "$BUSER@$BENCH_HOST" ;;
    *) echo user@remote.bench.test ;;
  esac
}
port_of() { case $1 in postfix) echo "$PF_PORT" ;; tern) echo "$TERN_PORT" ;; *) echo "$SINK_PORT" ;; esac; }

start_sink() {  # start_sink: a counting smtp-sink (-c: "sess=S quit=Q mesg=M" lines)
  : > "$WORK/sink.out"
  smtp-sink -c -u nobody -h sink.bench.test "127.0.0.1:$SINK_PORT" 1000 </dev/null >"$WORK/sink.out" 2>"$WORK/sink.err" &
  SINK_PID=$!
  wait_greeting "$SINK_PORT" 10 || die "smtp-sink does not greet: $(cat "$WORK/sink.err")"
}
stop_sink() { stop_pid "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""; }

# What "done" counts, per workload and server: a directory's files, or the sink's counter.
count_spec() {  # count_spec WORKLOAD SERVER -> "dir PATH" | "sink PATH" | "none -"
  case $1:$2 in
    *:sink) echo "none -" ;;
    accept:postfix) echo "dir $PF/queue/hold" ;;
    accept:tern) echo "dir $TD/spool/incoming" ;;
    maildir:*) echo "dir $FS/mail/$BUSER/new" ;;
    relay:*) echo "sink $WORK/sink.out" ;;
  esac
}
# COUNT_PY KIND PATH TARGET LIMIT -> "COUNT DONE_AT": polls until COUNT >= TARGET (TARGET
# -1: once) or LIMIT seconds (DONE_AT NaN). dir: the files of a flat directory (hold/,
# incoming/, a Maildir's new/), polled every 0.1 s with one listdir (cheap: the poller
# shares the machine with the server), and DONE_AT is the newest file's mtime, read once
# at the end; sink: smtp-sink -c's last "mesg=M" in its output, every 20 ms.
COUNT_PY='
import os, re, sys, time
kind, path, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
pat = re.compile(rb"mesg=(\d+)")
def count():
    if kind == "dir":
        try:
            return len(os.listdir(path))
        except OSError:
            return 0
    if kind == "sink":
        try:
            with open(path, "rb") as f:
                f.seek(0, 2); size = f.tell(); f.seek(max(0, size - 256))
                m = pat.findall(f.read())
            return int(m[-1]) if m else 0
        except OSError:
            return 0
    return 0
def newest(now):
    if kind != "dir":
        return now
    t = 0.0
    for e in os.scandir(path):
        try:
            t = max(t, e.stat(follow_symlinks=False).st_mtime)
        except OSError:
            pass
    return t or now
end = time.time() + limit
while True:
    n, now = count(), time.time()
    if target < 0:
        print(n, f"{now:.6f}"); break
    if n >= target:
        print(n, f"{newest(now):.6f}"); break
    if now > end:
        print(n, "NaN"); break
    time.sleep(0.1 if kind == "dir" else 0.02)
'
count_now() { python3 -c "$COUNT_PY" "$1" "$2" -1 1 | cut -d' ' -f1; }

# run_cell WORKLOAD SERVER SESSIONS SIZE: the two runs of one cell; records a line.
run_cell() {
  local w=$1 s=$2 sess=$3 size=$4 n nl port to kind path base t0 t1 done_at got c0 c1 stop lat ok=""
  n=$(n_for "$sess" "$size"); nl=$(( n / 2 > sess ? n / 2 : sess ))
  port=$(port_of "$s"); to=$(rcpt_of "$w")
  read -r kind path < <(count_spec "$w" "$s")
  base=$(count_now "$kind" "$path")
  stop=$WORK/rss.stop; rm -f "$stop"
  rss_sampler "$ROOT_PID" "$stop" $((RUN_TIMEOUT + DRAIN_TIMEOUT)) > "$WORK/rss.out" &
  RSS_PID=$!
  # accept (and the ceiling) is done when smtp-source is: no poller during the load.
  if [ "$w" != accept ] && [ "$kind" != none ]; then
    python3 -c "$COUNT_PY" "$kind" "$path" $((base + n)) $((RUN_TIMEOUT + DRAIN_TIMEOUT)) > "$WORK/poll.out" &
    POLL_PID=$!
  fi
  c0=$(cpu_ticks "$ROOT_PID")
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" smtp-source -s "$sess" -m "$n" -l "$size" -f "$FROM" -t "$to" \
    -M client.bench.test "127.0.0.1:$port" > "$WORK/smtp-source.out" 2>&1 &
  SRC_PID=$!
  if wait "$SRC_PID"; then t1=$(date +%s.%N); else t1=NaN; log "smtp-source failed: $(tail -2 "$WORK/smtp-source.out")"; fi
  SRC_PID=""
  if [ -n "$POLL_PID" ]; then
    wait "$POLL_PID" || true
    POLL_PID=""
    read -r got done_at < "$WORK/poll.out"; got=$((got - base))
  else
    done_at=$t1
    if [ "$kind" = none ]; then got=$n; else got=$(( $(count_now "$kind" "$path") - base )); fi
  fi
  c1=$(cpu_ticks "$ROOT_PID")
  touch "$stop"; wait "$RSS_PID" || true; RSS_PID=""
  [ "$got" -ge "$n" ] || { ok="!"; log "WARNING: $s $w s=$sess size=$size: $got of $n done"; }
  # Latency: smtp-load, the same sessions and size, nl messages; then wait until they are done.
  base=$(count_now "$kind" "$path")
  lat=$(timeout "$RUN_TIMEOUT" "$LOAD" "127.0.0.1:$port" "$nl" --sessions "$sess" --size "$size" \
        --from "$FROM" --to "$to" 2>>"$WORK/load.err") || lat="failed"
  [ "$kind" = none ] || read -r _ _ < <(python3 -c "$COUNT_PY" "$kind" "$path" $((base + nl)) "$DRAIN_TIMEOUT")
  record cell "$w" "$s" "$sess" "$size" "$n" "$t0" "$t1" "$done_at" "$((c1 - c0))" "$(cut -d' ' -f1 "$WORK/rss.out")" "$got$ok" "$lat"
  log "$w $s s=$sess size=$size n=$n: $(python3 -c "import sys; t0,d=float(sys.argv[1]),sys.argv[2]; print('NaN' if d=='NaN' else f'{int(sys.argv[3])/(float(d)-t0):.1f} msg/s')" "$t0" "$done_at" "$n"), cpu $(( c1 - c0 )) ticks; $lat"
}

# ------------------------------------------------------------------ one server, one workload
start_server() {  # start_server WORKLOAD SERVER
  local w=$1 s=$2 maxproc=$MAXPROC
  [ "$w" = idle ] && { if [ "$s" = tern ]; then maxproc=0; else maxproc=$PF_IDLE_MAXPROC; fi; }
  if [ "$s" = postfix ]; then
    if [ "$w" = accept ] || [ "$w" = idle ]; then
      pf_configure "$FS/postfix" "$PF_PORT" "$maxproc" "smtpd_end_of_data_restrictions=check_client_access,static:HOLD"
    else
      pf_configure "$FS/postfix" "$PF_PORT" "$maxproc"
    fi
  else
    case $w in
      accept|idle) tern_configure "$FS/tern" "$TERN_PORT" accept "$maxproc" ;;
      maildir) tern_configure "$FS/tern" "$TERN_PORT" deliver "$maxproc" ;;
      relay) tern_configure "$FS/tern" "$TERN_PORT" default "$maxproc" ;;
    esac
  fi
  local cf; if [ "$s" = postfix ]; then cf=$PF/main.cf; else cf=$TD/conf/main.cf; fi
  case $w in
    maildir)
      # mail_spool_directory ending in "/": the user's Maildir is SPOOL/USER/ (made here,
      # owned by the user; both agents make tmp/ new/ cur/ inside with the user's rights).
      mkdir -p "$FS/mail/$BUSER"; chmod 0755 "$FS/mail"
      chown "$BUSER:users" "$FS/mail/$BUSER"; chmod 0700 "$FS/mail/$BUSER"
      cf_set "$cf" "mail_spool_directory = $FS/mail/" ;;
    relay) cf_set "$cf" "relayhost = [127.0.0.1]:$SINK_PORT" ;;
  esac
  if [ "$s" = postfix ]; then pf_start "$PF_PORT"; ROOT_PID=$(pf_master); else tern_start "$TERN_PORT"; ROOT_PID=$TERN_PID; fi
}
stop_server() { if [ "$1" = postfix ]; then pf_stop; else tern_stop; fi; ROOT_PID=""; }

bench_workload() {  # bench_workload WORKLOAD SERVER
  local w=$1 s=$2 cell kind path base
  new_fs "$w-$s" $(( FS_BYTES * 3 / 2 / MIB + 1024 ))M
  [ "$w" = relay ] && start_sink
  start_server "$w" "$s"
  log "$s/$w: warm-up, $WARMUP messages"
  read -r kind path < <(count_spec "$w" "$s")
  base=$(count_now "$kind" "$path")
  timeout "$RUN_TIMEOUT" smtp-source -s 20 -m "$WARMUP" -l 1024 -f "$FROM" -t "$(rcpt_of "$w")" \
    -M client.bench.test "127.0.0.1:$(port_of "$s")" > "$WORK/smtp-source.out" 2>&1 || die "$s/$w: warm-up failed: $(tail -2 "$WORK/smtp-source.out")"
  read -r got _ < <(python3 -c "$COUNT_PY" "$kind" "$path" $((base + WARMUP)) 120)
  [ "$((got - base))" -ge "$WARMUP" ] || die "$s/$w: only $((got - base)) of $WARMUP warm-up messages done in 120 s"
  for cell in $CELLS; do
    sync; sleep 1
    run_cell "$w" "$s" "${cell%%:*}" "${cell##*:}"
  done
  local bad log
  if [ "$s" = postfix ]; then log=$PF/maillog; else log=$TD/log/mail.log; fi
  bad=$(grep -cE 'status=(deferred|bounced)|(fatal|panic):' "$log" || true)
  [ "$bad" = 0 ] || log "WARNING: $s/$w: $bad deferred/bounced/fatal lines in $log: $(grep -E 'status=(deferred|bounced)|(fatal|panic):' "$log" | tail -1)"
  stop_server "$s"
  [ "$w" = relay ] && stop_sink
  unmount_fs
  rm -f "$WORK/$w-$s.img"
}

bench_ceiling() {
  local cell
  log "ceiling: smtp-source -> smtp-sink"
  start_sink
  ROOT_PID=$SINK_PID
  for cell in $CELLS; do
    run_cell ceiling sink "${cell%%:*}" "${cell##*:}"
  done
  stop_sink
}

# The idle connections: a fresh server (accept set-up), IDLE connections held by
# smtp-load --idle; resident memory (and PSS) of the server's tree while they are held.
bench_idle() {  # bench_idle SERVER
  local s=$1 before line
  new_fs "idle-$s" 1G
  start_server idle "$s"
  sleep 2
  rm -f "$WORK/rss.stop" "$WORK/idle.stop"; touch "$WORK/rss.stop"
  before=$(PSS=1 rss_sampler "$ROOT_PID" "$WORK/rss.stop" 1)
  log "$s: $IDLE idle connections"
  timeout $((RUN_TIMEOUT)) "$LOAD" "127.0.0.1:$(port_of "$s")" "$IDLE" --idle --greet-wait 40 --hold 180 \
    --stop "$WORK/idle.stop" > "$WORK/idle.out" 2>>"$WORK/load.err" &
  HOLD_PID=$!
  for _ in $(seq 600); do [ -s "$WORK/idle.out" ] && break; sleep 0.1; done
  sleep 2   # let the servers settle (Postfix forks; Tern's tasks reach their idle read)
  line=$(PSS=1 rss_sampler "$ROOT_PID" "$WORK/rss.stop" 1)
  touch "$WORK/idle.stop"; wait "$HOLD_PID" 2>/dev/null || true; HOLD_PID=""
  record idle "$s" "$(cat "$WORK/idle.out" 2>/dev/null || echo opened=0 greeted=0)" "$before" "$line"
  log "$s idle: $(cat "$WORK/idle.out" 2>/dev/null) rss_pss_procs before: $before, with: $line"
  stop_server "$s"
  unmount_fs
  rm -f "$WORK/idle-$s.img"
}

# ------------------------------------------------------------------ the run
main() {
  FS_BYTES=$(disk_need)
  FREE=$(( $(df --output=avail -k "$WORK" | tail -1) * 1024 ))
  [ "$FREE" -gt $((FS_BYTES + 2 * 1024 * MIB)) ] || die "$WORK: $((FREE / MIB)) MiB free, a workload needs about $((FS_BYTES / MIB)) MiB"
  log "work directory $WORK; cells: $CELLS; workloads: $WORKLOADS"
  record machine "nproc=$(nproc)" "mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
    "kernel=$(uname -r)" "postfix=$(postconf -dh mail_version)" "tern=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo -)"
  bench_ceiling
  local w s
  for w in $WORKLOADS; do
    case $w in accept|maildir|relay|idle) ;; *) die "unknown workload $w" ;; esac
    for s in $SERVERS; do
      if [ "$w" = idle ]; then bench_idle "$s"; else bench_workload "$w" "$s"; fi
    done
  done
  python3 "$HERE/bench/table.py" "$RES" "$CLK_TCK" "$IDLE"
}

main "$@"
