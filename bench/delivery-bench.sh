#!/usr/bin/env bash
# delivery-bench.sh -- end-to-end local delivery, Tern's daemon side by side with Debian's
# Postfix on loopback: smtpd -> queue -> qmgr -> local(8) -> the mailbox, measured from the
# first connection of the load until the last message is in its mailbox.
#
# Workloads (N messages of 1 KiB each, smtp-source -s 20 -m N -l 1024, one recipient each):
#   maildir  all to one user (bench-u000), a Maildir: mail_spool_directory ends in `/`, so
#            the Maildir is SPOOL/bench-u000/ (made by the script, owned by the user: both
#            agents then make tmp/ new/ cur/ inside with the user's rights)
#   mbox     spread over 100 users (bench-u000..bench-u099), an mbox each in a spool with
#            Debian's /var/mail rights (root:mail 2775). smtp-source -N numbers its
#            recipients (1u@, 2u@, ... Nu@), and a regexp: virtual_alias_maps (the same file
#            on both sides, in both workloads) sends Ku@ to bench-u0XX@ where XX = K mod 100.
#
# Equal durability: both agents fsync every delivered mailbox file before they report
# success (Postfix: mail_copy(3) with MAIL_COPY_TOFILE, for mbox and Maildir alike; Tern:
# crates/delivery/src/mailbox/{mbox,maildir}.rs, sync_all), and both queues and mailboxes
# live on one fresh ext4 file system per measured run (default mkfs.ext4, with its journal)
# in a loop file (the instance, its queue and FS/mail). With strace installed, a check
# batch before each measured run counts the sync calls made on files under the mailbox
# directory, and all the server's sync calls (DURABILITY=0 skips it).
#
# One measured run per (workload, server), each on a file system of its own, one server
# running at a time: a warm-up (WARMUP messages, delivered and waited for), the check
# batch, then the N messages. The end is the newest mailbox file's mtime once the count
# reached N more than before (Maildir: files in new/; mbox: From_ lines, and the files no
# longer growing); each run then checks the count is exactly that (mbox: in 100 files),
# the queue is empty and the log has no deferred, bounced, fatal or panic line.
#
# Users: bench-u000..bench-u099 are created when missing (useradd -M -N -g users -d
# /nonexistent -s /usr/sbin/nologin, comment "tern delivery bench"), and the ones this run
# created are removed at the end (userdel) unless KEEP_USERS=1. A user of that name that
# already exists is used only if it is not root and has no ~/.forward. Nothing is written
# outside WORK (the system's /var/mail and real users' homes are never touched).
#
# Loopback only. Every wait is bounded in time. The only processes ended are the ones this
# script started, by pid: smtp-source/strace it runs, Tern's start-fg and its descendants,
# the private Postfix instance (`postfix -c DIR stop`, then whatever of its process tree is
# left). Its loop mounts are unmounted on exit and their images removed (KEEP_FS=1 keeps
# them); the rest of the work directory stays (remove it when done, a few minutes before
# the next run).
#
# Set-up shared with the other scripts: bench/lib.sh. Usage (as root, after
# `cargo build --release -p tern-commands --bins`):
#   bash bench/delivery-bench.sh
# Tunables (env): N (20000), WARMUP (200), WORKLOADS ("maildir mbox"), SERVERS ("postfix
#   tern"), TERN (Tern's postfix binary), WORK (a directory to keep), PORT_BASE (2660),
#   RUN_TIMEOUT (s, one smtp-source run, 600), DRAIN_TIMEOUT (s, waiting for delivery, 900),
#   KEEP_USERS (0), DURABILITY (1), KEEP_FS (0; 1 keeps the file system images, unmounted,
#   for `mount -o loop` and a look at the queues, mailboxes and logs)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-20000}
WARMUP=${WARMUP:-200}
CHECK=20                               # messages of the durability check batch
SIZE=1024
SESSIONS=20
USERS=100
WORKLOADS=${WORKLOADS:-"maildir mbox"}
SERVERS=${SERVERS:-"postfix tern"}
PORT_BASE=${PORT_BASE:-2660}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-900}
KEEP_USERS=${KEEP_USERS:-0}
DURABILITY=${DURABILITY:-1}
HOST=$BENCH_HOST
FROM=bench@example.org
UCOMMENT="tern delivery bench"

need_root "both servers deliver with the users' rights"
need_cmds postfix postconf postalias smtp-source python3 mkfs.ext4 mount useradd userdel getent timeout
case " $SERVERS " in *" tern "*) need_tern tern-delivery postalias ;; esac
getent group mail >/dev/null || die "no group mail"
getent group users >/dev/null || die "no group users"
if [ "$DURABILITY" = 1 ] && ! command -v strace >/dev/null; then
  log "strace missing: no durability check (apt-get install strace)"; DURABILITY=0
fi

WORK=${WORK:-$(mktemp -d /var/tmp/delivery-bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
RES=$WORK/results.tsv
: > "$RES"
CREATED_USERS=()
SRC_PID=""; STRACE_PID=""

# ------------------------------------------------------------------ cleanup
stop_postfix() { pf_stop; }
stop_tern() { tern_stop; }
cleanup() {
  set +e
  [ -n "$STRACE_PID" ] && stop_pid "$STRACE_PID"
  [ -n "$SRC_PID" ] && stop_pid "$SRC_PID"
  bench_cleanup
  if [ "$KEEP_USERS" != 1 ] && [ ${#CREATED_USERS[@]} -gt 0 ]; then
    log "removing the ${#CREATED_USERS[@]} users this run created"
    for u in "${CREATED_USERS[@]}"; do userdel "$u" 2>/dev/null || log "userdel $u failed"; done
  fi
  log "results in $RES (work directory $WORK)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ users
user_name() { printf 'bench-u%03d' "$1"; }
make_users() {
  local i u home made=0
  for i in $(seq 0 $((USERS - 1))); do
    u=$(user_name "$i")
    if getent passwd "$u" >/dev/null; then
      [ "$(id -u "$u")" != 0 ] || die "$u is root"
      home=$(getent passwd "$u" | cut -d: -f6)
      [ ! -e "$home/.forward" ] || die "$u has $home/.forward: mail would leave the bench"
      continue
    fi
    useradd -M -N -g users -d /nonexistent -s /usr/sbin/nologin -c "$UCOMMENT" "$u" \
      || die "useradd $u failed"
    CREATED_USERS+=("$u"); made=$((made + 1))
  done
  log "users: $USERS (bench-u000..$(user_name $((USERS - 1)))), $made created by this run"
}

# The mailbox directory of a workload, under $1: a spool with /var/mail's rights for mbox,
# a root-owned directory holding the user's (empty) Maildir for maildir.
make_spool() {  # make_spool DIR WORKLOAD
  local d=$1/mail
  mkdir -p "$d"
  if [ "$2" = mbox ]; then
    chown root:mail "$d"; chmod 2775 "$d"
  else
    chmod 0755 "$d"
    mkdir "$d/bench-u000"; chown bench-u000:users "$d/bench-u000"; chmod 0700 "$d/bench-u000"
  fi
}
spool_param() {  # spool_param DIR WORKLOAD: mail_spool_directory's value
  if [ "$2" = mbox ]; then echo "$1/mail"; else echo "$1/mail/"; fi
}
write_valias() {  # write_valias FILE: Ku@HOST -> bench-u0XX@HOST, XX = K mod 100
  cat > "$1" <<EOF
/^([0-9])u@mx\\.bench\\.test\$/ bench-u00\${1}@$HOST
/^[0-9]*([0-9][0-9])u@mx\\.bench\\.test\$/ bench-u0\${1}@$HOST
EOF
}

# ------------------------------------------------------------------ Postfix, private
start_postfix() {  # start_postfix WORKLOAD
  pf_configure "$FS/postfix" "$PF_PORT"
  make_spool "$FS" "$1"
  write_valias "$PF/valias"
  cf_set "$PF/main.cf" "mail_spool_directory = $(spool_param "$FS" "$1")" \
    "virtual_alias_maps = regexp:$PF/valias"
  pf_start "$PF_PORT"
}

# ------------------------------------------------------------------ Tern
start_tern() {  # start_tern WORKLOAD
  # The services of crates/daemon/tests/deliver_util: smtpd, qmgr, local, postlog.
  tern_configure "$FS/tern" "$TERN_PORT" deliver
  make_spool "$FS" "$1"
  write_valias "$TD/conf/valias"
  cf_set "$TD/conf/main.cf" "mail_spool_directory = $(spool_param "$FS" "$1")" \
    "virtual_alias_maps = regexp:$TD/conf/valias"
  tern_start "$TERN_PORT"
}

# ------------------------------------------------------------------ counting
COUNTER=$WORK/count.py
cat > "$COUNTER" <<'EOF'
# count.py MODE DIR TARGET LIMIT -> "COUNT LAST_MTIME DONE_AT"
# MODE maildir: files in DIR/new; mbox: From_ lines in the regular files of DIR (not
# *.lock). Polls until COUNT >= TARGET (TARGET 0: once) and, for mbox, the files stopped
# growing; gives up after LIMIT seconds (then DONE_AT is NaN). LAST_MTIME: the newest
# mailbox file's mtime.
import os, sys, time
mode, d, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
end = time.time() + limit
state = {}  # mbox path -> [offset, partial line, From_ count]

def mbox_count():
    total, newest, grew = 0, 0, False
    for e in os.scandir(d):
        if not e.is_file(follow_symlinks=False) or e.name.endswith(".lock"):
            continue
        st = state.setdefault(e.path, [0, b"", 0])
        s = e.stat(follow_symlinks=False)
        newest = max(newest, s.st_mtime_ns)
        if s.st_size > st[0]:
            grew = True
            with open(e.path, "rb") as f:
                f.seek(st[0]); data = f.read(s.st_size - st[0])
            st[0] += len(data)
            text = st[1] + data
            cut = text.rfind(b"\n")
            if cut < 0:
                st[1] = text
            else:
                whole, st[1] = text[: cut + 1], text[cut + 1 :]
                st[2] += whole.startswith(b"From ") + whole.count(b"\nFrom ")
        total += st[2]
    return total, newest, grew

def maildir_count():
    newest, n = 0, 0
    try:
        for e in os.scandir(os.path.join(d, "new")):
            n += 1
            newest = max(newest, e.stat(follow_symlinks=False).st_mtime_ns)
    except FileNotFoundError:
        pass
    return n, newest, False

count = maildir_count if mode == "maildir" else mbox_count
while True:
    n, newest, grew = count()
    now = time.time()
    if (n >= target and not grew) or target == 0:
        print(n, f"{newest / 1e9:.6f}", f"{now:.6f}")
        break
    if now > end:
        print(n, f"{newest / 1e9:.6f}", "NaN")
        break
    time.sleep(0.2)
EOF
# Each run has a file system of its own: the mailboxes are FS/mail, next to the instance
# (not under Tern's daemon_directory, which its start-up check walks).
mailbox_dir() { echo "$FS/mail"; }
box_of() {  # box_of SERVER WORKLOAD: what count.py reads
  if [ "$2" = maildir ]; then echo "$(mailbox_dir "$1")/bench-u000"; else mailbox_dir "$1"; fi
}
count_now() { python3 "$COUNTER" "$1" "$2" 0 1 | cut -d' ' -f1; }
queue_left() {  # files left in the queue (incoming, active, deferred, hold, maildrop)
  local q
  if [ "$1" = postfix ]; then q=$PF/queue; else q=$TD/spool; fi
  find "$q/incoming" "$q/active" "$q/deferred" "$q/hold" "$q/maildrop" -type f 2>/dev/null | wc -l
}
maillog_of() { if [ "$1" = postfix ]; then echo "$PF/maillog"; else echo "$TD/log/mail.log"; fi; }

# ------------------------------------------------------------------ load
# send SERVER WORKLOAD COUNT SESSIONS -> 0 when smtp-source finished in RUN_TIMEOUT
send() {
  local port to extra=()
  if [ "$1" = postfix ]; then port=$PF_PORT; else port=$TERN_PORT; fi
  if [ "$2" = maildir ]; then to=bench-u000@$HOST; else to=u@$HOST; extra=(-N); fi
  timeout "$RUN_TIMEOUT" smtp-source "${extra[@]}" -s "$4" -m "$3" -l "$SIZE" -f "$FROM" -t "$to" \
    -M client.bench.test "127.0.0.1:$port" > "$WORK/smtp-source.out" 2>&1 &
  SRC_PID=$!
  local rc=0
  wait "$SRC_PID" || rc=$?
  SRC_PID=""
  [ "$rc" = 0 ] || log "smtp-source to $1 failed ($rc): $(tail -3 "$WORK/smtp-source.out")"
  return "$rc"
}
# deliver_wait SERVER WORKLOAD TARGET LIMIT -> "COUNT LAST_MTIME DONE_AT"
deliver_wait() { python3 "$COUNTER" "$2" "$(box_of "$1" "$2")" "$3" "$4"; }

# The durability check: strace (attached to the whole server: every process and thread,
# and with -f whatever it forks) counts fsync/fdatasync calls on files under the mailbox
# directory while CHECK messages are delivered, one session, one after the other (and,
# for the record, every fsync, fdatasync, syncfs, sync and sync_file_range the server made
# meanwhile: queue files, journal, directories). Postfix's local processes come and go
# (max_use), so new ones are traced through the master's -f.
durability_check() {  # durability_check SERVER WORKLOAD BASE (the count before it)
  local root pids=() p out=$WORK/strace.$1.$2 dir n got all
  if [ "$1" = postfix ]; then root=$(pf_master); else root=$TERN_PID; fi
  for p in $(tree_of "$root"); do pids+=(-p "$p"); done
  dir=$(mailbox_dir "$1")
  timeout 300 strace -f -qq -y -e trace=fsync,fdatasync,syncfs,sync,sync_file_range -o "$out" "${pids[@]}" 2>/dev/null &
  STRACE_PID=$!
  sleep 1
  send "$1" "$2" "$CHECK" 1 || true
  read -r n _ _ < <(deliver_wait "$1" "$2" $(($3 + CHECK)) 60)
  sleep 0.5
  stop_pid "$STRACE_PID"; wait "$STRACE_PID" 2>/dev/null || true; STRACE_PID=""
  got=$(grep -cE "^[0-9]+ +f(data)?sync\([0-9]+<$dir/" "$out" || true)
  all=$(grep -cE "^[0-9]+ +(fsync|fdatasync|syncfs|sync|sync_file_range)\(" "$out" || true)
  record durability "$2" "$1" "$got" \
    "fsyncs_on_mailbox_files_for=$CHECK all_syncs=$all delivered=$((n - $3))"
}

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" | tee -a "$RES" >&2; }

# ------------------------------------------------------------------ one measured run
bench_one() {  # bench_one WORKLOAD SERVER
  local w=$1 s=$2 base t0 t1 n mtime done_at rate left bad boxes
  new_fs "$w-$s"
  if [ "$s" = postfix ]; then start_postfix "$w"; else start_tern "$w"; fi
  log "$s/$w: warm-up, $WARMUP messages"
  send "$s" "$w" "$WARMUP" "$SESSIONS" || die "warm-up failed"
  read -r base _ _ < <(deliver_wait "$s" "$w" "$WARMUP" 120)
  [ "$base" -ge "$WARMUP" ] || die "$s/$w: only $base of the $WARMUP warm-up messages delivered in 120 s"
  if [ "$DURABILITY" = 1 ]; then durability_check "$s" "$w" "$base"; fi
  base=$(count_now "$w" "$(box_of "$s" "$w")")
  sync; sleep 1
  log "$s/$w: $SESSIONS sessions x $N messages x $SIZE bytes"
  t0=$(date +%s.%N)
  if send "$s" "$w" "$N" "$SESSIONS"; then t1=$(date +%s.%N); else t1=NaN; fi
  read -r n mtime done_at < <(deliver_wait "$s" "$w" $((base + N)) "$DRAIN_TIMEOUT")
  sleep 1
  n=$(count_now "$w" "$(box_of "$s" "$w")")
  left=$(queue_left "$s")
  boxes=$(find "$(mailbox_dir "$s")" -mindepth 1 -maxdepth 1 ! -name '*.lock' | wc -l)
  bad=$(grep -cE 'status=(deferred|bounced)|(fatal|panic):' "$(maillog_of "$s")" || true)
  rate=$(python3 -c "
import sys
n, t0, t1, e, done = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
print('NaN' if done == 'NaN' else f'{n / (e - t0):.1f}',
      'NaN' if t1 == 'NaN' else f'{float(t1) - t0:.3f}', f'{e - t0:.3f}')" "$N" "$t0" "$t1" "$mtime" "$done_at")
  read -r rate accept e2e <<<"$rate"
  record delivered_msgs_per_s "$w" "$s" "$rate" \
    "end_to_end=${e2e}s accepted_in=${accept}s delivered=$((n - base))/$N mailboxes=$boxes queue_left=$left log_deferred_bounced_fatal=$bad"
  [ "$((n - base))" = "$N" ] || log "WARNING: $s/$w delivered $((n - base)) of $N"
  [ "$left" = 0 ] || log "WARNING: $s/$w: $left files left in the queue"
  [ "$bad" = 0 ] || log "WARNING: $s/$w: $bad deferred/bounced/fatal lines in $(maillog_of "$s")"
  if [ "$s" = postfix ]; then stop_postfix; else stop_tern; fi
  unmount_fs
}

# The whole run is one function, read before any of it runs (an edit of this file during
# a run does not change what the run does).
main() {
make_users
for w in $WORKLOADS; do
  case $w in maildir|mbox) ;; *) die "unknown workload $w" ;; esac
  for s in $SERVERS; do
    case $s in postfix|tern) ;; *) die "unknown server $s" ;; esac
    bench_one "$w" "$s"
  done
done

# ------------------------------------------------------------------ summary
python3 - "$RES" "$N" <<'EOF'
import sys
rate, dur = {}, {}
for line in open(sys.argv[1]):
    m, w, s, v, note = line.rstrip("\n").split("\t")
    if m == "delivered_msgs_per_s":
        rate[(w, s)] = float(v)
    elif m == "durability":
        kv = dict(x.split("=", 1) for x in note.split())
        dur[(w, s)] = f"{v}/{kv['delivered']} (all: {kv['all_syncs']})"
n = sys.argv[2]
print(f"\nend-to-end local delivery, {n} x 1 KiB, 20 sessions (msg/s)")
print("workload\tPostfix\tTern\tTern/Postfix\ttarget\tmet\tcheck: mailbox fsyncs/delivered (all syncs), Postfix; Tern")
for w, label in (("maildir", "1 user, Maildir"), ("mbox", "100 users, mbox")):
    if not any(k[0] == w for k in rate):
        continue
    p, t = rate.get((w, "postfix"), float("nan")), rate.get((w, "tern"), float("nan"))
    r = t / p if p else float("nan")
    print(f"{label}\t{p:.1f}\t{t:.1f}\t{r:.2f}\t>= 2\t{'yes' if r >= 2 else 'NO'}\t"
          f"{dur.get((w, 'postfix'), '-')}; {dur.get((w, 'tern'), '-')}")
EOF
}

main "$@"
