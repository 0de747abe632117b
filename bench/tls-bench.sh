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
# Set-up shared with the other scripts: bench/lib.sh. Loopback only; every loop is
# bounded. Usage (as root, after
#   cargo build --release -p tern-commands -p tern-client):
#   bash bench/tls-bench.sh
# Tunables (env): N (connections per run, 2000), TERN, LOAD, WORK, PORT_BASE (2650)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

N=${N:-2000}
SESSIONS=20
PORT_BASE=${PORT_BASE:-2650}
PF_PORT=$PORT_BASE
TERN_PORT=$((PORT_BASE + 1))
LOAD=${LOAD:-$HERE/target/release/smtp-tls-load}
TO=root@localhost

need_root
need_cmds postfix postconf postalias openssl python3 mkfs.ext4 mount
need_tern postalias
[ -x "$LOAD" ] || die "$LOAD missing: cargo build --release -p tern-client"

WORK=${WORK:-$(mktemp -d /var/tmp/tls-bench.XXXXXX)}
mkdir -p "$WORK"; chmod 0755 "$WORK"
RES=$WORK/results.tsv
: > "$RES"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mx.bench.test" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || die "openssl req failed"
chmod 0644 "$WORK/cert.pem" "$WORK/key.pem"

cleanup() {
  set +e
  bench_cleanup
  log "results in $RES (work directory $WORK)"
}
trap cleanup EXIT

# The queues on a fresh file system of their own (bench/lib.sh new_fs); QUEUE_FS=dir
# keeps them in $WORK.
QUEUE_FS=${QUEUE_FS:-loop}
if [ "$QUEUE_FS" = loop ]; then new_fs fs; else FS=$WORK; fi

TLS_SETTINGS=(
  "smtpd_tls_security_level = may"
  "smtpd_tls_cert_file = $WORK/cert.pem"
  "smtpd_tls_key_file = $WORK/key.pem"
  "smtpd_tls_loglevel = 1"
)

# ------------------------------------------------------------------ Postfix, private
start_postfix() {  # HOLD at end of data: stored durably, never delivered
  pf_configure "$FS/postfix" "$PF_PORT" - "smtpd_end_of_data_restrictions=check_client_access,static:HOLD"
  cf_set "$PF/main.cf" "${TLS_SETTINGS[@]}"
  pf_start "$PF_PORT"
}

# ------------------------------------------------------------------ Tern
start_tern() {  # smtpd alone (no queue manager): mail stays in incoming/
  tern_configure "$FS/tern" "$TERN_PORT" accept 0
  cf_set "$TD/conf/main.cf" "${TLS_SETTINGS[@]}"
  tern_start "$TERN_PORT"
}

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
