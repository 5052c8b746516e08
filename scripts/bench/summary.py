#!/usr/bin/env python3
"""The summary table of a scripts/bench.sh run: each measure next to its ceiling (or
target) from the same run, and the ratio. Reads the run's output (argument or stdin),
prints a Markdown table. With --doc FILE, also replaces the block between the
`<!-- bench-summary:begin -->` and `<!-- bench-summary:end -->` markers of FILE with it, so
docs/BENCHMARKS.md carries the figures of the last run as printed, never retyped."""

import re
import sys

BEGIN, END = "<!-- bench-summary:begin -->", "<!-- bench-summary:end -->"


def find(pattern, text):
    match = re.search(pattern, text, re.MULTILINE)
    return match.groups() if match else None


def num(value):
    return float(value.replace(",", ""))


def fmt(value, unit=""):
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}"


def rows(text):
    out = []

    def ratio(measured, ceiling):
        return f"{measured / ceiling:.0%}" if ceiling else ""

    RATE = r": \d+ ok in [\d.]+s = (\d+)/s; latency p50 ([\d.]+) ms, p99 ([\d.]+) ms"

    def against_pgbench(label, run, ceiling_line, ceiling_label):
        """A closed-loop rate beside the pgbench ceiling of the same SQL; its rate or None."""
        got = find(rf"^{run}{RATE}", text)
        ceiling = find(rf"^{ceiling_line}: tps = ([\d.]+)", text)
        if not got:
            return None
        out.append((label, f"{fmt(num(got[0]), '/s')} (p99 {got[2]} ms)",
                    f"{ceiling_label}: {fmt(num(ceiling[0]), ' tps')}" if ceiling else "",
                    ratio(num(got[0]), num(ceiling[0])) if ceiling else ""))
        return num(got[0])

    one_write = "pgbench, same call, one write per transaction"
    deposits = {}
    for clients in ("32", "128"):
        rate = against_pgbench(f"deposits, {clients} clients", rf"deposits \(concurrency {clients}\)",
                               rf"pgbench ceiling \(clients {clients}\)", one_write)
        if rate:
            deposits[clients] = rate
    against_pgbench("deposits into one portfolio, 32 clients", r"deposits, 1 portfolio \(concurrency 32\)",
                    r"pgbench one-portfolio ceiling \(clients 32\)", one_write)
    replays = against_pgbench("replays of one key, 32 clients", r"replays \(concurrency 32\)",
                              r"pgbench replay ceiling \(clients 32\)", "pgbench, the replay's read")
    if replays and "32" in deposits:
        times = replays / deposits["32"]
        out.append(("replays ÷ fresh deposits, 32 clients", f"{times:.1f}×", "target ≥ 5×",
                    "met" if times >= 5 else "not met"))
    out += peer_rows(text)
    got = find(r"^follow \(limit 1000\): \d+ events in \d+ pages, [\d.]+s = (\d+) events/s", text)
    ceiling = find(r"^COPY ceiling: \d+ rows, the faster plan: (\d+) rows/s", text)
    if got:
        out.append(("feed follower, limit 1000", f"{fmt(num(got[0]), ' events/s')}",
                    f"COPY of the same rows: {fmt(num(ceiling[0]), ' rows/s')}" if ceiling else "",
                    ratio(num(got[0]), num(ceiling[0])) if ceiling else ""))
    out += longpoll_rows(text)
    for kind, ceiling_pattern, label in (
        ("amqp", r"^amqp-ceiling \(window \d+\): \d+ confirmed in [\d.]+s = (\d+) msgs/s", "bare lapin publisher"),
        ("mqtt", None, ""),
        ("mqtt-nodelay", None, ""),
        ("kafka", r"^kafka-ceiling: \d+ records acknowledged \(acks=all\) = (\d+) records/s", "bare rskafka producer"),
    ):
        got = find(rf"^relay-backlog {kind}: \d+ events in [\d.]+s = (\d+) events/s", text)
        ceiling = find(ceiling_pattern, text) if ceiling_pattern else None
        if got:
            out.append((f"{KIND_NAMES[kind]} relay from a backlog", fmt(num(got[0]), " events/s"),
                        f"{label}: {fmt(num(ceiling[0]), '/s')}" if ceiling else "",
                        ratio(num(got[0]), num(ceiling[0])) if ceiling else ""))
        got = find(rf"^relay-latency {kind}: \d+ events at (\d+)/s for \d+s; commit-to-receipt p50 ([\d.]+) ms, p99 ([\d.]+) ms{STEAL}", text)
        if got:
            out.append((f"{KIND_NAMES[kind]} commit to consumer at {got[0]} events/s",
                        f"p50 {got[1]} ms, p99 {got[2]} ms{stolen(got[3])}",
                        "target p99 < 50 ms", "met" if num(got[2]) < 50 else "not met"))
    got = find(r"^webhook-backlog: \d+ deliveries in [\d.]+s = (\d+) deliveries/s", text)
    if got:
        out.append(("webhooks from a backlog, default settings", fmt(num(got[0]), " deliveries/s"),
                    "target ≥ 5,000/s", "met" if num(got[0]) >= 5000 else "not met"))
    got = find(rf"^webhook-latency: \d+ events at (\d+)/s for \d+s; commit-to-receipt p50 ([\d.]+) ms, p99 ([\d.]+) ms{STEAL}", text)
    if got:
        out.append((f"webhooks commit to receipt at {got[0]} events/s", f"p50 {got[1]} ms, p99 {got[2]} ms{stolen(got[3])}",
                    "target p99 < 50 ms", "met" if num(got[2]) < 50 else "not met"))
    return out


# The VM's stolen CPU over a latency measurement, when the load generator reported it
# (benches/load/steal.rs): optional, so that older runs' output still reads.
STEAL = r"(?:[^\n]*; the VM's steal (\d+) ms)?"
# Below this, steal over a measurement is not worth a mention.
STEAL_WORTH_SAYING_MS = 100


def stolen(ms):
    """What the hypervisor took during a measurement, beside its figures, when it matters:
    a tail on a shared machine is read with it (the verdict is not changed by it)."""
    if ms is None or num(ms) < STEAL_WORTH_SAYING_MS:
        return ""
    return f" (the VM lost {fmt(num(ms))} ms of CPU to steal during it)"


KIND_NAMES = {
    "amqp": "AMQP",
    "mqtt": "MQTT",
    "mqtt-nodelay": "MQTT (broker with set_tcp_nodelay true)",
    "kafka": "Kafka",
}

LONGPOLL = r"^{name}: (\d+) waiters over (\d+) tenants, each got its event; publish-to-receipt min [\d.]+ ms, p50 ([\d.]+) ms, p99 ([\d.]+) ms, max [\d.]+ ms; server RSS (\d+) KiB idle -> (\d+) KiB" + STEAL


def longpoll_rows(text):
    """The long-poll wake-ups (`bench.sh` runs several, alternating with the floor's): the
    target is read on the median round's p99, every round's shown beside it; the memory
    target on the largest RSS of the rounds (the server's own grows after its first burst)."""
    def parse(name):
        """Each round's numbers; its steal (the last) is 0 where the line has none."""
        return [tuple(num(v or "0") for v in run)
                for run in re.findall(LONGPOLL.format(name=name), text, re.MULTILINE)]

    runs = parse("longpoll")
    if not runs:
        return []
    floors = parse("longpoll-floor")
    waiters, tenants = int(runs[0][0]), int(runs[0][1])

    def middle(values):
        return sorted(values)[(len(values) - 1) // 2]  # of an even count, the lower middle

    def p99s(rounds):
        p99 = middle([r[3] for r in rounds])
        if len(rounds) == 1:
            return f"p50 {rounds[0][2]:.1f} ms, p99 {p99:.1f} ms{stolen(str(rounds[0][6]))}"
        each = " / ".join(f"{r[3]:.1f}" + (f" (steal {fmt(r[6])} ms)" if r[6] >= STEAL_WORTH_SAYING_MS else "")
                          for r in rounds)
        return f"p50 {middle([r[2] for r in rounds]):.1f} ms, p99 {p99:.1f} ms: the median of {len(rounds)} rounds, p99 {each} ms"

    p99 = middle([r[3] for r in runs])
    target = "target p99 < 100 ms"
    if floors:
        target += f" (a bare hyper server, same clients: {p99s(floors)})"
    largest = max(runs, key=lambda r: r[5])
    # The floor is this machine's own bound on the figure: the ratio says how far above it
    # eventgate is, which a faster or slower machine moves less than the p99 itself.
    floor_ratio = ""
    if floors and middle([r[3] for r in floors]) > 0:
        floor_ratio = f" ({p99 / middle([r[3] for r in floors]):.2f}× the floor's p99)"

    def mb(kib):
        """Megabytes as the target counts them (10^6 bytes; a KiB is 1,024), one decimal."""
        return f"{kib * 1024 / 1e6:.1f}"

    rss = f"{mb(largest[5])} MB (idle {mb(largest[4])} MB)"
    if len(runs) > 1:
        rss = f"{rss}, the largest of {len(runs)} rounds: " + " / ".join(mb(r[5]) for r in runs) + " MB"
    return [
        (f"long-polls: {waiters} over {tenants} tenants, publish to receipt", p99s(runs),
         target, ("met" if p99 < 100 else "not met") + floor_ratio),
        (f"server RSS while {waiters} wait", rss, "target < 150 MB",
         "met" if largest[5] * 1024 < 150e6 else "not met"),
    ]


PEER = r"^peer {label} \(c{connections}\): (\d+)/s; latency p50 ([\d.]+) ms, p99 ([\d.]+) ms; server CPU (\d+)%, PostgreSQL CPU (\d+)%"


def peer_rows(text):
    """eventgate's ingest next to svix-server's, from the `peer` scenario (same run): the
    median of each side's rounds, with their range."""
    out = []
    for connections in ("32", "128"):
        def runs(label):
            found = [tuple(map(num, m)) for m in re.findall(
                PEER.format(label=label, connections=connections), text, re.MULTILINE)]
            return sorted(found)  # by rate

        svix = runs("svix-server msg")
        if svix:
            median = svix[(len(svix) - 1) // 2]  # of an even count, the lower middle
            out.append((f"svix-server ingest (no endpoint), c{connections}{rounds(svix)}",
                        f"{fmt(median[0], '/s')} ({spread(svix)}; CPU {median[3]:.0f}%)", "", ""))
        for what in ("publish, 64 portfolios", "publish, 1 portfolio", "deposit, 64 portfolios", "deposit, 1 portfolio"):
            ours = runs(f"eventgate {what}")
            if not ours:
                continue
            rate, _, p99, cpu, pg_cpu = ours[(len(ours) - 1) // 2]
            result = f"{fmt(rate, '/s')} ({spread(ours)}; p99 {p99:g} ms; CPU {cpu:.0f}%, PostgreSQL {pg_cpu:.0f}%)"
            if svix:
                times = rate / median[0]
                out.append((f"eventgate {what}, c{connections}{rounds(ours)}", result,
                            f"1.5 × svix-server: {fmt(1.5 * median[0], '/s')}",
                            f"{times:.2f}× svix: {'met' if times >= 1.5 else 'not met'}"))
            else:
                out.append((f"eventgate {what}, c{connections}", result, "", ""))
            if "1 portfolio" in what:
                out.append((f"one portfolio ({what.split(',')[0]}), c{connections}", fmt(rate, "/s"),
                            "target ≥ 1,000/s", "met" if rate >= 1000 else "not met"))
    return out


def rounds(runs):
    return f", median of {len(runs)} runs" if len(runs) > 1 else ""


def spread(runs):
    """The range of a measurement's runs, lowest to highest."""
    return f"{fmt(runs[0][0])}–{fmt(runs[-1][0])}" if len(runs) > 1 else "one run"


def table(text):
    machine = find(r"^(machine: .*)$", text)
    lines = []
    if machine:
        lines += [machine[0], ""]
    lines += ["| measure | result | ceiling or target (same run) | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(text)]
    return "\n".join(lines)


def main(argv):
    doc = None
    if "--doc" in argv:
        i = argv.index("--doc")
        doc = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    text = open(argv[0]).read() if argv else sys.stdin.read()
    summary = table(text)
    print(summary)
    if doc:
        page = open(doc).read()
        start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
        open(doc, "w").write(page[:start] + "\n" + summary + "\n" + page[end:])


if __name__ == "__main__":
    main(sys.argv[1:])
