#!/usr/bin/env python3
"""Side-by-side benchmark on loopback (issue #2 method):

  smtp-source -> three smtp-sink backends, directly (the limit)
  smtp-source -> HAProxy (mode tcp, roundrobin) -> the same sinks
  smtp-source -> smtplb (smtp mode, XCLIENT, per-message round robin) -> the same sinks
  smtp-source -> smtplb (tcp mode, per-connection round robin) -> the same sinks

Workloads: 20 sessions reused for many 4 KiB messages (-d), and a new
connection per message. Runs are interleaved; medians are reported with
messages/s, CPU seconds of the proxy per 1000 messages (from /proc/PID/stat),
and RSS per idle client connection (a fresh proxy process each time).
Every load is bounded in count and time; only 127.0.0.1 is used.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Proc:
    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_sinks(n=3):
    sinks = []
    for _ in range(n):
        port = free_port()
        # Root is needed for -u; the sink drops to nobody.
        sinks.append((port, Proc(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"])))
    for port, _ in sinks:
        wait_port(port)
    return sinks


def start_haproxy(workdir, sink_ports, threads=None):
    port = free_port()
    cfg = os.path.join(workdir, "haproxy.cfg")
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} check inter 2s"
                        for i, p in enumerate(sink_ports))
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn 9000
{f"    nbthread {threads}" if threads else ""}
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp
    bind 127.0.0.1:{port}
    default_backend sinks
backend sinks
    balance roundrobin
    option smtpchk EHLO bench.invalid
{servers}
""")
    proc = Proc(["haproxy", "-f", cfg, "-db"])
    wait_port(port)
    return port, proc


def start_smtplb(smtplb, workdir, sink_ports, mode="smtp", listener_extra=""):
    """smtplb in front of the sinks; `listener_extra`: more [[listener]] lines."""
    port = free_port()
    cfg = os.path.join(workdir, "smtplb.toml")
    backends = "\n".join(f'[[pool.backend]]\nname = "s{i}"\naddress = "127.0.0.1:{p}"\n'
                         for i, p in enumerate(sink_ports))
    with open(cfg, "w") as f:
        f.write(f"""[server]
hostname = "lb.bench.invalid"
state_dir = "{workdir}"
tracking_log = "{workdir}/tracking.jsonl"
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
accepted_domains = ["example.net"]
pool = "sinks"
mode = "{mode}"
client_identity = "{"xclient" if mode == "smtp" else "none"}"
max_connections = 15000
max_connections_per_client = 15000
{listener_extra}
[[pool]]
name = "sinks"
algorithm = "round_robin"
{backends}
""")
    proc = Proc([smtplb, "run", "--config", cfg])
    wait_port(port)
    return port, proc


def smtp_source(port, messages, sessions, reuse, size, timeout):
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", "bench@example.org", "-t", "user@example.net"]
    if reuse:
        args.insert(1, "-d")
    args.append(f"127.0.0.1:{port}")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_load(targets, messages, sessions, reuse, size, timeout):
    """targets: list of ports; the load is split evenly across them."""
    procs = []
    start = time.monotonic()
    for i, port in enumerate(targets):
        m = messages // len(targets) + (1 if i < messages % len(targets) else 0)
        s = max(1, sessions // len(targets) + (1 if i < sessions % len(targets) else 0))
        procs.append(smtp_source(port, m, s, reuse, size, timeout))
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise RuntimeError("smtp-source timed out")
        if p.returncode != 0:
            raise RuntimeError("smtp-source failed: " + err.decode(errors="replace")[-500:])
    return time.monotonic() - start


def idle_rss_per_connection(pid, port, count):
    """KiB of proxy RSS per idle client connection that has seen the greeting."""
    time.sleep(0.3)
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
        for s in socks:
            s.recv(512)  # greeting: the proxy has set the session up
        time.sleep(0.5)
        after = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smtplb", default=os.path.join(os.path.dirname(__file__), "..", "build", "src", "app", "smtplb"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--new-conn-messages", type=int, default=8000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--idle", type=int, default=500)  # HAProxy needs a sink connection per idle client; smtp-sink stalls past a few hundred each
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("--haproxy-threads", type=int, help="nbthread for HAProxy (default: its own, one per core)")
    ap.add_argument("--configs", default="direct,haproxy,smtplb,smtplb-tcp",
                    help="comma-separated subset of direct,haproxy,smtplb,smtplb-tcp")
    ap.add_argument("--workloads", default="reused,new-conn", help="reused, new-conn or both")
    args = ap.parse_args()
    for tool in ("smtp-source", "smtp-sink", "haproxy"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (scripts/bootstrap.sh all)")
    smtplb = os.path.abspath(args.smtplb)
    workdir = tempfile.mkdtemp(prefix="smtplb-bench-")
    workloads = [w for w in [("reused", True, args.messages),
                             ("new-conn", False, args.new_conn_messages)]
                 if w[0] in args.workloads.split(",")]
    configs = args.configs.split(",")
    results = {w[0]: {c: {"rate": [], "cpu": [], "sink_cpu": [], "busy": []} for c in configs}
               for w in workloads}
    sinks = start_sinks()
    sink_ports = [p for p, _ in sinks]
    try:
        for run in range(args.runs):
            for name, reuse, messages in workloads:
                # Interleave configurations inside each run.
                order = configs[run % len(configs):] + configs[:run % len(configs)]
                for config in order:
                    proxy = None
                    if config == "haproxy":
                        port, proxy = start_haproxy(workdir, sink_ports, args.haproxy_threads)
                        targets = [port]
                    elif config.startswith("smtplb"):
                        mode = "tcp" if config == "smtplb-tcp" else "smtp"
                        port, proxy = start_smtplb(smtplb, workdir, sink_ports, mode)
                        targets = [port]
                    else:
                        targets = sink_ports
                    try:
                        cpu0 = cpu_seconds(proxy.pid) if proxy else 0
                        sink0 = sum(cpu_seconds(s.pid) for _, s in sinks)
                        gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        elapsed = run_load(targets, messages, args.sessions, reuse, args.size, 300)
                        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        cpu1 = cpu_seconds(proxy.pid) if proxy else 0
                        sink1 = sum(cpu_seconds(s.pid) for _, s in sinks)
                    finally:
                        if proxy:
                            proxy.stop()
                    rate = messages / elapsed
                    results[name][config]["rate"].append(rate)
                    results[name][config]["cpu"].append((cpu1 - cpu0) * 1000 / messages if proxy else None)
                    results[name][config]["sink_cpu"].append((sink1 - sink0) * 1000 / messages)
                    generator = (gen1.ru_utime + gen1.ru_stime) - (gen0.ru_utime + gen0.ru_stime)
                    # How busy the two cores were: all three parties' CPU over wall time.
                    results[name][config]["busy"].append(
                        ((cpu1 - cpu0) + (sink1 - sink0) + generator) / elapsed)
                    print(f"run {run + 1} {name:8} {config:10} {rate:9.0f} msg/s"
                          + (f"  {(cpu1 - cpu0) * 1000 / messages:.3f} CPU-s/1000" if proxy else ""),
                          flush=True)
        idle = {}
        for config in [c for c in ("haproxy", "smtplb") if c in configs and args.idle]:
            values = []
            for _ in range(args.runs):
                if config == "haproxy":
                    port, proxy = start_haproxy(workdir, sink_ports)
                else:
                    port, proxy = start_smtplb(smtplb, workdir, sink_ports)
                try:
                    values.append(idle_rss_per_connection(proxy.pid, port, args.idle))
                finally:
                    proxy.stop()
            idle[config] = statistics.median(values)
            print(f"idle {config:8} {idle[config]:.2f} KiB per connection", flush=True)
    finally:
        for _, s in sinks:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"Medians of {args.runs} interleaved runs; {args.sessions} sessions, {args.size}-byte messages, "
          f"3 smtp-sink backends, 2 cores shared by everything.")
    print()
    print("| workload | configuration | messages/s | × direct | × HAProxy | proxy CPU-s per 1000 msgs | × HAProxy CPU | backends' CPU-s per 1000 msgs | cores busy (of 2) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for name, _, _ in workloads:
        base = "direct" if "direct" in configs else configs[0]
        direct = statistics.median(results[name][base]["rate"])
        hap = "haproxy" if "haproxy" in configs else configs[0]
        hap_rate = statistics.median(results[name][hap]["rate"])
        hap_cpu = statistics.median(results[name][hap]["cpu"]) if hap != "direct" else 1
        for config in configs:
            rate = statistics.median(results[name][config]["rate"])
            cpu = None if config == "direct" else statistics.median(results[name][config]["cpu"])
            sink_cpu = statistics.median(results[name][config]["sink_cpu"])
            summary[f"{name}/{config}"] = {"rate": rate, "cpu_per_1000": cpu,
                                           "backend_cpu_per_1000": sink_cpu}
            print(f"| {name} | {config} | {rate:.0f} | {rate / direct:.2f} | {rate / hap_rate:.2f} | "
                  + ("–" if cpu is None else f"{cpu:.3f}") + " | "
                  + ("–" if cpu is None else f"{cpu / hap_cpu:.2f}") + f" | {sink_cpu:.3f} | "
                  + f"{statistics.median(results[name][config]['busy']):.2f} |")
    print()
    print("| idle client connections | KiB RSS per connection |")
    print("|---|---:|")
    for config, v in idle.items():
        print(f"| {config} | {v:.2f} |")
        summary[f"idle/{config}"] = v
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
