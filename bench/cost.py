#!/usr/bin/env python3
"""Where a proxy's time per message goes, for comparing builds: user and
system CPU, minor page faults, voluntary context switches (sleeps) and
involuntary ones (preemptions) per message of the proxy process (from /proc/PID/stat and status), with the
sinks' and smtp-source's CPU per message and the machine's idle share
(/proc/stat) beside them. Each configuration gets fresh sinks and a
200-message warm-up; runs are interleaved and medians reported. Use it to compare two smtplb binaries (a
change and its parent) with HAProxy as the yardstick; bench.py is the
published side-by-side.

  python3 bench/cost.py --configs haproxy,smtp=build-old/src/app/smtplb,smtp \\
      --messages 3000 --size 102400 --runs 5 [--syscalls]

`--strict-sinks` runs the backends as `smtplb sink --xclient-strict` (of
--smtplb) instead of smtp-sink. A configuration is `haproxy`, `haproxy1` (one thread), or `MODE[=BINARY]`:
MODE is `smtp` or `tcp`, then optionally server.threads and `pN` for
busy_poll_us = N (`tcp2p0`: two loops, no busy poll); BINARY defaults to
--smtplb.
"""
import argparse
import os
import re
import resource
import signal
import subprocess
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import (BUILT_SMTPLB, STRICT_BALANCER_ADDRESS, run_load,  # noqa: E402
                   start_haproxy, start_sinks, start_smtplb)

TICK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(user ticks, system ticks, minor faults) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12]), int(fields[7])


def context_switches(pid):
    """(sleeps, preemptions) of all the process's threads so far: voluntary
    and involuntary context switches."""
    totals = [0, 0]
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    totals[0] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    totals[1] += int(line.split()[1])
    return totals


def machine_ticks():
    """(all, idle) CPU ticks of the machine so far."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]  # idle and iowait


def start_syscall_count(pid, out):
    """perf counting every system call the proxy's threads enter, until stopped."""
    return subprocess.Popen(["perf", "stat", "-x", ",", "-o", out, "-p", str(pid),
                             "-e", "syscalls:sys_enter_*,context-switches"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_syscall_count(perf, out):
    """{system call name: count} from a perf started by start_syscall_count."""
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=30)
    counts = {}
    with open(out) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[0].isdigit():
                name = fields[2].removeprefix("syscalls:sys_enter_")
                counts[name] = int(fields[0])
    return counts


def peers_seconds(sinks):
    sink_ticks = sum(sum(stat(s.pid)[:2]) for _, s in sinks)
    generator = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sink_ticks / TICK, generator.ru_utime + generator.ru_stime


def start(config, workdir, ports, default_binary, strict=False):
    if config == "haproxy":
        return start_haproxy(workdir, ports)
    if config == "haproxy1":
        return start_haproxy(workdir, ports, threads=1)
    name, _, binary = config.partition("=")
    # "smtp2": smtp mode with server.threads = 2; "tcp2p0": and busy_poll_us = 0
    match = re.fullmatch(r"(smtp|tcp)(\d+)?(?:p(\d+))?", name)
    if not match:
        sys.exit(f"cost: unknown configuration {config!r}")
    mode, threads, busy_poll = match.groups()
    return start_smtplb(binary or default_binary, workdir, ports, mode,
                        threads=int(threads) if threads else None,
                        busy_poll_us=int(busy_poll) if busy_poll else None,
                        source_address=STRICT_BALANCER_ADDRESS if strict else None)


def measure(config, args):
    sinks = start_sinks(strict_smtplb=args.smtplb if args.strict_sinks else None)
    workdir = tempfile.mkdtemp(prefix="cost-")
    port, proc = start(config, workdir, [p for p, _ in sinks],
                       args.smtplb, args.strict_sinks)
    try:
        time.sleep(0.5)
        run_load([port], 200, args.sessions, True, args.size, 300)
        sink0, gen0 = peers_seconds(sinks)
        user0, sys0, faults0 = stat(proc.pid)
        switches0, machine0 = context_switches(proc.pid), machine_ticks()
        perf_out = os.path.join(workdir, "perf.csv")
        perf = start_syscall_count(proc.pid, perf_out) if args.syscalls else None
        if perf:
            time.sleep(1)  # perf attached to every thread
        began = time.monotonic()
        run_load([port], args.messages, args.sessions, True, args.size, 300)
        elapsed = time.monotonic() - began
        calls = stop_syscall_count(perf, perf_out) if perf else {}
        user1, sys1, faults1 = stat(proc.pid)
        switches1, machine1 = context_switches(proc.pid), machine_ticks()
        sink1, gen1 = peers_seconds(sinks)
    finally:
        proc.stop()
        for _, s in sinks:
            s.stop()
    per = 1e6 / args.messages  # seconds -> microseconds per message
    return {"rate": args.messages / elapsed,
            "user": (user1 - user0) / TICK * per, "sys": (sys1 - sys0) / TICK * per,
            "faults": (faults1 - faults0) / args.messages,
            "sleeps": (switches1[0] - switches0[0]) / args.messages,
            "preempted": (switches1[1] - switches0[1]) / args.messages,
            "idle": 100 * (machine1[1] - machine0[1]) / max(1, machine1[0] - machine0[0]),
            "sinks": (sink1 - sink0) * per, "generator": (gen1 - gen0) * per,
            **{f"call:{name}": n / args.messages for name, n in calls.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="haproxy,smtp")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--strict-sinks", action="store_true",
                    help="backends are `smtplb sink --xclient-strict` of --smtplb, not smtp-sink")
    ap.add_argument("--syscalls", action="store_true",
                    help="also count the proxy's system calls per message (perf stat)")
    args = ap.parse_args()
    args.smtplb = os.path.abspath(args.smtplb)
    if not (1 <= args.messages <= 200000 and 1 <= args.runs <= 20):
        sys.exit("cost: --messages 1..200000, --runs 1..20")
    configs = args.configs.split(",")
    results = {c: [] for c in configs}
    for _ in range(args.runs):
        for config in configs:
            results[config].append(measure(config, args))
    print("| configuration | messages/s | proxy user µs/msg | proxy system µs/msg "
          "| proxy minor faults/msg | proxy sleeps/msg | proxy preemptions/msg | sinks µs/msg | smtp-source µs/msg "
          "| machine idle % |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for config in configs:
        med = {k: statistics.median(r[k] for r in results[config]) for k in results[config][0]}
        print(f"| {config} | {med['rate']:.0f} | {med['user']:.1f} | {med['sys']:.1f} | "
              f"{med['faults']:.2f} | {med['sleeps']:.2f} | {med['preempted']:.2f} | {med['sinks']:.1f} | "
              f"{med['generator']:.1f} | {med['idle']:.1f} |")
    if args.syscalls:
        print_syscalls(configs, results)


def print_syscalls(configs, results):
    """System calls per message by name (medians), those above 0.05 in any configuration."""
    def median(config, key):
        return statistics.median(r.get(key, 0) for r in results[config])
    names = sorted({k for c in configs for r in results[c] for k in r if k.startswith("call:")})
    shown = [n for n in names if n != "call:context-switches"
             and max(median(c, n) for c in configs) >= 0.05]
    print()
    print("| system call per message | " + " | ".join(configs) + " |")
    print("|---|" + "---:|" * len(configs))
    for name in shown:
        print(f"| {name[5:]} | " + " | ".join(f"{median(c, name):.2f}" for c in configs) + " |")
    total = {c: sum(median(c, n) for n in names if n != "call:context-switches") for c in configs}
    print("| **all** | " + " | ".join(f"**{total[c]:.2f}**" for c in configs) + " |")
    print("| context switches | " + " | ".join(f"{median(c, 'call:context-switches'):.2f}"
                                              for c in configs) + " |")


if __name__ == "__main__":
    main()
