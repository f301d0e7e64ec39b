#!/usr/bin/env python3
"""What one identity per backend connection costs when clients differ.

`bench.py --strict-sinks` measures smtp-source's sessions, which all come
from 127.0.0.1 with one HELO: one client, whose connections stay reusable.
Here many distinct clients (127.0.1.1, 127.0.1.2, ..., each with its own
HELO) send through smtplb to `smtplb sink --xclient-strict` backends (XCLIENT
as Postfix's smtpd allows it: a connection that speaks for one client cannot
take another's XCLIENT). A build that hands one backend connection to several
clients (before 2026-12-03) looks cheaper and is wrong; the current one opens
connections per client where the backend demands it.

Workloads: `reused` (each client one session, several messages) and
`new-conn` (each message its own session). Reports, per smtplb build, the
medians over interleaved runs of messages per second and smtplb's CPU
microseconds per message, and each build's ratio to the first. The clients
are Python threads, so the rate is bounded by them: CPU per message is the
figure to read. Loopback only; bounded in count and time. Needs root.

  python3 bench/identity_cost.py --configs old=OLD/smtplb,new=build/src/app/smtplb
"""
import argparse
import os
import shutil
import smtplib
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (BUILT_SMTPLB, STRICT_BALANCER_ADDRESS, cpu_seconds,  # noqa: E402
                   start_sinks, start_smtplb)


def client(port, index, messages, reuse, failures):
    source = f"127.0.1.{index + 1}"
    helo = f"client-{index}.bench.invalid"
    body = "Subject: identity cost\r\n\r\n" + "x" * 1000 + "\r\n"

    def session(count):
        with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, source_address=(source, 0),
                          timeout=60) as s:
            for _ in range(count):
                try:
                    s.sendmail("app@example.org", ["user@example.net"], body)
                except smtplib.SMTPException:
                    failures.append(index)

    if reuse:
        session(messages)
    else:
        for _ in range(messages):
            session(1)


def measure(binary, sinks, clients, messages, reuse, **smtplb_options):
    """One run; `smtplb_options` go to peers.start_smtplb (by default the
    source address the strict sinks authorise)."""
    smtplb_options.setdefault("source_address", STRICT_BALANCER_ADDRESS)
    workdir = tempfile.mkdtemp(prefix="idcost-")
    try:
        port, proc = start_smtplb(binary, workdir, [p for p, _ in sinks], "smtp",
                                  **smtplb_options)
        try:
            cpu0, start = cpu_seconds(proc.pid), time.monotonic()
            failures = []
            threads = [threading.Thread(target=client, args=(port, i, messages, reuse, failures))
                       for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=600)
            elapsed, cpu = time.monotonic() - start, cpu_seconds(proc.pid) - cpu0
        finally:
            proc.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = clients * messages
    return {"rate": total / elapsed, "cpu_us": cpu / total * 1e6, "failed": len(failures)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=f"new={BUILT_SMTPLB}",
                    help="comma-separated NAME=BINARY; ratios are to the first")
    ap.add_argument("--clients", type=int, default=50, help="distinct clients (at most 250)")
    ap.add_argument("--messages", type=int, default=20, help="messages per client")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workloads", default="reused,new-conn")
    ap.add_argument("--sink-smtplb", help="the binary whose sink runs (default: the last config)")
    args = ap.parse_args()
    configs = [c.partition("=")[::2] for c in args.configs.split(",")]
    clients = max(1, min(args.clients, 250))
    sinks = start_sinks(strict_smtplb=args.sink_smtplb or configs[-1][1])
    binaries = dict(configs)
    try:
        results = run_interleaved(
            args.runs, args.workloads.split(","), list(binaries),
            lambda name, workload: measure(binaries[name], sinks, clients, args.messages,
                                           workload == "reused"))
    finally:
        for _, p in sinks:
            p.stop()
    print(f"\n{clients} clients x {args.messages} messages, {args.runs} interleaved runs; "
          "medians; ratios to the first configuration")
    print_medians(results, args.workloads.split(","), [name for name, _ in configs])


def run_interleaved(runs, workloads, names, one):
    """{(workload, name): [one(name, workload) for each run]}, the runs
    interleaved so that a change in the machine's load touches every name."""
    results = {}
    for run in range(runs):
        for workload in workloads:
            for name in names:
                r = one(name, workload)
                results.setdefault((workload, name), []).append(r)
                print(f"run {run + 1} {workload:8} {name:8} {r['rate']:8.0f} msg/s "
                      f"{r['cpu_us']:7.0f} us/msg  failed {r['failed']}", flush=True)
    return results


def print_medians(results, workloads, names, column="build"):
    """The table of medians: results[(workload, name)] is a list of measure()s;
    ratios are to the first name."""
    print(f"{'workload':10} {column:8} {'msg/s':>8} {'ratio':>6} {'CPU us/msg':>11} {'ratio':>6} "
          f"{'failed':>7}")
    for workload in workloads:
        base = None
        for name in names:
            runs = results[(workload, name)]
            rate = statistics.median(r["rate"] for r in runs)
            cpu = statistics.median(r["cpu_us"] for r in runs)
            base = base or (rate, cpu)
            # A run too short for the CPU clock's ticks measures 0: no ratio.
            cpu_ratio = cpu / base[1] if base[1] else float("nan")
            print(f"{workload:10} {name:8} {rate:8.0f} {rate / base[0]:6.2f} {cpu:11.0f} "
                  f"{cpu_ratio:6.2f} {sum(r['failed'] for r in runs):7}")


if __name__ == "__main__":
    main()
