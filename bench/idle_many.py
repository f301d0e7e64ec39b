#!/usr/bin/env python3
"""Memory with many idle client connections (issue #7's "10 000 concurrent
idle connections under 100 MiB"), measured directly rather than
extrapolated from a few hundred.

For each mode, a fresh smtplb process: its RSS before any client, then
N clients (default 10 000) each connected and past the greeting, then its
RSS again. smtp mode answers the greeting itself; tcp mode opens a backend
connection per client, so its backends are smtplb's own sink (smtp-sink
stalls past a few hundred connections). Only 127.0.0.1 is used; the count
is bounded by --connections.

  python3 bench/idle_many.py [--connections 10000] [--smtplb build/src/app/smtplb]
"""
import argparse
import os
import resource
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (BUILT_SMTPLB, Proc, free_port, rss_kib, start_smtplb,  # noqa: E402
                   wait_port)

BATCH = 500


def start_own_sinks(smtplb, count=3):
    sinks = []
    for _ in range(count):
        port = free_port()
        sinks.append((port, Proc([smtplb, "sink", "--listen", f"127.0.0.1:{port}"])))
    for port, _ in sinks:
        wait_port(port)
    return sinks


def hold_idle(port, count):
    """Connects `count` clients and reads each greeting; returns the sockets."""
    held = []
    while len(held) < count:
        batch = []
        for _ in range(min(BATCH, count - len(held))):
            batch.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        for s in batch:
            if not s.recv(512).startswith(b"220"):
                raise RuntimeError("no greeting")
        held.extend(batch)
    return held


def measure(smtplb, mode, count):
    work = tempfile.mkdtemp(prefix="smtplb-idle-")
    sinks = start_own_sinks(smtplb)
    port, proc = start_smtplb(smtplb, work, [p for p, _ in sinks], mode)
    held = []
    try:
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        start = time.monotonic()
        held = hold_idle(port, count)
        took = time.monotonic() - start
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        return before, after, took
    finally:
        for s in held:
            s.close()
        proc.stop()
        for _, s in sinks:
            s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--modes", default="smtp,tcp")
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    args = ap.parse_args()
    if not 1 <= args.connections <= 20000:
        sys.exit("idle_many: --connections must be between 1 and 20000")
    # This process holds every client socket, smtplb one per client (two in
    # tcp mode, with the backend's); both inherit this limit, raised to the
    # hard one. Where the hard limit is too low for tcp mode, tcp mode is
    # measured with as many clients as it allows, and the table says so.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spare = 256
    if args.connections + spare > hard:
        sys.exit(f"idle_many: {args.connections} clients need {args.connections + spare} "
                 f"file descriptors; the hard limit (ulimit -Hn) is {hard}")
    print("| mode | idle clients | RSS before (MiB) | RSS with them (MiB) | KiB per connection "
          "| seconds to connect |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in args.modes.split(","):
        count = args.connections
        if mode == "tcp":
            count = min(count, (hard - spare) // 2)
        before, after, took = measure(args.smtplb, mode, count)
        per = (after - before) / count
        print(f"| {mode} | {count} | {before / 1024:.1f} | {after / 1024:.1f} | "
              f"{per:.2f} | {took:.1f} |", flush=True)


if __name__ == "__main__":
    main()
