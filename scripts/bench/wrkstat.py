"""Collects the figures of scripts/bench/run and prints its comparison table.

  wrkstat.py record RESULTS ROW PHASE WRK_OUTPUT   parse one `wrk --latency` output
  wrkstat.py rss RESULTS ROW PID                   record the server's peak RSS (VmHWM)
  wrkstat.py table RESULTS                         print the table and the target ratios;
                                                   exit 1 if any phase had non-2xx
                                                   responses, socket errors or no result

RESULTS is a file of JSON lines (one per record). ROW is one of the ids in ROWS, PHASE is
`read` or `write`.
"""
import json
import re
import sys

ROWS = {
    "strict": "Arcan, audit strict",
    "async": "Arcan, audit async",
    "off": "Arcan, audit off",
    "openbao": "OpenBao 2.7.2 (raft, file audit, KV v1)",
}

# (label, numerator, denominator, target); a figure is (row, phase, field).
RATIOS = [
    ("strict read / OpenBao read (req/s)", ("strict", "read", "rps"), ("openbao", "read", "rps"), 4.0),
    ("strict write / OpenBao write (req/s)", ("strict", "write", "rps"), ("openbao", "write", "rps"), 4.0),
    ("strict read / async read (req/s)", ("strict", "read", "rps"), ("async", "read", "rps"), 0.9),
    ("OpenBao read p99 / strict read p99", ("openbao", "read", "p99_ms"), ("strict", "read", "p99_ms"), 5.0),
    ("OpenBao write p99 / strict write p99", ("openbao", "write", "p99_ms"), ("strict", "write", "p99_ms"), 5.0),
    ("strict read / audit-off read (req/s)", ("strict", "read", "rps"), ("off", "read", "rps"), None),
    ("strict write / async write (req/s)", ("strict", "write", "rps"), ("async", "write", "rps"), None),
]

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(text):
    """Requests/sec, p50, p99 (ms), non-2xx count, socket errors and ACKED (put scripts)."""
    r = {"non2xx": 0, "socket_errors": {}}
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M):
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M):
            r[key] = to_ms(m.group(1))
    if m := re.search(r"^\s*(\d+) requests in", text, re.M):
        r["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        r["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors:\s+(.*)", text):
        r["socket_errors"] = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(1))}
    if m := re.search(r"^ACKED (\d+)", text, re.M):
        r["acked"] = int(m.group(1))
    return r


def problems(rec):
    out = []
    if not all(k in rec for k in ("rps", "p50_ms", "p99_ms")):
        out.append("no wrk result (wrk failed?)")
    if rec.get("non2xx"):
        out.append(f"{rec['non2xx']} non-2xx responses")
    errs = {k: v for k, v in rec.get("socket_errors", {}).items() if v}
    if errs:
        out.append("socket errors: " + ", ".join(f"{k} {v}" for k, v in errs.items()))
    return out


def load(path):
    phases, rss = {}, {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["kind"] == "phase":
                phases[(rec["row"], rec["phase"])] = rec
            else:
                rss[rec["row"]] = rec["hwm_kib"]
    return phases, rss


def fmt_ms(v):
    return "—" if v is None else f"{v:.2f} ms"


def record(results, row, phase, wrk_out):
    assert row in ROWS and phase in ("read", "write"), (row, phase)
    with open(wrk_out) as f:
        text = f.read()
    rec = {"kind": "phase", "row": row, "phase": phase, **parse_wrk(text)}
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    line = f"  {ROWS[row]}, {phase}: "
    if "rps" in rec:
        line += f"{rec['rps']:,.0f} req/s, p50 {fmt_ms(rec.get('p50_ms'))}, p99 {fmt_ms(rec.get('p99_ms'))}"
        line += f" ({rec.get('requests', '?')} requests"
        line += f", {rec['acked']} acknowledged)" if "acked" in rec else ")"
    print(line)
    for p in problems(rec):
        print(f"  !! {p}")
        if "no wrk result" in p:
            print("  wrk output:\n" + text)


def rss(results, row, pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(l.split(":", 1) for l in f if ":" in l)
    except FileNotFoundError:
        print(f"  !! server process {pid} is gone")
        return
    hwm = int(status["VmHWM"].split()[0])
    now = int(status["VmRSS"].split()[0])
    with open(results, "a") as f:
        f.write(json.dumps({"kind": "rss", "row": row, "hwm_kib": hwm, "rss_kib": now}) + "\n")
    print(f"  server RSS: peak (VmHWM) {hwm // 1024} MiB, now {now // 1024} MiB")


def table(results):
    phases, rsss = load(results)

    def get(row, phase, field):
        return phases.get((row, phase), {}).get(field)

    print("| server | read req/s | read p50 | read p99 | write req/s | write p50 | write p99 | server RSS (VmHWM) |")
    print("|---|---|---|---|---|---|---|---|")
    for row, label in ROWS.items():
        cells = [label]
        for phase in ("read", "write"):
            rps = get(row, phase, "rps")
            cells += ["—" if rps is None else f"{rps:,.0f}",
                      fmt_ms(get(row, phase, "p50_ms")), fmt_ms(get(row, phase, "p99_ms"))]
        cells.append(f"{rsss[row] // 1024} MiB" if row in rsss else "—")
        print("| " + " | ".join(cells) + " |")

    print()
    for label, num, den, target in RATIOS:
        a, b = get(*num), get(*den)
        if a is None or not b:
            print(f"- {label}: n/a")
            continue
        ratio = a / b
        verdict = "" if target is None else \
            f" (target ≥ {target:g}×: {'met' if ratio >= target else 'NOT met'})"
        print(f"- {label}: **{ratio:.2f}×**{verdict}")

    failed = []
    for row in ROWS:
        for phase in ("read", "write"):
            rec = phases.get((row, phase))
            for p in problems(rec) if rec else ["phase did not run"]:
                failed.append(f"{ROWS[row]}, {phase}: {p}")
    if failed:
        print("\nFAILED — these figures are not a benchmark of successful requests:")
        for f in failed:
            print(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "record":
        record(*args)
    elif cmd == "rss":
        rss(*args)
    elif cmd == "table":
        sys.exit(table(*args))
    else:
        sys.exit(__doc__)
