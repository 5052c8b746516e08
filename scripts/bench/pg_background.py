#!/usr/bin/env python3
"""PostgreSQL's background work in a benchmark run, from its server log (argument): each
checkpoint and each autovacuum or autoanalyze that was logged, with when it started and
ended, so that a scenario's latency tail can be read against it. The log gives each one's
end and its elapsed time; the start is the end less that."""

import re
import sys
from datetime import datetime, timedelta

ENTRY = re.compile(r"^\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d\.\d+) \w+ \[\d+\] (\w+): +(.*)")
KINDS = re.compile(r"^(checkpoint complete|automatic vacuum of table|automatic analyze of table)")
TABLE = re.compile(r'^automatic (vacuum|analyze) of table "([^"]+)"')
ELAPSED = re.compile(r"(?:elapsed: |total=)([\d.]+) s")


def entries(lines):
    """Each log entry's end time and its text, continuation lines joined."""
    current = None
    for line in lines:
        match = ENTRY.match(line)
        if match:
            if current:
                yield current
            current = [match.group(1), match.group(3)]
        elif current and line.startswith("\t"):
            current[1] += " " + line.strip()
    if current:
        yield current


def main(path):
    shown = 0
    with open(path, errors="replace") as log:
        for ended, text in entries(log):
            if not KINDS.match(text):
                continue
            elapsed = ELAPSED.search(text)
            end = datetime.strptime(ended, "%H:%M:%S.%f")
            start = end - timedelta(seconds=float(elapsed.group(1))) if elapsed else None
            table = TABLE.match(text)
            what = f"{table.group(1)} of {table.group(2)}" if table else "checkpoint"
            took = f"{float(elapsed.group(1)):.1f} s" if elapsed else "?"
            print(f"  {start.strftime('%H:%M:%S.%f')[:-3] if start else '?'} to "
                  f"{end.strftime('%H:%M:%S.%f')[:-3]} ({took}): {what}")
            shown += 1
    if not shown:
        print("  none")


if __name__ == "__main__":
    main(sys.argv[1])
