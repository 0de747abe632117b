#!/usr/bin/env python3
"""Normalise a Postfix maillog_file (or a capture of /dev/log datagrams) for the golden files.

Usage: normalise.py CONFIG_DIR < raw > golden
Process ids become 1001, 1002, ... and queue ids QUEUEID-like hex in order of first use;
the private instance's directory becomes /etc/postfix and the machine name in swaks's
Message-IDs becomes host.example. Timestamps are kept. The postfix-script permission
warnings about the temporary directory are dropped (they only exist for a private instance).
"""
import re
import sys

confdir = sys.argv[1]
pids, qids = {}, {}


def pid(m):
    return "[%d]" % pids.setdefault(m.group(1), 1001 + len(pids))


def qid(m):
    return qids.setdefault(m.group(0), "%X" % (0xA1B2C3D4E00 + len(qids)))


for line in sys.stdin:
    if "not owned by root" in line or "group or other writable" in line:
        continue
    line = line.replace(confdir, "/etc/postfix")
    line = re.sub(r"\[(\d+)\](?=: )", pid, line)
    line = re.sub(r"\b[0-9A-F]{10,11}\b", qid, line)
    line = re.sub(r"@vm>", "@host.example>", line)
    sys.stdout.write(line)
