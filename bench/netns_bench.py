"""`bench.py --netns`: transparent mode beside XCLIENT mode, in one run, in
network namespaces (tests/integration/netns_lab.py):

  client ns:   smtp-source
  balancer ns: smtplb, its listener on the balancer's client-side address
  backend ns:  the same three smtp-sinks for every configuration

Configurations (--netns-configs): `xclient` (client_identity = "xclient",
backend connections from the balancer's address), `transparent` (from the
client's address, IP_TRANSPARENT, the simple routing recipe), and optionally
`transparent+xclient`, `tcp` and `tcp-transparent` (tcp mode). Runs are
interleaved, the order rotating; reported: medians of messages/s and of
smtplb's CPU seconds per 1000 messages, and per run each configuration's
ratio to the first one (median, lowest–highest). Bounded in count and time;
nothing outside the lab's namespaces is touched. Needs root.
"""
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from peers import cpu_seconds, knows_key, require, tree_cpu_seconds  # noqa: E402
from netns_lab import Lab, lab_available  # noqa: E402

PORT = 25
CONFIGS = {
    # name: (mode, client_identity)
    "xclient": ("smtp", "xclient"),
    "transparent": ("smtp", "transparent"),
    "transparent+xclient": ("smtp", "transparent+xclient"),
    "tcp": ("tcp", "none"),
    "tcp-transparent": ("tcp", "transparent"),
}
DEFAULT_CONFIGS = "xclient,transparent"


def smtplb_config(lab, workdir, smtplb, mode, identity):
    extra = ""
    if mode == "smtp" and knows_key(smtplb, "[[listener]]", "resolve_client_names = false"):
        extra = "resolve_client_names = false\n"  # no DNS in the lab
    backends = "\n".join(f'[[pool.backend]]\nname = "s{i}"\naddress = "{a}:{PORT}"\n'
                         for i, a in enumerate(lab.backend_addrs))
    path = os.path.join(workdir, "smtplb.toml")
    with open(path, "w") as f:
        f.write(f"""[server]
hostname = "lb.bench.invalid"
state_dir = "{workdir}"
tracking_log = "{workdir}/tracking.jsonl"
admin = ""

[[listener]]
name = "bench"
bind = "{lab.balancer_client_side_addr}:{PORT}"
accepted_domains = ["example.net"]
pool = "sinks"
mode = "{mode}"
client_identity = "{identity}"
max_connections = 15000
max_connections_per_client = 15000
{extra}
[[pool]]
name = "sinks"
algorithm = "round_robin"

{backends}
""")
    return path


class Balancer:
    """smtplb in the balancer namespace, fresh for one measurement."""

    def __init__(self, lab, workdir, smtplb, config):
        mode, identity = CONFIGS[config]
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix="lb-", dir=workdir)
        self.tracking = os.path.join(self.dir, "tracking.jsonl")
        cfg = smtplb_config(lab, self.dir, smtplb, mode, identity)
        self.stderr = open(os.path.join(self.dir, "smtplb.err"), "wb")
        # `ip netns exec` execs smtplb: this pid is smtplb's.
        self.proc = lab.popen("balancer", [smtplb, "run", "--config", cfg],
                              stdout=self.stderr, stderr=self.stderr)
        try:
            lab.wait_for_port("client", lab.balancer_client_side_addr, PORT, proc=self.proc)
        except RuntimeError:
            self.stop()
            with open(os.path.join(self.dir, "smtplb.err"), errors="replace") as f:
                raise RuntimeError(f"smtplb ({config}) did not start:\n" + f.read()[-2000:])

    def relayed(self):
        """Messages the tracking log says reached a backend (smtp mode)."""
        with open(self.tracking, errors="replace") as f:
            return sum('"result":"relayed"' in line for line in f)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_load(lab, messages, sessions, reuse, size, timeout=300):
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", "bench@example.org", "-t", "user@example.net"]
    if reuse:
        args.insert(1, "-d")
    args.append(f"{lab.balancer_client_side_addr}:{PORT}")
    start = time.monotonic()
    r = lab.run("client", args, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: " + r.stderr.decode(errors="replace")[-500:])
    return time.monotonic() - start


def measure(lab, args, workdir, sinks, config, workload):
    reuse = workload != "new-conn"
    messages = {"reused": args.messages, "new-conn": args.new_conn_messages,
                "large": args.large_messages}[workload]
    size = args.large_size if workload == "large" else args.size
    balancer = Balancer(lab, workdir, args.smtplb, config)
    try:
        cpu0 = tree_cpu_seconds(balancer.proc.pid)
        sink0 = sum(cpu_seconds(s.pid) for s in sinks)
        elapsed = run_load(lab, messages, args.sessions, reuse, size)
        cpu1 = tree_cpu_seconds(balancer.proc.pid)
        sink1 = sum(cpu_seconds(s.pid) for s in sinks)
        # A mode that fails fast (replies not routed back) must not look fast.
        if balancer.mode == "smtp" and balancer.relayed() != messages:
            raise RuntimeError(f"{config}: {balancer.relayed()} of {messages} messages relayed")
    finally:
        balancer.stop()
    return {"rate": messages / elapsed, "cpu": (cpu1 - cpu0) * 1000 / messages,
            "sink_cpu": (sink1 - sink0) * 1000 / messages}


def spread(values):
    return f"{min(values):.2f}–{max(values):.2f}" if values else "–"


def report(results, configs, workloads, args):
    base = configs[0]
    print()
    print(f"Network namespaces (client, balancer, backend; veth); medians of {args.runs} "
          f"interleaved runs; {args.sessions} sessions; {args.size}-byte messages "
          f"({args.large_size} for `large`); the same 3 "
          "smtp-sink backends; 2 cores shared by everything.")
    print()
    print(f"| workload | configuration | messages/s | smtplb CPU-s per 1000 msgs | backends' CPU-s "
          f"per 1000 msgs | × {base} rate (range) | × {base} CPU (range) |")
    print("|---|---|---:|---:|---:|---|---|")
    summary = {}
    for w in workloads:
        for c in configs:
            r, b = results[w][c], results[w][base]
            rates = [x / y for x, y in zip(r["rate"], b["rate"]) if y]
            cpus = [x / y for x, y in zip(r["cpu"], b["cpu"]) if y]
            entry = {"rate": statistics.median(r["rate"]), "cpu_per_1000": statistics.median(r["cpu"]),
                     "backend_cpu_per_1000": statistics.median(r["sink_cpu"]),
                     f"x_{base}_rate_runs": rates, f"x_{base}_cpu_runs": cpus}
            summary[f"netns-{w}/{c}"] = entry
            ratio = "–" if c == base else (f"{statistics.median(rates):.3f} ({spread(rates)})")
            cpu_ratio = "–" if c == base else (f"{statistics.median(cpus):.3f} ({spread(cpus)})")
            print(f"| {w} | {c} | {entry['rate']:.0f} | {entry['cpu_per_1000']:.3f} | "
                  f"{entry['backend_cpu_per_1000']:.3f} | {ratio} | {cpu_ratio} |")
    return summary


def main(args):
    ok, reason = lab_available()
    if not ok:
        sys.exit(f"bench --netns: {reason}")
    require("smtp-source", "smtp-sink")
    configs = args.netns_configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"bench --netns: unknown configuration {c} (one of {', '.join(CONFIGS)})")
    workloads = args.workloads.split(",")
    for w in workloads:
        if w not in ("reused", "new-conn", "large"):
            sys.exit(f"bench --netns: workload {w}: only reused, new-conn and large")
    workdir = tempfile.mkdtemp(prefix="smtplb-bench-netns-")
    results = {w: {c: {"rate": [], "cpu": [], "sink_cpu": []} for c in configs}
               for w in workloads}
    try:
        with Lab(workdir) as lab:
            # Root is needed for -u; each sink drops to nobody.
            sinks = [lab.popen("backend", ["smtp-sink", "-u", "nobody", f"{a}:{PORT}", "1024"])
                     for a in lab.backend_addrs]
            for a, s in zip(lab.backend_addrs, sinks):
                lab.wait_for_port("balancer", a, PORT, proc=s)
            for run in range(args.runs):
                for w in workloads:
                    order = configs[run % len(configs):] + configs[:run % len(configs)]
                    for c in order:
                        m = measure(lab, args, workdir, sinks, c, w)
                        for k, v in m.items():
                            results[w][c][k].append(v)
                        print(f"run {run + 1} netns {w:8} {c:20} {m['rate']:9.0f} msg/s  "
                              f"{m['cpu']:.3f} CPU-s/1000", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(results, configs, workloads, args)
