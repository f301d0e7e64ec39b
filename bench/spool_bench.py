#!/usr/bin/env python3
"""The spool's two rates, side by side in one run (issue #4 method):

  accept:  smtp-source -> smtplb, every backend down, on_unavailable = "spool"
           (each message written and fsync'd, file and directory, before 250)
     vs    smtp-source -> Postfix as a relay whose next hop is down
           (its own queue, on the same disk)
  drain:   the spooled messages delivered when three smtp-sink backends
           come up (rate from the tracking log's delivery timestamps)
     vs    smtp-source -> smtplb -> the same sinks, live (the relay rate)

4 KiB messages, SESSIONS concurrent sessions reusing their connections, the
spool's concurrency set to the same number. Runs are interleaved; medians
and ratios are printed. Loopback only; every load bounded in count and time.
Needs root (Postfix) and postfix's smtp-source/smtp-sink.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from peers import (BUILT_SMTPLB, Proc, RelayPostfix, free_port, run_load,  # noqa: E402
                   start_sinks, wait_port)


def smtplb_config(workdir, port, backend_ports, sessions):
    backends = "\n".join(f'[[pool.backend]]\nname = "s{i}"\naddress = "127.0.0.1:{p}"\n'
                         for i, p in enumerate(backend_ports))
    return f"""[server]
hostname = "lb.bench.invalid"
state_dir = "{workdir}"
tracking_log = "{workdir}/tracking.jsonl"
admin = ""
[spool]
concurrency = {sessions}
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
accepted_domains = ["example.net"]
pool = "sinks"
max_connections_per_client = 15000
[[pool]]
name = "sinks"
on_unavailable = "spool"
connect_timeout = "1s"
health = {{ interval = "1s", down_interval = "500ms", rise = 1, fall = 1 }}
{backends}
"""


def queued(workdir):
    path = os.path.join(workdir, "spool", "queue")
    return len(os.listdir(path)) if os.path.isdir(path) else 0


def delivery_rate(tracking, messages):
    """Messages per second between the first and the last delivery from the spool."""
    times = []
    with open(tracking) as f:
        for line in f:
            r = json.loads(line)
            if r.get("result") == "delivered" and "spool_id" in r:
                times.append(r["time_ms"])
    if len(times) < messages:
        raise RuntimeError(f"only {len(times)} of {messages} delivered from the spool")
    return (len(times) - 1) / max((max(times) - min(times)) / 1000.0, 1e-3)


def spool_run(smtplb, args):
    """Accept rate with backends down, then drain rate when they come up."""
    workdir = tempfile.mkdtemp(prefix="smtplb-spool-bench-")
    port = free_port()
    backend_ports = [free_port() for _ in range(3)]
    cfg = os.path.join(workdir, "smtplb.toml")
    with open(cfg, "w") as f:
        f.write(smtplb_config(workdir, port, backend_ports, args.sessions))
    lb = Proc([smtplb, "run", "--config", cfg])
    sinks = []
    try:
        wait_port(port)
        time.sleep(1.5)  # the probes have seen every backend down
        elapsed = run_load([port], args.messages, args.sessions, True, args.size, 300)
        accept = args.messages / elapsed
        if queued(workdir) != args.messages:
            raise RuntimeError(f"{queued(workdir)} spooled of {args.messages}")
        # Backends come up on the configured ports.
        for p in backend_ports:
            sinks.append(Proc(["smtp-sink", "-u", "nobody", f"127.0.0.1:{p}", "1024"]))
        deadline = time.time() + 300
        while queued(workdir) and time.time() < deadline:
            time.sleep(0.1)
        if queued(workdir):
            raise RuntimeError("the spool did not drain in 300 s")
        time.sleep(1.2)  # the tracking log is flushed once a second
        drain = delivery_rate(os.path.join(workdir, "tracking.jsonl"), args.messages)
        # Live relay rate through the same daemon, backends up.
        live = args.messages / run_load([port], args.messages, args.sessions, True, args.size, 300)
        return accept, drain, live
    finally:
        lb.stop()
        for s in sinks:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def postfix_run(postfix, args):
    postfix.empty_queue()
    elapsed = run_load([postfix.port], args.messages, args.sessions, True, args.size, 300)
    return args.messages / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "postfix"):
        if not shutil.which(tool):
            sys.exit(f"spool bench: {tool} not found (scripts/bootstrap.sh all)")
    smtplb = os.path.abspath(args.smtplb)
    pf_dir = tempfile.mkdtemp(prefix="smtplb-spool-bench-pf-")
    postfix = RelayPostfix(pf_dir, free_port())
    postfix.start()
    accept, drain, live, pf_accept = [], [], [], []
    try:
        for run in range(args.runs):
            order = ["smtplb", "postfix"] if run % 2 == 0 else ["postfix", "smtplb"]
            for who in order:
                if who == "postfix":
                    pf_accept.append(postfix_run(postfix, args))
                    print(f"run {run + 1} postfix accept {pf_accept[-1]:7.0f} msg/s", flush=True)
                else:
                    a, d, l = spool_run(smtplb, args)
                    accept.append(a)
                    drain.append(d)
                    live.append(l)
                    print(f"run {run + 1} smtplb  accept {a:7.0f} msg/s  drain {d:7.0f} msg/s  "
                          f"live {l:7.0f} msg/s", flush=True)
    finally:
        postfix.empty_queue()
        postfix.stop()
        shutil.rmtree(pf_dir, ignore_errors=True)
    m = {k: statistics.median(v) for k, v in
         {"accept": accept, "drain": drain, "live": live, "postfix_accept": pf_accept}.items()}
    # Ratios within each run (same moment, same noise), then their median.
    accept_ratio = statistics.median(a / p for a, p in zip(accept, pf_accept))
    drain_ratio = statistics.median(d / l for d, l in zip(drain, live))
    print()
    print(f"Medians of {args.runs} interleaved runs; {args.messages} messages of {args.size} bytes, "
          f"{args.sessions} sessions reusing connections, 2 cores shared by everything.")
    print()
    print("| rate | messages/s | ratio |")
    print("|---|---:|---:|")
    print(f"| smtplb spooled accept (backends down, fsync per message) | {m['accept']:.0f} | "
          f"{accept_ratio:.2f}× Postfix |")
    print(f"| Postfix relay accept (next hop down) | {m['postfix_accept']:.0f} | 1.00 |")
    print(f"| smtplb drain from the spool (backends back) | {m['drain']:.0f} | "
          f"{drain_ratio:.2f}× live |")
    print(f"| smtplb live relay | {m['live']:.0f} | 1.00 |")
    print()
    print("Ratios are medians of the per-run ratios.")
    if args.json:
        m.update({"accept_ratio": accept_ratio, "drain_ratio": drain_ratio})
        with open(args.json, "w") as f:
            json.dump(m, f, indent=2)


if __name__ == "__main__":
    main()
