#!/usr/bin/env python3
"""What active health probes cost (issue #3): smtplb with N backends probed
every INTERVAL at depth rcpt (connect, banner, EHLO, MAIL, RCPT, RSET, QUIT),
no mail traffic, for a bounded time. Reports the daemon's CPU as a share of
one core (from /proc/PID/stat) and the probes it ran (from the admin API),
median over runs. All backends are names for one `smtplb sink` on
127.0.0.1, so only the prober's cost is in smtplb's figure.

  python3 bench/probe_cost.py [--backends 100] [--interval 1s] [--seconds 30] [--runs 3]
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
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from peers import cpu_seconds, free_port, wait_port  # noqa: E402


def config(port, admin_port, sink_port, backends, interval, workdir):
    lines = [
        "[server]", 'hostname = "lb.bench"', f'state_dir = "{workdir}"', 'tracking_log = ""',
        f'admin = "127.0.0.1:{admin_port}"', "",
        "[[listener]]", 'name = "in"', f'bind = "127.0.0.1:{port}"',
        'accepted_domains = ["example.net"]', 'pool = "hubs"', "",
        "[[pool]]", 'name = "hubs"',
        f'health = {{ depth = "rcpt", interval = "{interval}", timeout = "5s", '
        'rcpt_to = "postmaster@example.net" }', ""]
    for i in range(backends):
        lines += ["[[pool.backend]]", f'name = "b{i}"', f'address = "127.0.0.1:{sink_port}"', ""]
    return "\n".join(lines)


def haproxy_config(port, sink_port, backends, interval):
    servers = "\n".join(f"    server b{i} 127.0.0.1:{sink_port} check inter {interval}"
                         for i in range(backends))
    return f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout check 5s
frontend smtp
    bind 127.0.0.1:{port}
    default_backend sinks
backend sinks
    option smtpchk EHLO bench.invalid
{servers}
"""


def probes_run(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/v1/status", timeout=5) as r:
        return json.load(r)["probes_run"]


def measure(pid, sink_pid, seconds):
    cpu0, sink0, t0 = cpu_seconds(pid), cpu_seconds(sink_pid), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return (cpu_seconds(pid) - cpu0) / wall, (cpu_seconds(sink_pid) - sink0) / wall


def one_haproxy_run(smtplb, args, workdir):
    """HAProxy's smtpchk (connect, banner, EHLO, QUIT) on the same backends."""
    sink_port, port = free_port(), free_port()
    sink = subprocess.Popen([smtplb, "sink", "--listen", f"127.0.0.1:{sink_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(workdir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(haproxy_config(port, sink_port, args.backends, args.interval))
    proxy = subprocess.Popen(["haproxy", "-f", path, "-db"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_port(sink_port)
        wait_port(port)
        time.sleep(3)
        share, sink_share = measure(proxy.pid, sink.pid, args.seconds)
        return {"core_share": share, "sink_core_share": sink_share}
    finally:
        for p in (proxy, sink):
            p.terminate()
            p.wait(timeout=10)


def one_run(smtplb, args, workdir):
    sink_port, port, admin_port = free_port(), free_port(), free_port()
    sink = subprocess.Popen([smtplb, "sink", "--listen", f"127.0.0.1:{sink_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(workdir, "probe.toml")
    with open(path, "w") as f:
        f.write(config(port, admin_port, sink_port, args.backends, args.interval, workdir))
    lb = subprocess.Popen([smtplb, "run", "--config", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_port(sink_port)
        wait_port(port)
        time.sleep(3)  # past the first, spread-out round
        cpu0, probes0, t0 = cpu_seconds(lb.pid), probes_run(admin_port), time.monotonic()
        sink_cpu0 = cpu_seconds(sink.pid)
        time.sleep(args.seconds)
        cpu1, probes1, t1 = cpu_seconds(lb.pid), probes_run(admin_port), time.monotonic()
        sink_cpu1 = cpu_seconds(sink.pid)
        wall = t1 - t0
        return {"core_share": (cpu1 - cpu0) / wall, "probes_per_s": (probes1 - probes0) / wall,
                "sink_core_share": (sink_cpu1 - sink_cpu0) / wall}
    finally:
        for p in (lb, sink):
            p.terminate()
            p.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", default="build/src/app/smtplb")
    parser.add_argument("--backends", type=int, default=100)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.backends <= 1000 or not 1 <= args.seconds <= 600:
        parser.error("--backends 1-1000, --seconds 1-600")
    runs, haproxy_runs = [], []
    with_haproxy = shutil.which("haproxy") is not None
    with tempfile.TemporaryDirectory(prefix="smtplb-probe-bench-") as workdir:
        for _ in range(args.runs):  # interleaved, so both see the same machine
            runs.append(one_run(os.path.abspath(args.smtplb), args, workdir))
            if with_haproxy:
                haproxy_runs.append(one_haproxy_run(os.path.abspath(args.smtplb), args, workdir))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{args.backends} backends, depth rcpt, interval {args.interval}, "
          f"{args.seconds:.0f} s x {args.runs} runs (medians)")
    print(f"  probes/s:                 {med['probes_per_s']:.1f}")
    print(f"  smtplb CPU, % of a core:  {100 * med['core_share']:.2f}")
    print(f"  sink CPU, % of a core:    {100 * med['sink_core_share']:.2f}")
    print(f"  per probe (smtplb):       {1e6 * med['core_share'] / max(med['probes_per_s'], 1e-9):.0f} us")
    if haproxy_runs:
        h = statistics.median(r["core_share"] for r in haproxy_runs)
        hs = statistics.median(r["sink_core_share"] for r in haproxy_runs)
        print(f"  HAProxy smtpchk (EHLO only), same backends and interval:")
        print(f"    HAProxy CPU, % of a core: {100 * h:.2f}   sink: {100 * hs:.2f}")
        print(f"    ratio smtplb/HAProxy:     {med['core_share'] / max(h, 1e-9):.2f}")


if __name__ == "__main__":
    main()
