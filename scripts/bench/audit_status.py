"""Prints the audit counters of `GET /api/v1/audit/status` (JSON on stdin) on one line.

With an argument (strict, async or off), prints only the server's audit mode and exits 1 if
it is another one (a server without the `mode` field passes).
"""
import json
import sys

s = json.load(sys.stdin)
if len(sys.argv) > 1:
    mode = s.get("mode", sys.argv[1])
    print(f"  audit mode: {s.get('mode', '(not reported)')}")
    sys.exit(0 if mode == sys.argv[1] else 1)
line = "  audit"
if "mode" in s:
    line += f" ({s['mode']})"
line += f": emitted {s['emitted']}, stored {s['stored']}, dropped {s['dropped']}"
for key in ("refused", "store_failures"):
    if key in s:
        line += f", {key.replace('_', ' ')} {s[key]}"
for k in s.get("sinks", []):
    line += f"; {k['name']} delivered {k['delivered']}, failed {k['failed']}, lag {k['lag']}"
print(line)
