"""Prints the audit counters of `GET /api/v1/audit/status` (JSON on stdin) on one line."""
import json
import sys

s = json.load(sys.stdin)
line = f"audit: emitted {s['emitted']}, stored {s['stored']}, dropped {s['dropped']}"
for k in s["sinks"]:
    line += f"; {k['name']} delivered {k['delivered']}, failed {k['failed']}, lag {k['lag']}"
print(line)
