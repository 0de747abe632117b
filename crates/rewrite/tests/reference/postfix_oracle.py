#!/usr/bin/env python3
"""Asks a private Debian Postfix 3.7 instance what trivial-rewrite(8) and smtpd(8) say.

Usage (as root; /work/shared/POSTFIX-REFERENCE.md): postfix_oracle.py MAIN_CF_EXTRA < queries
Each query line is one of
    resolve ADDRESS        -> transport TAB nexthop TAB recipient TAB flags (decimal)
    rewrite CONTEXT ADDRESS -> the rewritten address (CONTEXT: local or remote)
    rcpt CLIENT_IP ADDRESS -> the SMTP reply to RCPT TO:<ADDRESS> from CLIENT_IP (127.x)
and gets one answer line, in order. The instance listens on 127.0.0.1 on a free port, is
stopped at the end, and its directory removed. Every wait is bounded.
"""
import os, shutil, smtplib, socket, subprocess, sys, tempfile, time

def attrs(sock):
    """Reads one attr_print0 record: name NUL value NUL ... NUL."""
    buf = b""
    out = []
    deadline = time.time() + 10
    while True:
        while b"\0" not in buf:
            if time.time() > deadline:
                raise RuntimeError("timeout reading trivial-rewrite reply")
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("trivial-rewrite closed the connection")
            buf += chunk
        item, buf = buf.split(b"\0", 1)
        if item == b"":
            return out, buf
        while b"\0" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("trivial-rewrite closed the connection")
            buf += chunk
        value, buf = buf.split(b"\0", 1)
        out.append((item.decode(), value.decode("utf-8", "replace")))

def request(path, pairs):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    announce, rest = attrs(s)
    assert announce == [("protocol", "trivial_rewrite_protocol")], announce
    s.sendall(b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in pairs) + b"\0")
    reply, _ = attrs(s)
    s.close()
    return reply

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def main():
    extra = open(sys.argv[1]).read()
    d = tempfile.mkdtemp(prefix="pfref.d1.")
    os.chmod(d, 0o755)
    for sub in ("queue", "data", "spool"):
        os.mkdir(os.path.join(d, sub))
    shutil.chown(os.path.join(d, "data"), "postfix")
    os.chmod(os.path.join(d, "data"), 0o700)
    os.chmod(os.path.join(d, "spool"), 0o1777)
    port = free_port()
    with open(os.path.join(d, "main.cf"), "w") as f:
        f.write(f"""queue_directory = {d}/queue
data_directory = {d}/data
mail_spool_directory = {d}/spool
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
inet_protocols = ipv4
alias_maps = hash:{d}/aliases
alias_database = hash:{d}/aliases
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
smtpd_timeout = 5s
""" + extra)
    lines = []
    for line in open("/etc/postfix/master.cf"):
        fields = line.split()
        if line.startswith(("#", " ", "\t")) or not fields:
            lines.append(line)
            continue
        if fields[0] == "smtp" and fields[1] == "inet":
            continue
        if len(fields) > 4 and fields[4] in ("y", "-"):
            fields[4] = "n"
        lines.append(" ".join(fields) + "\n")
    lines.append(f"127.0.0.1:{port} inet n - n - - smtpd\n")
    open(os.path.join(d, "master.cf"), "w").writelines(lines)
    open(os.path.join(d, "aliases"), "w").write("postmaster: root\n")
    subprocess.run(["postalias", "-c", d, f"hash:{d}/aliases"], check=True)
    subprocess.run(["postfix", "-c", d, "start"], check=True, capture_output=True)
    try:
        sock = os.path.join(d, "queue", "private", "rewrite")
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        for raw in sys.stdin:
            words = raw.rstrip("\n").split(" ", 2)
            if words[0] == "resolve":
                addr = raw.rstrip("\n")[len("resolve "):]
                r = request(sock, [("request", "resolve"), ("sender", ""), ("address", addr)])
                r = dict(r[1:]) | {"rflags": r[-1][1]}
                print(f"{r['transport']}\t{r['nexthop']}\t{r['recipient']}\t{r['rflags']}")
            elif words[0] == "rewrite":
                r = request(sock, [("request", "rewrite"), ("rule", words[1]),
                                   ("address", words[2] if len(words) > 2 else "")])
                print(dict(r)["address"])
            elif words[0] == "rcpt":
                c = smtplib.SMTP(timeout=10, source_address=(words[1], 0))
                c.connect("127.0.0.1", port)
                c.ehlo("client.example")
                c.mail("sender@example.org")
                code, text = c.rcpt(words[2])
                print(f"{code} {text.decode()}")
                c.quit()
            sys.stdout.flush()
    finally:
        subprocess.run(["postfix", "-c", d, "stop"], capture_output=True)
        time.sleep(1)
        shutil.rmtree(d, ignore_errors=True)

main()
