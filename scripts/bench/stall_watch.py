#!/usr/bin/env python3
"""The machine's own stalls during a benchmark run: a process that asks to wake every 5 ms
and writes down each wake-up that came 20 ms or more late, with the CPU time the
hypervisor took from this VM (steal, from /proc/stat) over the same moment. A latency
tail in a scenario's window that coincides with one of these is the machine's (every
process waited, not only eventgate); one that does not is for the code to explain.

`stall_watch.py watch FILE` runs until killed, appending one line per late wake-up:
`<UTC time of the wake-up> <ms late> <ms of steal since the previous wake-up>`.
`stall_watch.py list FILE` prints them, late wake-ups less than a second apart merged into
one episode."""

import sys
import time
from datetime import datetime, timedelta, timezone

PERIOD = 0.005
LATE = 0.020
STEAL_EVERY = 20
# Late wake-ups closer together than this are one episode in the listing.
EPISODE_GAP = timedelta(seconds=1)


def steal_ms():
    """CPU time stolen from this VM so far, all cores, in ms (/proc/stat's eighth field)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return int(fields[8]) * 1000 // 100 if len(fields) > 8 else 0


def watch(path):
    with open(path, "a", buffering=1) as out:
        # Steal is read every STEAL_EVERY wake-ups, so a late one reports about the steal
        # of its own moment, not of everything since the previous late one.
        steal_mark, wakes = steal_ms(), 0
        while True:
            asked = time.monotonic()
            time.sleep(PERIOD)
            late = time.monotonic() - asked - PERIOD
            wakes += 1
            if late >= LATE:
                steal_now = steal_ms()
                woke = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
                out.write(f"{woke} {late * 1e3:.1f} {steal_now - steal_mark}\n")
                steal_mark, wakes = steal_now, 0
            elif wakes >= STEAL_EVERY:
                steal_mark, wakes = steal_ms(), 0


def episodes(lines):
    """Late wake-ups merged into (start, end, count, longest ms, steal ms) episodes."""
    current = None
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        at = datetime.strptime(parts[0], "%H:%M:%S.%f")
        late, steal = float(parts[1]), int(parts[2])
        start = at - timedelta(milliseconds=late)
        if current and start - current[1] <= EPISODE_GAP:
            current[1] = at
            current[2] += 1
            current[3] = max(current[3], late)
            current[4] += steal
        else:
            if current:
                yield current
            current = [start, at, 1, late, steal]
    if current:
        yield current


def list_stalls(path):
    shown = 0
    try:
        with open(path) as stalls:
            for start, end, count, longest, steal in episodes(stalls):
                print(f"  {start.strftime('%H:%M:%S.%f')[:-3]} to {end.strftime('%H:%M:%S.%f')[:-3]}: "
                      f"{count} late wake-up{'s' if count > 1 else ''}, the longest {longest:.0f} ms late"
                      f" (steal {steal} ms)")
                shown += 1
    except FileNotFoundError:
        pass
    if not shown:
        print("  none")


if __name__ == "__main__":
    {"watch": watch, "list": list_stalls}[sys.argv[1]](sys.argv[2])
