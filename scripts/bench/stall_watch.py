#!/usr/bin/env python3
"""The machine's own stalls during a benchmark run: a process that asks to wake every 5 ms
and writes down each wake-up that came 20 ms or more late, and each second in which the
hypervisor took 50 ms or more of this VM's CPU time (steal, from /proc/stat). A latency
tail in a scenario's window that coincides with these is the machine's (every process
waited, not only eventgate); one that does not is for the code to explain.

`stall_watch.py watch FILE` runs until killed, appending one line per finding:
`<UTC time> late <ms late>` or `<UTC time> steal <ms stolen in the second before>`.
`stall_watch.py list FILE` prints them, findings less than a second apart merged into one
episode."""

import sys
import time
from datetime import datetime, timedelta, timezone

PERIOD = 0.005
LATE = 0.020
# Steal is summed over this many wake-ups (about a second) and written down at or over
# STOLEN ms.
STEAL_EVERY = 200
STOLEN = 50
# Findings closer together than this are one episode in the listing.
EPISODE_GAP = timedelta(seconds=1)


def steal_ms():
    """CPU time stolen from this VM so far, all cores, in ms (/proc/stat's eighth value)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) * 1000 // 100 if len(fields) > 8 else 0


def now():
    return datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def watch(path):
    with open(path, "a", buffering=1) as out:
        steal_mark, wakes = steal_ms(), 0
        while True:
            asked = time.monotonic()
            time.sleep(PERIOD)
            late = time.monotonic() - asked - PERIOD
            if late >= LATE:
                out.write(f"{now()} late {late * 1e3:.1f}\n")
            wakes += 1
            if wakes >= STEAL_EVERY:
                steal_now = steal_ms()
                if steal_now - steal_mark >= STOLEN:
                    out.write(f"{now()} steal {steal_now - steal_mark}\n")
                steal_mark, wakes = steal_now, 0


def episodes(lines):
    """Findings merged into [start, end, late wake-ups, longest ms late, ms stolen]."""
    current = None
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or parts[1] not in ("late", "steal"):
            continue
        at = datetime.strptime(parts[0], "%H:%M:%S.%f")
        value = float(parts[2])
        # A late wake-up began when it was asked for; a second's steal, a second before.
        start = at - (timedelta(milliseconds=value) if parts[1] == "late" else timedelta(seconds=1))
        late, longest, stolen = (1, value, 0) if parts[1] == "late" else (0, 0.0, value)
        if current and start - current[1] <= EPISODE_GAP:
            current[1] = max(current[1], at)
            current[2] += late
            current[3] = max(current[3], longest)
            current[4] += stolen
        else:
            if current:
                yield current
            current = [start, at, late, longest, stolen]
    if current:
        yield current


def list_stalls(path):
    shown = 0
    try:
        with open(path) as stalls:
            for start, end, late, longest, stolen in episodes(stalls):
                woke = (f"{late} wake-up{'s' if late > 1 else ''} 20 ms or more late, the longest "
                        f"{longest:.0f} ms" if late else "no late wake-up")
                print(f"  {start.strftime('%H:%M:%S.%f')[:-3]} to {end.strftime('%H:%M:%S.%f')[:-3]}: "
                      f"{woke}; {stolen:.0f} ms of CPU stolen")
                shown += 1
    except FileNotFoundError:
        pass
    if not shown:
        print("  none")


if __name__ == "__main__":
    {"watch": watch, "list": list_stalls}[sys.argv[1]](sys.argv[2])
