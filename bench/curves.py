#!/usr/bin/env python3
"""How a message's cost grows with its recipients and with its size
(issue 29), side by side in one run: the same client straight to one
Postfix smtp-sink (direct), through HAProxy (mode tcp) and through smtplb
(smtp mode), each in front of that one sink.

The backend is `smtplb sink --xclient-strict` (of --smtplb): Postfix's
smtp-sink answers a pipelined group in small writes that wait on the
client's delayed ACK (Nagle), 10-20 ms per message on loopback whatever
stands in front, which hides what is measured here (`--sink smtp-sink` to
see it). The client is bench/chunk_client.py: the envelope pipelined (RFC 2920) as
an MTA sends it, DATA, one session (so a message's wall time is its latency,
not a share of a throughput). Runs are interleaved (every configuration
once per round) and medians reported, with each configuration's figure
divided by its own 1-recipient (or smallest-size) one.

  python3 bench/curves.py recipients --counts 1,10,50,100 --messages 200 --runs 5
  python3 bench/curves.py sizes --sizes 1K,100K,1M,10M,25M --runs 3
  python3 bench/curves.py sessions --counts 20,200,2000,5000 --runs 3
  (--before OLD/smtplb: a change's parent beside it, as "before")

`recipients`: milliseconds of wall time per message and the proxy's CPU
microseconds per message, by recipients per message (4 KiB messages).
`sizes`: milliseconds per message end to end (the client's last byte to its
250) and smtplb's peak memory (VmHWM), by message size.
`sessions`: throughput, not latency: smtp-source with N concurrent reused
sessions (4 KiB messages, at least 20 000 in all and 4 per session) through
HAProxy and smtplb to three `smtplb sink`s (smtp-sink stalls past a few
hundred connections); messages per second and the proxy's CPU per message.
HAProxy holds two descriptors per session and is left out where that passes
this process's open-file limit.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (BUILT_SMTPLB, STRICT_BALANCER_ADDRESS, start_haproxy, start_sinks,  # noqa: E402
                   start_smtplb)
from peers import rss_kib, run_load, tree_cpu_seconds  # noqa: E402

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chunk_client.py")


def parse_size(text):
    units = {"K": 1024, "M": 1024 * 1024}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units \
        else int(text)


def send(port, messages, size, recipients, timeout=600):
    """Seconds for `messages` messages over one session, as the client timed
    them (its interpreter's start left out)."""
    p = subprocess.run([sys.executable, CLIENT, "--port", str(port), "--messages", str(messages),
                        "--sessions", "1", "--size", str(size), "--verb", "data",
                        "--recipients", str(recipients)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("chunk_client: " + p.stderr.decode(errors="replace")[-300:])
    return float(p.stdout.split()[-1])


def measure(config, messages, size, recipients, args):
    """{"ms": wall ms per message, "cpu_us": proxy CPU µs per message, "rss": peak KiB}."""
    sinks = start_sinks(1, strict_smtplb=args.smtplb if args.sink == "smtplb" else None)
    workdir = tempfile.mkdtemp(prefix="curves-")
    proxy = None
    try:
        port = sinks[0][0]
        if config == "haproxy":
            port, proxy = start_haproxy(workdir, [port])
        elif config in ("smtplb", "before"):
            binary = args.smtplb if config == "smtplb" else args.before
            port, proxy = start_smtplb(binary, workdir, [port],
                                       source_address=STRICT_BALANCER_ADDRESS
                                       if args.sink == "smtplb" else None)
        time.sleep(0.3)
        send(port, max(2, messages // 10), size, recipients)  # warm-up: connections, caches
        cpu0 = tree_cpu_seconds(proxy.pid) if proxy else 0.0
        seconds = send(port, messages, size, recipients)
        cpu1 = tree_cpu_seconds(proxy.pid) if proxy else 0.0
        rss = rss_kib(proxy.pid, "VmHWM") if config == "smtplb" else 0
    finally:
        if proxy:
            proxy.stop()
        for _, s in sinks:
            s.stop()
    return {"ms": 1000 * seconds / messages, "cpu_us": 1e6 * (cpu1 - cpu0) / messages, "rss": rss}


def run_curve(points, label, args, messages_for, size_for, recipients_for):
    configs = ["direct", "haproxy", "smtplb"] + (["before"] if args.before else [])
    results = {(c, p): [] for c in configs for p in points}
    for r in range(args.runs):
        for p in points:
            order = configs[r % len(configs):] + configs[:r % len(configs)]  # rotated each round
            for c in order:
                results[(c, p)].append(measure(c, messages_for(p), size_for(p), recipients_for(p),
                                               args))
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in results.items()}
    first = points[0]
    print(f"| {label} | " + " | ".join(f"{c} ms/msg | {c} × at {first}" for c in configs)
          + " | smtplb ÷ direct | smtplb ÷ HAProxy | HAProxy CPU µs/msg | smtplb CPU µs/msg"
          " | smtplb peak RSS MiB |")
    print("|---|" + "---:|" * (2 * len(configs) + 5))
    for p in points:
        cells = []
        for c in configs:
            cells += [f"{med[(c, p)]['ms']:.2f}", f"{med[(c, p)]['ms'] / med[(c, first)]['ms']:.2f}"]
        cells += [f"{med[('smtplb', p)]['ms'] / med[('direct', p)]['ms']:.2f}",
                  f"{med[('smtplb', p)]['ms'] / med[('haproxy', p)]['ms']:.2f}",
                  f"{med[('haproxy', p)]['cpu_us']:.0f}", f"{med[('smtplb', p)]['cpu_us']:.0f}",
                  f"{med[('smtplb', p)]['rss'] / 1024:.1f}"]
        print(f"| {p} | " + " | ".join(cells) + " |")


def sessions_curve(counts, args):
    """Rate and proxy CPU per message by concurrent sessions."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every peer
    configs = ["haproxy", "smtplb"] + (["before"] if args.before else [])
    results = {}
    for r in range(args.runs):
        for n in counts:
            for c in configs[r % len(configs):] + configs[:r % len(configs)]:
                if c == "haproxy" and 2 * n + 200 > hard:
                    continue
                try:
                    results.setdefault((c, n), []).append(measure_sessions(c, n, args))
                except RuntimeError as e:  # smtp-source gave up: a refusal, a timeout
                    print(f"curves: {c} at {n} sessions failed: {str(e)[-200:]}", file=sys.stderr)
                    results.setdefault((c, n), [])
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in results.items()
           if v}
    print("| sessions | " + " | ".join(f"{c} msgs/s | {c} CPU µs/msg | {c} CPU × at {counts[0]}"
                                      for c in configs) + " |")
    print("|---|" + "---:|" * (3 * len(configs)))
    for n in counts:
        cells = []
        for c in configs:
            if (c, n) not in med:
                cells += ["failed" if (c, n) in results else "–"] + ["–"] * 2
                continue
            m, base = med[(c, n)], med.get((c, counts[0]), med[(c, n)])
            cells += [f"{m['rate']:.0f}", f"{m['cpu_us']:.1f}", f"{m['cpu_us'] / base['cpu_us']:.2f}"]
        print(f"| {n} | " + " | ".join(cells) + " |")


def measure_sessions(config, sessions, args):
    sinks = start_sinks(3, strict_smtplb=args.smtplb)
    workdir = tempfile.mkdtemp(prefix="curves-")
    ports = [p for p, _ in sinks]
    proxy = None
    try:
        if config == "haproxy":
            port, proxy = start_haproxy(workdir, ports, maxconn=2 * sessions + 100)
        else:
            port, proxy = start_smtplb(args.smtplb if config == "smtplb" else args.before,
                                       workdir, ports, source_address=STRICT_BALANCER_ADDRESS,
                                       pool_extra=f'backend_hold_time = "{args.hold}"\n'
                                       if args.hold else "")
        time.sleep(0.5)
        messages = max(20000, 4 * sessions)
        run_load([port], min(messages, sessions * 2), sessions, True, 4096, 600)  # warm-up
        cpu0 = tree_cpu_seconds(proxy.pid)
        began = time.monotonic()
        run_load([port], messages, sessions, True, 4096, 600)
        seconds = time.monotonic() - began
        cpu1 = tree_cpu_seconds(proxy.pid)
    finally:
        if proxy:
            proxy.stop()
        for _, s in sinks:
            s.stop()
    return {"rate": messages / seconds, "cpu_us": 1e6 * (cpu1 - cpu0) / messages}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("curve", choices=("recipients", "sizes", "sessions"))
    ap.add_argument("--counts", help="recipients per message (1,10,50,100) or sessions "
                    "(20,200,2000,10000)")
    ap.add_argument("--sizes", default="1K,100K,1M,10M,25M")
    ap.add_argument("--messages", type=int, default=200,
                    help="per point (recipients); sizes send about 64 MiB or 3, whichever is more")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--before", help="another smtplb binary (a change's parent) beside it")
    ap.add_argument("--hold", help="sessions: the pool's backend_hold_time (default: smtplb's)")
    ap.add_argument("--sink", choices=("smtplb", "smtp-sink"), default="smtplb",
                    help="the backend: `smtplb sink` (default), or Postfix's smtp-sink, whose "
                    "replies to a pipelined group wait on the client's delayed ACKs")
    args = ap.parse_args()
    args.smtplb = os.path.abspath(args.smtplb)
    if args.before:
        args.before = os.path.abspath(args.before)
    if not (1 <= args.messages <= 100000 and 1 <= args.runs <= 20):
        sys.exit("curves: --messages 1..100000, --runs 1..20")
    if args.curve == "sessions":
        counts = [int(c) for c in (args.counts or "20,200,2000,10000").split(",")]
        if any(not 1 <= c <= 10000 for c in counts):
            sys.exit("curves: --counts each 1..10000 sessions")
        sessions_curve(counts, args)
    elif args.curve == "recipients":
        counts = [int(c) for c in (args.counts or "1,10,50,100").split(",")]
        if any(not 1 <= c <= 1000 for c in counts):
            sys.exit("curves: --counts each 1..1000")
        run_curve(counts, "recipients", args, lambda p: args.messages, lambda p: 4096, lambda p: p)
    else:
        sizes = args.sizes.split(",")
        if any(not 1 <= parse_size(s) <= 50 * 1024 * 1024 for s in sizes):
            sys.exit("curves: --sizes each 1 byte to 50M")
        run_curve(sizes, "size", args,
                  lambda p: max(3, min(2000, (64 << 20) // parse_size(p))),
                  parse_size, lambda p: 1)


if __name__ == "__main__":
    main()
