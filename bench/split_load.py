#!/usr/bin/env python3
"""One event loop, two, or two processes? HAProxy runs one thread per core.
This runs the reused-session workload split over two `smtp-source`
processes (half the sessions each) against:

- haproxy: HAProxy (one thread per core), both halves to its one port;
- smtplb: one smtplb process with one event loop (`threads = 1`);
- smtplb-x2: two such processes, one half each: two independent event
  loops, without the state a threaded smtplb shares (pools, limits, the
  spool);
- smtplb-2loops: one smtplb process with two event loops (`threads = 2`).

Runs are interleaved and medians reported, as in bench.py. A diagnostic for
design work, not part of the published side-by-side.

  python3 bench/split_load.py [--runs 3] [--messages 20000]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (BUILT_SMTPLB, require, run_load, start_haproxy, start_sinks,  # noqa: E402
                   start_smtplb)

CONFIGS = ("haproxy", "smtplb", "smtplb-x2", "smtplb-2loops")


def start(config, sink_ports, smtplb):
    """Returns (the two target ports, the processes to stop)."""
    if config == "haproxy":
        port, proc = start_haproxy(tempfile.mkdtemp(prefix="split-"), sink_ports)
        return [port, port], [proc]
    count = 2 if config == "smtplb-x2" else 1
    threads = 2 if config == "smtplb-2loops" else 1
    started = [start_smtplb(smtplb, tempfile.mkdtemp(prefix="split-"), sink_ports, "smtp",
                            threads=threads)
               for _ in range(count)]
    ports = [port for port, _ in started]
    return (ports * 2)[:2], [proc for _, proc in started]


def measure(config, args):
    sinks = start_sinks()
    targets, procs = start(config, [p for p, _ in sinks], args.smtplb)
    try:
        time.sleep(0.5)
        run_load(targets, 200, args.sessions, True, args.size, 300)  # warm-up
        return args.messages / run_load(targets, args.messages, args.sessions, True, args.size, 300)
    finally:
        for proc in procs:
            proc.stop()
        for _, sink in sinks:
            sink.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    require("smtp-source", "smtp-sink", "haproxy")
    rates = {config: [] for config in CONFIGS}
    for run in range(args.runs):
        order = CONFIGS[run % len(CONFIGS):] + CONFIGS[:run % len(CONFIGS)]
        for config in order:
            rate = measure(config, args)
            rates[config].append(rate)
            print(f"run {run + 1} {config:13} {rate:7.0f} msg/s", flush=True)
    base = statistics.median(rates["haproxy"])
    print(f"\nMedians of {args.runs} interleaved runs; {args.sessions} sessions in two "
          f"smtp-source processes; {args.size}-byte messages.\n")
    print("| configuration | messages/s | × HAProxy | per run × HAProxy |")
    print("|---|---:|---:|---|")
    for config in CONFIGS:
        per_run = ", ".join(f"{r / h:.2f}" for r, h in zip(rates[config], rates["haproxy"]))
        median = statistics.median(rates[config])
        print(f"| {config} | {median:.0f} | {median / base:.2f} | {per_run} |")


if __name__ == "__main__":
    main()
