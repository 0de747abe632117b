"""bench/table.py RESULTS CLK_TCK IDLE -- the one table of bench/bench.sh, in Markdown.

Reads the lines bench.sh records (tab-separated):
  machine  key=value...
  cell     WORKLOAD SERVER SESSIONS SIZE N T0 T1 DONE_AT CPU_TICKS PEAK_RSS_KB GOT LATENCY
  idle     SERVER "opened=O greeted=G" "RSS PSS PROCS (before)" "RSS PSS PROCS (held)"
and prints one row per (workload, sessions, size): for Postfix and for Tern, messages/s
(smtp-source), latency p50/p99 (smtp-load), CPU seconds per 1,000 messages, peak RSS,
then the Tern/Postfix ratios and smtp-sink's messages/s for the same cell (the ceiling).
"""
import sys

res, clk, idle_n = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cells, idle, machine = {}, {}, []
order = []
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if f[0] == "machine":
        machine = f[1:]
    elif f[0] == "cell":
        w, s, sess, size, n, t0, t1, done, ticks, rss, got, lat = f[1:13]
        kv = dict(x.split("=", 1) for x in lat.split() if "=" in x)
        try:
            rate = int(n) / (float(done) - float(t0))
        except (ValueError, ZeroDivisionError):
            rate = float("nan")
        key = (w, int(sess), int(size))
        if w != "ceiling" and key not in order:
            order.append(key)
        cells[(w, s, int(sess), int(size))] = {
            "rate": rate,
            "p50": float(kv.get("p50_ms", "nan")),
            "p99": float(kv.get("p99_ms", "nan")),
            "lat_fail": kv.get("failures", "?") != "0",
            "cpu": int(ticks) / clk / int(n) * 1000 if ticks.lstrip("-").isdigit() else float("nan"),
            "rss": int(rss) / 1024 if rss.isdigit() else float("nan"),
            "short": got.endswith("!"),
        }
    elif f[0] == "idle":
        kv = dict(x.split("=", 1) for x in f[2].split())
        before, held = f[3].split(), f[4].split()
        idle[f[1]] = (kv.get("greeted", "0"), int(held[0]) / 1024, int(held[1]) / 1024,
                      held[2], int(before[0]) / 1024)


def size_name(b):
    return f"{b // (1024 * 1024)} MiB" if b >= 1024 * 1024 else f"{b // 1024} KiB"


def num(v, fmt):
    return "-" if v != v else format(v, fmt)


def group(c):
    if c is None:
        return ["-"] * 5
    mark = "!" if c["short"] else ""
    lat = "!" if c["lat_fail"] else ""
    return [num(c["rate"], ".0f") + mark, num(c["p50"], ".2f") + lat, num(c["p99"], ".2f") + lat,
            num(c["cpu"], ".2f"), num(c["rss"], ".0f")]


def ratio(a, b):
    return "-" if a is None or b is None or not (b["rate"] > 0) else f"{a['rate'] / b['rate']:.2f}"


def cpu_ratio(a, b):
    return "-" if a is None or b is None or not (b["cpu"] > 0) else f"{a['cpu'] / b['cpu']:.2f}"


print()
if machine:
    print("machine: " + ", ".join(machine))
print("msg/s: smtp-source (one connection per message) until done; p50/p99: ms from MAIL to the"
      " 250 after the data (smtp-load, the same sessions, half the messages); CPU: s per 1,000"
      " messages, all the server's processes; RSS: peak MB, summed over the server's processes;"
      " Tern/Postfix: msg/s and CPU ratios; ceiling: smtp-source into smtp-sink, msg/s."
      " ! = count short or load errors.\n")
head = ["workload", "sessions", "size",
        "Postfix msg/s", "p50", "p99", "CPU", "RSS",
        "Tern msg/s", "p50", "p99", "CPU", "RSS",
        "Tern/Postfix msg/s", "CPU", "ceiling msg/s"]
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
for w, sess, size in order:
    p = cells.get((w, "postfix", sess, size))
    t = cells.get((w, "tern", sess, size))
    c = cells.get(("ceiling", "sink", sess, size))
    row = [w, str(sess), size_name(size)] + group(p) + group(t) + \
          [ratio(t, p), cpu_ratio(t, p), num(c["rate"], ".0f") if c else "-"]
    print("| " + " | ".join(row) + " |")
if idle:
    def ig(s):
        if s not in idle:
            return ["-"] * 5
        g, rss, pss, procs, _ = idle[s]
        return [f"held {g}", "-", "-", "-", f"{rss:.0f} (PSS {pss:.0f}, {procs} proc)"]
    row = ["idle", idle_n, "-"] + ig("postfix") + ig("tern") + ["-", "-", "-"]
    print("| " + " | ".join(row) + " |")
