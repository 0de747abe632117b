#!/usr/bin/env bash
# smtp-bench.sh -- Tern's daemon side by side with Debian's Postfix on loopback, measured
# with Postfix's own smtp-source and smtp-sink.
#
# Equal durability: neither server answers 250 before the message is on disk (Postfix's
# cleanup fsyncs the queue file; Tern fdatasyncs a commit-journal record holding the whole
# file, docs/queue-format.md), and both queues live on the same file system (a fresh ext4
# in a loop file, see QUEUE_FS below). Neither delivers: Tern's master.cf here has no qmgr
# line (mail stays in incoming/), and
# the private Postfix puts every message on HOLD at the end of data (the "accept-only"
# setup of /work/shared/bench/postfix-baseline.sh: cleanup writes and fsyncs the queue
# file, the queue manager never sees it).
#
# Measures:
#   accept     messages/s, 20 sessions x N messages x 1 KiB (smtp-source -s 20 -m N -l 1024),
#              against Postfix, Tern and smtp-sink (no disk: the upper bound)
#   latency    single-session sequential ms/message (smtp-source -s 1)
#   idle RSS   Tern's VmRSS holding 10,000 idle SMTP sessions (a python3 holder reads
#              each greeting and stays idle); Postfix's process count and RSS/PSS holding
#              default_process_limit (100) idle sessions, one smtpd process each
# Prints a TSV and the ratios against the targets.
#
# Loopback only. Every loop is bounded in count and time. The only processes ended are
# the ones this script started, by pid, and the private Postfix instance (`postfix -c DIR
# stop`, then whatever of that instance is left, by pid).
#
# Set-up shared with the other scripts: bench/lib.sh. Usage (as root, after
# `cargo build --release -p tern-commands`):
#   bash bench/smtp-bench.sh
# Tunables (env): N (messages per accept run, 5000), N_LAT (500), IDLE (10000),
#   TERN (path of Tern's postfix binary), WORK (a directory to keep), PORT_BASE (2640)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-5000}
N_LAT=${N_LAT:-500}
IDLE=${IDLE:-10000}
SIZE=1024
SESSIONS=20
PORT_BASE=${PORT_BASE:-2640}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
SINK_PORT=$((PORT_BASE + 2))
RUN_TIMEOUT=${RUN_TIMEOUT:-300}     # cap (s) on one smtp-source run
FROM=bench@example.org
TO=root@localhost

need_root
need_cmds postfix postconf smtp-source smtp-sink python3 mkfs.ext4 mount
need_tern postalias

WORK=${WORK:-$(mktemp -d /var/tmp/smtp-bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
RES=$WORK/results.tsv
: > "$RES"
SINK_PID=""; HOLD_PID=""

# ------------------------------------------------------------------ cleanup
cleanup() {
  set +e
  [ -n "$HOLD_PID" ] && stop_pid "$HOLD_PID"
  [ -n "$SINK_PID" ] && stop_pid "$SINK_PID"
  bench_cleanup
  log "results in $RES (work directory $WORK)"
}
trap cleanup EXIT

# Both queues live on a file system of their own, made fresh for the run (bench/lib.sh
# new_fs: ext4 as mkfs.ext4 makes it by default, in a loop file). Measured on the
# machine's own file system the runs swung by 2x. QUEUE_FS=dir keeps the queues in
# $WORK instead.
QUEUE_FS=${QUEUE_FS:-loop}
if [ "$QUEUE_FS" = loop ]; then new_fs fs; else FS=$WORK; fi

# ------------------------------------------------------------------ Postfix, private
start_postfix() {
  pf_configure "$FS/postfix" "$PF_PORT" - "smtpd_end_of_data_restrictions=check_client_access,static:HOLD"
  log "(HOLD at end of data)"
  pf_start "$PF_PORT"
}
pf_held() { find "$PF/queue/hold" -type f 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ Tern
start_tern() {
  # maxproc 0 (no limit): the idle-session measurement holds 10,000 sessions at once.
  tern_configure "$FS/tern" "$TERN_PORT" accept 0
  tern_start "$TERN_PORT"
}
tern_queued() { find "$TD/spool/incoming" -type f 2>/dev/null | wc -l; }

start_sink() {
  log "smtp-sink on 127.0.0.1:$SINK_PORT"
  smtp-sink -u nobody -h sink.bench.test "127.0.0.1:$SINK_PORT" 1000 &
  SINK_PID=$!
  wait_greeting "$SINK_PORT" 10 || die "smtp-sink does not greet"
}

# ------------------------------------------------------------------ measurements
# run_source PORT SESSIONS COUNT -> elapsed seconds (or NaN)
run_source() {
  local port=$1 s=$2 m=$3 t0 t1
  sync
  t0=$(date +%s.%N)
  if ! timeout "$RUN_TIMEOUT" smtp-source -s "$s" -m "$m" -l "$SIZE" -f "$FROM" -t "$TO" \
       -M client.bench.test "127.0.0.1:$port" > "$WORK/smtp-source.out" 2>&1; then
    log "smtp-source on $port failed: $(tail -3 "$WORK/smtp-source.out")"; echo NaN; return 0
  fi
  t1=$(date +%s.%N)
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$t0" "$t1"
}
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" | tee -a "$RES" >&2; }
rate() { python3 -c "import sys; n,t=float(sys.argv[1]),sys.argv[2]; print('NaN' if t=='NaN' else f'{n/float(t):.1f}')" "$1" "$2"; }
per_msg_ms() { python3 -c "import sys; n,t=float(sys.argv[1]),sys.argv[2]; print('NaN' if t=='NaN' else f'{1000*float(t)/n:.3f}')" "$1" "$2"; }

# No queue is emptied, between measurements or at the end (the work directory stays for
# inspection; remove it when done, a few minutes before the next run): deleting thousands
# of files just before a run would charge that run for them (ext4, without a journal as
# on this project's machines, skips recently deleted inodes when it allocates one, and that
# scan showed up as a third of the CPU time of a run that followed a mass delete).
bench_accept() {
  local e b
  log "warm-up (discarded)"
  run_source "$PF_PORT" "$SESSIONS" 200 >/dev/null
  run_source "$TERN_PORT" "$SESSIONS" 200 >/dev/null
  log "accept: $SESSIONS sessions x $N messages x $SIZE bytes"
  e=$(run_source "$SINK_PORT" "$SESSIONS" "$N"); record accept_msgs_per_s smtp-sink "$(rate "$N" "$e")" "elapsed=$e"
  b=$(pf_held); e=$(run_source "$PF_PORT" "$SESSIONS" "$N")
  record accept_msgs_per_s postfix "$(rate "$N" "$e")" "elapsed=$e held=$(( $(pf_held) - b ))"
  b=$(tern_queued); e=$(run_source "$TERN_PORT" "$SESSIONS" "$N")
  record accept_msgs_per_s tern "$(rate "$N" "$e")" "elapsed=$e queued=$(( $(tern_queued) - b ))"
  log "latency: 1 session x $N_LAT messages"
  e=$(run_source "$SINK_PORT" 1 "$N_LAT"); record latency_ms smtp-sink "$(per_msg_ms "$N_LAT" "$e")" "elapsed=$e"
  b=$(pf_held); e=$(run_source "$PF_PORT" 1 "$N_LAT")
  record latency_ms postfix "$(per_msg_ms "$N_LAT" "$e")" "elapsed=$e held=$(( $(pf_held) - b ))"
  b=$(tern_queued); e=$(run_source "$TERN_PORT" 1 "$N_LAT")
  record latency_ms tern "$(per_msg_ms "$N_LAT" "$e")" "elapsed=$e queued=$(( $(tern_queued) - b ))"
}

# The holder: opens COUNT sessions to PORT one by one (each reads its 220 greeting),
# writes "ready OPEN" to READY, and stays idle until STOP exists or LIMIT seconds pass.
HOLDER=$WORK/hold.py
cat > "$HOLDER" <<'EOF'
import os, resource, socket, sys, time
port, count, ready, stop, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))
end = time.time() + limit
socks = []
for i in range(count):
    if time.time() > end:
        break
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if not s.recv(512).startswith(b"220"):
            s.close(); continue
        socks.append(s)
    except OSError as e:
        sys.stderr.write(f"connection {i}: {e}\n")
        break
with open(ready, "w") as f:
    f.write(f"ready {len(socks)}\n")
while not os.path.exists(stop) and time.time() < end:
    time.sleep(0.2)
EOF

# hold_sessions PORT COUNT -> starts the holder, waits until it is ready; sets OPEN
hold_sessions() {
  local port=$1 count=$2 i
  rm -f "$WORK/ready" "$WORK/stop"
  python3 "$HOLDER" "$port" "$count" "$WORK/ready" "$WORK/stop" 180 >/dev/null 2>"$WORK/hold.err" &
  HOLD_PID=$!
  for i in $(seq 1800); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
  sleep 2   # let the servers settle (Postfix forks; Tern's tasks reach their idle read)
  OPEN=$(awk '{print $2}' "$WORK/ready" 2>/dev/null || echo 0)
}
release_sessions() { touch "$WORK/stop"; wait "$HOLD_PID" 2>/dev/null || true; HOLD_PID=""; }

vmrss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

bench_memory() {
  local before open after pl rss pss n
  before=$(vmrss_kb "$TERN_PID")
  log "idle: $IDLE sessions to Tern"
  hold_sessions "$TERN_PORT" "$IDLE"; open=$OPEN
  after=$(vmrss_kb "$TERN_PID")
  release_sessions
  record idle_rss_kb tern_before "$before" "-"
  record idle_rss_kb tern_with_sessions "$after" "open=$open"
  pl=$(postconf -c "$PF" -h default_process_limit)
  log "idle: $pl sessions to Postfix (default_process_limit)"
  hold_sessions "$PF_PORT" "$pl"; open=$OPEN
  read -r rss pss n < <(python3 - "$(pf_master)" <<'EOF'
import os, sys
master = int(sys.argv[1])
kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
            kids.setdefault(int(st.rsplit(")", 1)[1].split()[1]), []).append(int(p))
        except OSError:
            pass
todo, seen = [master], []
while todo and len(seen) < 10000:
    p = todo.pop(); seen.append(p); todo.extend(kids.get(p, []))
rss = pss = 0
for p in seen:
    try:
        rss += sum(int(l.split()[1]) for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:"))
        pss += sum(int(l.split()[1]) for l in open(f"/proc/{p}/smaps_rollup") if l.startswith("Pss:"))
    except OSError:
        pass
print(rss, pss, len(seen))
EOF
)
  release_sessions
  record idle_rss_kb postfix_rss_with_sessions "$rss" "open=$open processes=$n"
  record idle_rss_kb postfix_pss_with_sessions "$pss" "open=$open processes=$n"
}

# The file system's create + write 4 KiB + fsync rate, one thread: the ceiling of a
# server that fsyncs each message file before its 250 with no group commit.
fsync_rate() {
  local d=$FS/fsync-test
  mkdir -p "$d"
  record fsync_per_s queue_fs "$(python3 - "$d" 500 <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t = time.time()
for i in range(n):
    fd = os.open(os.path.join(d, str(i)), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.write(fd, b"x" * 4096); os.fsync(fd); os.close(fd)
print(f"{n / (time.time() - t):.0f}")
for i in range(n):
    os.unlink(os.path.join(d, str(i)))
EOF
)" "1 thread, 4 KiB files"
  rmdir "$d"
}

fsync_rate
start_postfix
start_tern
start_sink
bench_accept
bench_memory

# ------------------------------------------------------------------ summary
python3 - "$RES" "$IDLE" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    m, who, v, _ = line.rstrip("\n").split("\t")
    rows[(m, who)] = float(v)
def g(m, w): return rows.get((m, w), float("nan"))
def ratio(a, b): return a / b if b else float("nan")
a_t, a_p, a_s = g("accept_msgs_per_s", "tern"), g("accept_msgs_per_s", "postfix"), g("accept_msgs_per_s", "smtp-sink")
l_t, l_p = g("latency_ms", "tern"), g("latency_ms", "postfix")
rss = g("idle_rss_kb", "tern_with_sessions") / 1024
print("\ncheck\tvalue\ttarget\tmet")
for name, val, target, ok in [
    ("tern/postfix accept rate", ratio(a_t, a_p), ">= 3", ratio(a_t, a_p) >= 3),
    ("tern/smtp-sink accept rate", ratio(a_t, a_s), ">= 0.5", ratio(a_t, a_s) >= 0.5),
    ("postfix/smtp-sink accept rate", ratio(a_p, a_s), "-", True),
    ("tern/postfix latency", ratio(l_t, l_p), "<= 1", ratio(l_t, l_p) <= 1),
    (f"tern RSS MB, {sys.argv[2]} idle sessions", rss, "< 100", rss < 100),
]:
    print(f"{name}\t{val:.2f}\t{target}\t{'yes' if ok else 'NO'}")
EOF
