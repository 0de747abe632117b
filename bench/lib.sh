# bench/lib.sh -- what the bench scripts share: sourced (never run) by bench.sh,
# smtp-bench.sh, delivery-bench.sh, relay-bench.sh, tls-bench.sh and postmap-bench.sh.
#
# It holds the set-up every side-by-side run needs, written once:
#   - checks (root, commands, Tern's release binaries) and Debian's postfix package
#     (installed with apt-get when missing, as .ci/run does);
#   - processes: a process tree, stopping by pid (TERM, then KILL), waiting for an SMTP
#     greeting, all bounded in time;
#   - a fresh ext4 file system in a loop file per run (default mkfs.ext4, with its
#     journal): on the host's own file system (ext4 without a journal on this project's
#     machines) creating a file scans the inodes deleted in the last minutes, so
#     whatever had just removed files slowed whichever server ran next, by up to 2x;
#   - a private Debian Postfix instance (its own config_directory and queue, Debian's
#     master.cf with chroot n, smtpd on a loopback port; /work/shared/POSTFIX-REFERENCE.md)
#     and a Tern instance (`postfix -c DIR start-fg`) with the same main.cf settings;
#   - measuring a server: CPU time of its whole process tree and sampled resident memory.
#
# Conventions: the caller sets WORK (a directory) before calling what writes there; FS
# is the mounted file system of the current run; PF / TD are the Postfix / Tern instance
# directories; PF_STARTED, TERN_PID say what runs. A caller's EXIT trap calls
# bench_cleanup after stopping its own helpers. Loopback only; every wait is bounded.
# Only processes these functions started are ended, by pid (the private Postfix
# through `postfix -c DIR stop`, then whatever of its process tree is left).

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TERN=${TERN:-$HERE/target/release/postfix}
BENCH_HOST=mx.bench.test
FS=""; BENCH_MOUNTS=(); BENCH_IMAGES=()
PF=""; PF_STARTED=0; TD=""; TERN_PID=""
KEEP_FS=${KEEP_FS:-0}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ checks
need_root() { [ "$(id -u)" = 0 ] || die "run as root (${1:-the private Postfix instance needs it})"; }
need_cmds() {  # need_cmds CMD...: each must be on PATH
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || die "$c missing (apt-get install postfix python3 e2fsprogs iproute2)"
  done
}
# Debian's postfix package (smtp-source and smtp-sink come with it), installed when
# missing the way .ci/run installs its peers. "Local only": the package's own instance
# then listens on loopback alone; these scripts never start or change it.
ensure_postfix() {
  local p missing=()
  for p in postfix "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string bench.test" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}
need_tern() {  # need_tern [BIN...]: Tern's postfix and these binaries next to it
  local b
  [ -x "$TERN" ] || die "$TERN missing: cargo build --release -p tern-commands --bins"
  for b in "$@"; do
    [ -x "$(dirname "$TERN")/$b" ] || die "$b missing next to $TERN"
  done
}

# ------------------------------------------------------------------ processes
tree_of() {  # tree_of PID: PID and its descendants
  python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1]); kids = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
            kids.setdefault(int(st.rsplit(")", 1)[1].split()[1]), []).append(int(p))
        except OSError:
            pass
todo, seen = [root], []
while todo and len(seen) < 20000:
    p = todo.pop(); seen.append(p); todo.extend(kids.get(p, []))
print(" ".join(map(str, seen)))
EOF
}
stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL
  local p=$1 i
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
kill_left() {  # kill_left PID...: KILL those still alive (collected before a stop)
  local p
  for p in "$@"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  return 0
}
wait_greeting() {  # wait_greeting PORT SECONDS
  python3 - "$1" "$2" <<'EOF'
import socket, sys, time
port, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        if s.recv(512).startswith(b"220"):
            s.sendall(b"QUIT\r\n"); s.close(); sys.exit(0)
        s.close()
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

# cf_set FILE 'name = value'...: sets each parameter in a main.cf, replacing its line when
# there is one (a parameter defined twice makes Postfix 3.7 log "overriding earlier
# entry" from every process, POSTFIX-REFERENCE.md).
cf_set() {
  local f=$1; shift
  python3 - "$f" "$@" <<'EOF'
import re, sys
path, sets = sys.argv[1], sys.argv[2:]
lines = open(path).read().splitlines()
for s in sets:
    name = s.split("=", 1)[0].strip()
    pat = re.compile(r"^" + re.escape(name) + r"\s*=")
    hits = [i for i, l in enumerate(lines) if pat.match(l)]
    if hits:
        lines[hits[0]] = s
        for i in reversed(hits[1:]):
            del lines[i]
    else:
        lines.append(s)
open(path, "w").write("\n".join(lines) + "\n")
EOF
}

# ------------------------------------------------------------------ a fresh file system
new_fs() {  # new_fs NAME [SIZE]: a fresh ext4 in a loop file, mounted on $WORK/NAME; sets FS
  local img=$WORK/$1.img dir=$WORK/$1
  [ ! -e "$img" ] || die "$img exists (use a new WORK)"
  truncate -s "${2:-4G}" "$img"; BENCH_IMAGES+=("$img")
  mkfs.ext4 -q -F "$img" || die "mkfs.ext4 failed"
  mkdir -p "$dir"
  mount -o loop "$img" "$dir" || die "cannot mount a loop file"
  BENCH_MOUNTS+=("$dir"); FS=$dir
  chmod 0755 "$FS"
}
unmount_fs() {  # unmounts FS (its image stays until bench_cleanup, or drop_fs_image)
  [ -n "$FS" ] || return 0
  sync
  umount "$FS" 2>/dev/null || { sleep 2; umount "$FS" || log "cannot unmount $FS"; }
  FS=""
}

# ------------------------------------------------------------------ Postfix, private
pf_master() { head -1 "$PF/queue/pid/master.pid" 2>/dev/null | tr -d ' '; }
# pf_configure DIR PORT [MAXPROC [SMTPD_OPTION...]]: a private instance in DIR (main.cf,
# master.cf, aliases). Debian's services with chroot n; "smtp inet" becomes
# 127.0.0.1:PORT with maxproc MAXPROC (default "-": default_process_limit) and an
# "-o OPTION" line for each SMTPD_OPTION. Sets PF; add settings with cf_set "$PF/main.cf".
pf_configure() {
  local port=$2 maxproc=${3:--} o opts=""
  PF=$1; shift 3 2>/dev/null || shift $#
  for o in "$@"; do opts+="  -o $o\n"; done
  mkdir -p "$PF/queue" "$PF/data" "$PF/spool"
  chown postfix "$PF/data"; chmod 0700 "$PF/data"; chmod 1777 "$PF/spool"
  cat > "$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_spool_directory = $PF/spool
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
daemon_directory = $(postconf -dh daemon_directory)
shlib_directory = $(postconf -dh shlib_directory)
meta_directory = $(postconf -dh meta_directory)
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = $BENCH_HOST
mydomain = bench.test
mydestination = \$myhostname, localhost
mynetworks = 127.0.0.1/32
alias_maps = hash:$PF/aliases
alias_database = hash:$PF/aliases
smtpd_tls_security_level = none
biff = no
EOF
  awk -v port="$port" -v maxproc="$maxproc" -v opts="$opts" '
    /^smtp[ \t]+inet/ {
      print "127.0.0.1:" port " inet n - n - " maxproc " smtpd"
      printf "%s", opts
      skip = 1; next }
    /^[ \t]/ && skip { next }
    { skip = 0 }
    /^[a-z]/ && $2 ~ /^(unix|inet|fifo|pass|unix-dgram)$/ { $5 = "n" }
    { print }' /etc/postfix/master.cf > "$PF/master.cf"
  echo "postmaster: root" > "$PF/aliases"
}
pf_start() {  # pf_start PORT: starts the instance configured in PF, waits for its greeting
  log "Postfix: private instance in $PF on 127.0.0.1:$1"
  postalias -c "$PF" "hash:$PF/aliases"
  postfix -c "$PF" start >/dev/null 2>&1 || die "postfix start failed: $(tail -5 "$PF/maillog" 2>/dev/null)"
  PF_STARTED=1
  wait_greeting "$1" 30 || die "Postfix does not greet: $(tail -5 "$PF/maillog" 2>/dev/null)"
}
pf_stop() {
  [ "$PF_STARTED" = 1 ] || return 0
  local m left=""
  m=$(pf_master) || true
  [ -n "$m" ] && left=$(tree_of "$m")
  postfix -c "$PF" stop >/dev/null 2>&1 || true
  for _ in $(seq 100); do [ -n "$m" ] && kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
  sleep 0.5
  # shellcheck disable=SC2086
  kill_left $left
  PF_STARTED=0
}

# ------------------------------------------------------------------ Tern
# tern_configure DIR PORT SERVICES [MAXPROC]: a Tern instance in DIR (conf/main.cf with
# the settings of pf_configure, conf/master.cf, conf/aliases). SERVICES:
#   accept   smtpd and postlog only: mail stays in incoming/ (no queue manager)
#   deliver  smtpd, qmgr, local, postlog
#   default  Tern's conf/master.cf (every transport), smtpd moved to PORT
# MAXPROC is smtpd's maxproc column (default "-"; 0 is no limit). Sets TD; add settings
# with cf_set "$TD/conf/main.cf".
tern_configure() {
  local port=$2 services=$3 maxproc=${4:--}
  TD=$1
  mkdir -p "$TD/conf" "$TD/log" "$TD/mail"
  chmod 1777 "$TD/mail"
  cat > "$TD/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $TD/spool
data_directory = $TD/data
command_directory = $TD
daemon_directory = $TD
meta_directory = $TD/conf
shlib_directory = no
mail_spool_directory = $TD/mail
maillog_file = $TD/log/mail.log
maillog_file_prefixes = $TD/log
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = $BENCH_HOST
mydomain = bench.test
mydestination = \$myhostname, localhost
mynetworks = 127.0.0.1/32
alias_maps = hash:$TD/conf/aliases
alias_database = hash:$TD/conf/aliases
smtpd_tls_security_level = none
biff = no
EOF
  local smtpd="127.0.0.1:$port inet n - n - $maxproc smtpd"
  case $services in
    accept) printf '%s\npostlog unix-dgram n - n - 1 postlogd\n' "$smtpd" > "$TD/conf/master.cf" ;;
    deliver)
      # The services of crates/daemon/tests/deliver_util: smtpd, qmgr, local, postlog.
      cat > "$TD/conf/master.cf" <<EOF
$smtpd
qmgr unix n - n 300 1 qmgr
local unix - n n - - local
postlog unix-dgram n - n - 1 postlogd
EOF
      ;;
    default)
      awk -v smtpd="$smtpd" '/^127\.0\.0\.1:2525[ \t]+inet/ { print smtpd; next } { print }' \
        "$HERE/conf/master.cf" > "$TD/conf/master.cf"
      grep -q "^127.0.0.1:$port inet" "$TD/conf/master.cf" || die "conf/master.cf has no 127.0.0.1:2525 smtpd line"
      grep -qE '^smtp[[:space:]]+unix' "$TD/conf/master.cf" || die "conf/master.cf has no smtp service" ;;
    *) die "tern_configure: unknown services $services" ;;
  esac
  echo "postmaster: root" > "$TD/conf/aliases"
}
tern_start() {  # tern_start PORT: starts the instance configured in TD, waits for its greeting
  log "Tern: $TERN in $TD on 127.0.0.1:$1"
  # The same aliases as Postfix's instance, built by Tern's own postalias.
  "$(dirname "$TERN")/postalias" -c "$TD/conf" "hash:$TD/conf/aliases" || die "Tern's postalias failed"
  ( ulimit -n 20000; exec "$TERN" -c "$TD/conf" start-fg ) </dev/null >"$TD/stdout" 2>"$TD/stderr" &
  TERN_PID=$!
  wait_greeting "$1" 30 || die "Tern does not greet: $(tail -5 "$TD/stderr")"
}
tern_stop() {
  [ -n "$TERN_PID" ] || return 0
  local left
  left=$(tree_of "$TERN_PID")
  stop_pid "$TERN_PID"
  wait "$TERN_PID" 2>/dev/null || true
  sleep 0.5
  # shellcheck disable=SC2086
  kill_left $left
  TERN_PID=""
}

# ------------------------------------------------------------------ measuring a server
# cpu_ticks ROOT: the CPU time (user + system, clock ticks) of ROOT's process tree so
# far: each live process's own and its reaped children's (utime, stime, cutime, cstime
# of /proc/PID/stat). A process that ended between two readings is in its parent's
# cutime/cstime once reaped, so the difference of two readings is the tree's CPU time
# in between (Postfix's smtpd, cleanup and local processes come and go).
cpu_ticks() {
  python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1]); kids = {}; stat = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(f[1]), []).append(int(p))
        stat[int(p)] = sum(int(x) for x in f[11:15])
todo, total, n = [root], 0, 0
while todo and n < 20000:
    p = todo.pop(); n += 1; total += stat.get(p, 0); todo.extend(kids.get(p, []))
print(total)
EOF
}
CLK_TCK=$(getconf CLK_TCK)

# rss_sampler ROOT STOPFILE LIMIT: every 0.2 s, the sum of VmRSS (KiB) over ROOT's
# process tree; prints the peak (and the process count then) when STOPFILE exists or
# after LIMIT seconds. PSS=1 adds the tree's Pss (smaps_rollup, slower to read), which
# counts the pages Postfix's processes share once instead of once per process.
RSS_PY='
import os, sys, time
root, stop, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
pss_too = os.environ.get("PSS") == "1"
def tree():
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                kids.setdefault(int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except OSError:
                pass
    todo, seen = [root], []
    while todo and len(seen) < 20000:
        p = todo.pop(); seen.append(p); todo.extend(kids.get(p, []))
    return seen
def sample():
    rss = pss = n = 0
    for p in tree():
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
            n += 1
            if pss_too:
                with open(f"/proc/{p}/smaps_rollup") as f:
                    pss += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, ValueError):
            pass
    return rss, pss, n
best, end, first = (0, 0, 0), time.time() + limit, True
while first or (not os.path.exists(stop) and time.time() < end):
    first = False
    s = sample()
    if s[0] > best[0]:
        best = s
    time.sleep(0.2)
print(*best)
'
rss_sampler() { python3 -c "$RSS_PY" "$@"; }

# ------------------------------------------------------------------ cleanup
bench_cleanup() {  # stops the servers, unmounts the file systems, removes their images
  set +e
  tern_stop
  pf_stop
  wait 2>/dev/null
  unmount_fs
  local m
  for m in "${BENCH_MOUNTS[@]}"; do mountpoint -q "$m" && umount "$m"; done
  if [ "$KEEP_FS" = 1 ]; then
    [ ${#BENCH_IMAGES[@]} -gt 0 ] && log "file system images kept: ${BENCH_IMAGES[*]}"
  else
    rm -f "${BENCH_IMAGES[@]}"
  fi
  return 0
}
