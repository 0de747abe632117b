#!/usr/bin/env bash
# tls-bench.sh -- TLS on the SMTP server: Tern's daemon side by side with Debian's Postfix
# on loopback, both with the same certificate (RSA 2048, self-signed, made for the run)
# and smtpd_tls_security_level = may.
#
# Measures, with 20 concurrent client sessions (crates/client/src/bin/smtp-tls-load.rs,
# a tokio-rustls client: smtp-source has no TLS; every handshake is a full one, no
# session resumption):
#   handshakes   connect, EHLO, STARTTLS, TLS handshake, EHLO, QUIT  (per second)
#   messages     the same plus one 1 KiB message per connection      (per second)
# each with TLS 1.3 and with TLS 1.2. The messages are stored durably by both and not
# delivered (Postfix: HOLD at end of data; Tern: no qmgr line), as in smtp-bench.sh.
#
# Loopback only; every loop is bounded. Usage (as root, after
#   cargo build --release -p tern-commands -p tern-client):
#   bash bench/tls-bench.sh
# Tunables (env): N (connections per run, 2000), TERN, LOAD, WORK, PORT_BASE (2650)
set -euo pipefail

N=${N:-2000}
SESSIONS=20
PORT_BASE=${PORT_BASE:-2650}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
HERE=$(cd "$(dirname "$0")/.." && pwd)
TERN=${TERN:-$HERE/target/release/postfix}
LOAD=${LOAD:-$HERE/target/release/smtp-tls-load}
TO=root@localhost

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (Postfix's private instance needs it)"
for c in postfix postconf postalias openssl python3 mkfs.ext4 mount; do
  command -v "$c" >/dev/null || die "$c missing (apt-get install postfix openssl python3)"
done
[ -x "$TERN" ] || die "$TERN missing: cargo build --release -p tern-commands"
[ -x "$LOAD" ] || die "$LOAD missing: cargo build --release -p tern-client"

WORK=${WORK:-$(mktemp -d /var/tmp/tls-bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
QUEUE_FS=${QUEUE_FS:-loop}
FS=$WORK; FS_MOUNTED=0
PF=$FS/postfix; TD=$FS/tern
RES=$WORK/results.tsv
: > "$RES"
PF_STARTED=0; TERN_PID=""
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.bench.test" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || die "openssl req failed"
chmod 0644 "$WORK/cert.pem" "$WORK/key.pem"

# ------------------------------------------------------------------ cleanup
pf_pids() {  # the private instance's master and its children
  local m
  m=$(head -1 "$PF/queue/pid/master.pid" 2>/dev/null | tr -d ' ') || true
  [ -n "$m" ] || return 0
  echo "$m"; ps -o pid= --ppid "$m" 2>/dev/null || true
}
stop_pid() {  # stop_pid PID: TERM, wait up to 5 s, then KILL
  local p=$1 i
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
}
cleanup() {
  set +e
  [ -n "$TERN_PID" ] && stop_pid "$TERN_PID"
  if [ "$PF_STARTED" = 1 ]; then
    local left
    left=$(pf_pids)
    postfix -c "$PF" stop >/dev/null 2>&1
    sleep 1
    for p in $left; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  fi
  wait 2>/dev/null
  if [ "$FS_MOUNTED" = 1 ]; then
    umount "$FS" && rm -f "$WORK/fs.img"
  fi
  log "results in $RES (work directory $WORK)"
}
trap cleanup EXIT

if [ "$QUEUE_FS" = loop ]; then
  FS=$WORK/fs
  truncate -s 4G "$WORK/fs.img"
  mkfs.ext4 -q -F "$WORK/fs.img" || die "mkfs.ext4 failed"
  mkdir -p "$FS"
  mount -o loop "$WORK/fs.img" "$FS" || die "cannot mount a loop file (QUEUE_FS=dir runs without)"
  FS_MOUNTED=1
  chmod 0755 "$FS"
  PF=$FS/postfix; TD=$FS/tern
fi

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

# ------------------------------------------------------------------ Postfix, private
start_postfix() {
  log "Postfix: private instance in $PF on 127.0.0.1:$PF_PORT (HOLD at end of data)"
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
myhostname = mx.bench.test
mydomain = bench.test
mydestination = \$myhostname, localhost
mynetworks = 127.0.0.1/32
alias_maps = hash:$PF/aliases
alias_database = hash:$PF/aliases
smtpd_tls_security_level = may
smtpd_tls_cert_file = $WORK/cert.pem
smtpd_tls_key_file = $WORK/key.pem
smtpd_tls_loglevel = 1
biff = no
EOF
  # Debian's services, no chroot, our smtpd in place of "smtp inet".
  awk -v port="$PF_PORT" '
    /^smtp[ \t]+inet/ {
      print "127.0.0.1:" port " inet n - n - - smtpd"
      print "  -o smtpd_end_of_data_restrictions=check_client_access,static:HOLD"
      skip = 1; next }
    /^[ \t]/ && skip { next }
    { skip = 0 }
    /^[a-z]/ && $2 ~ /^(unix|inet|fifo|pass|unix-dgram)$/ { $5 = "n" }
    { print }' /etc/postfix/master.cf > "$PF/master.cf"
  echo "postmaster: root" > "$PF/aliases"
  postalias -c "$PF" "hash:$PF/aliases"
  postfix -c "$PF" start >/dev/null 2>&1 || die "postfix start failed: $(tail -5 "$PF/maillog" 2>/dev/null)"
  PF_STARTED=1
  wait_greeting "$PF_PORT" 30 || die "Postfix does not greet: $(tail -5 "$PF/maillog" 2>/dev/null)"
}
pf_held() { find "$PF/queue/hold" -type f 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ Tern
start_tern() {
  log "Tern: $TERN in $TD on 127.0.0.1:$TERN_PORT"
  mkdir -p "$TD/conf" "$TD/log"
  cat > "$TD/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $TD/spool
data_directory = $TD/data
command_directory = $TD
daemon_directory = $TD
meta_directory = $TD/conf
shlib_directory = no
maillog_file = $TD/log/mail.log
maillog_file_prefixes = $TD/log
myhostname = mx.bench.test
mynetworks = 127.0.0.1/32
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps = hash:$TD/conf/aliases
alias_database = hash:$TD/conf/aliases
smtpd_tls_security_level = may
smtpd_tls_cert_file = $WORK/cert.pem
smtpd_tls_key_file = $WORK/key.pem
smtpd_tls_loglevel = 1
EOF
  # maxproc 0 (no limit): the idle-session measurement holds 10,000 sessions at once.
  cat > "$TD/conf/master.cf" <<EOF
127.0.0.1:$TERN_PORT inet n - n - 0 smtpd
postlog unix-dgram n - n - 1 postlogd
EOF
  # The same aliases as Postfix's instance, built by Tern's own postalias.
  echo "postmaster: root" > "$TD/conf/aliases"
  "$(dirname "$TERN")/postalias" -c "$TD/conf" "hash:$TD/conf/aliases" || die "Tern's postalias failed"
  ( ulimit -n 20000; exec "$TERN" -c "$TD/conf" start-fg ) </dev/null >"$TD/stdout" 2>"$TD/stderr" &
  TERN_PID=$!
  wait_greeting "$TERN_PORT" 30 || die "Tern does not greet: $(tail -5 "$TD/stderr")"
}
tern_queued() { find "$TD/spool/incoming" -type f 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ measurements
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" | tee -a "$RES" >&2; }
# load PORT MODE [FLAG] -> "ops elapsed rate failures"
load() {
  timeout 600 "$LOAD" "127.0.0.1:$1" "$2" "$N" --sessions "$SESSIONS" --to "$TO" ${3:+"$3"} \
    2>>"$WORK/load.err" || echo "0 0 NaN $N"
}
ratio() { python3 -c "import sys; a,b=sys.argv[1],sys.argv[2]; print('NaN' if 'NaN' in (a,b) or float(b)==0 else f'{float(a)/float(b):.2f}')" "$1" "$2"; }

start_postfix
start_tern
log "warm-up (discarded)"
N_SAVED=$N; N=200
load "$PF_PORT" message >/dev/null; load "$TERN_PORT" message >/dev/null
N=$N_SAVED
for v in tls13 tls12; do
  flag=""; [ "$v" = tls12 ] && flag=--tls12
  for mode in handshake message; do
    read -r _ e_pf r_pf f_pf < <(load "$PF_PORT" "$mode" "$flag")
    read -r _ e_t r_t f_t < <(load "$TERN_PORT" "$mode" "$flag")
    record "${mode}s_per_s_$v" postfix "$r_pf" "elapsed=$e_pf failures=$f_pf"
    record "${mode}s_per_s_$v" tern "$r_t" "elapsed=$e_t failures=$f_t"
    record "${mode}s_per_s_$v" tern/postfix "$(ratio "$r_t" "$r_pf")" "target >= 2"
  done
done
log "Postfix logged $(grep -c 'TLS connection established' "$PF/maillog" || true) TLS connections, Tern $(grep -c 'TLS connection established' "$TD/log/mail.log" || true)"
