#!/usr/bin/env python3
"""The side-by-side benchmark (issue #7 method), in one run on loopback:

  direct       smtp-source -> three smtp-sink backends (the limit)
  haproxy      HAProxy 2.6, mode tcp, roundrobin, option smtpchk
  nginx        nginx's mail proxy, auth_http answered by its own http block
  postfix      Postfix as a store-and-forward relay to a sink (end to end:
               until its queue is empty)
  smtplb       smtplb, smtp mode, XCLIENT, per-message round robin
  smtplb-tcp   smtplb, tcp mode, per-connection round robin
  smtplb-spool smtplb with every backend down, on_unavailable = "spool"
               (each message written and fsync'd before its 250)
  smtplb-nolog smtplb as `smtplb`, with its tracking log off (not in the
               default set): beside `smtplb` (whose log is a file), the cost
               of the tracking log, per run in the same run:

  python3 bench/bench.py --configs smtplb,smtplb-nolog --workloads reused \
      --runs 5 --messages 50000 --idle 0

  smtplb-limits smtplb as `smtplb` with five [[limit]]s that no message
               reaches (bench/peers.py UNREACHED_LIMITS): beside `smtplb`,
               the cost of checking limits, per run in the same run:

  python3 bench/bench.py --configs smtplb,smtplb-limits --workloads reused \
      --runs 5 --messages 50000 --idle 0

  smtplb-shared-limits smtplb-limits with a [cluster] (one node) and a
               redis-server the bench starts: the same limits kept in Redis
               (docs/cluster.md, "Shared limits"); beside smtplb-limits, with
               the Redis round trips per message (Redis's commandstats):

  python3 bench/bench.py --configs smtplb-limits,smtplb-shared-limits \
      --workloads reused --runs 5 --messages 50000 --idle 0

  smtplb-shaping smtplb as `smtplb` with per-destination shaping that no
               message reaches (bench/peers.py UNREACHED_SHAPING): the cost
               of [[pool.destination_limit]], per run in the same run:

  python3 bench/bench.py --configs smtplb,smtplb-shaping --workloads reused \
      --runs 5 --messages 50000 --idle 0

Workloads: `reused` (20 sessions, many 4 KiB messages each), `new-conn` (a
new connection per message), `large` (100 KiB messages, reused sessions),
and idle-connection memory (a fresh proxy process each time). Not in the
default set: `large-data` and `large-bdat`, the large workload sent by
bench/chunk_client.py (smtp-source has no BDAT) with DATA or with BDAT, the
same client both ways; `large-bdat` only through what takes BDAT (smtplb in
smtp mode, Postfix), as smtp-sink does not:

  python3 bench/bench.py --configs smtplb=/work/main/build/src/app/smtplb,smtplb \
      --workloads large-data,large-bdat --idle 0 Runs are
interleaved; medians are reported: messages/s as a ratio to direct and to
HAProxy, the proxy's CPU seconds per 1000 messages (its whole process tree),
and RSS per idle connection. Every load is bounded in count and time; only
127.0.0.1 is used. Needs root (Postfix, smtp-sink -u) and
`scripts/bootstrap.sh all`.

`--netns` measures transparent mode beside XCLIENT mode instead, in network
namespaces (client, balancer, backend) with the same three sinks; see
bench/netns_bench.py:

  python3 bench/bench.py --netns --workloads reused,new-conn --runs 3

`--strict-sinks` runs the backends as `smtplb sink --xclient-strict` (XCLIENT
as Postfix's smtpd allows it: a backend connection cannot change clients;
smtplb reaches them from 127.0.0.3, the one address they authorise), and
an smtplb configuration may name its binary, to compare two builds:

  python3 bench/bench.py --strict-sinks --configs smtplb=OLD/smtplb,smtplb \
      --workloads reused --runs 3
"""
import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Re-exported for the other benchmarks, which import them from here.
from peers import (BUILT_SMTPLB, STRICT_BALANCER_ADDRESS, UNREACHED_LIMITS, Proc, cpu_seconds,  # noqa: E402,F401
                   free_port, idle_rss_per_connection, postfix_master_pid, postfix_queued,
                   require, run_load, start_haproxy, start_nginx, start_postfix_relay,
                   start_sinks, start_smtplb, tree_cpu_seconds, wait_port)
from peers import UNREACHED_SHAPING  # noqa: E402

ALL_CONFIGS = "direct,haproxy,nginx,postfix,smtplb,smtplb-tcp,smtplb-spool"
EXTRA_CONFIGS = "smtplb-nolog,smtplb-limits,smtplb-shaping,smtplb-shared-limits"  # accepted, not run by default
SLOW = ("nginx", "postfix")  # hundreds of messages per second: fewer messages


class Target:
    """One configuration, started fresh for one measurement."""

    def __init__(self, config, args, workdir, sinks):
        self.config, self.postfix, self.proc, self.dir = config, None, None, None
        self.redis = None
        sink_ports = [p for p, _ in sinks]
        if config == "direct":
            self.ports, self.root = sink_ports, None
        elif config == "haproxy":
            port, self.proc = start_haproxy(workdir, sink_ports, args.haproxy_threads)
            self.ports, self.root = [port], self.proc.pid
        elif config == "nginx":
            port, self.proc = start_nginx(workdir, sink_ports)
            self.ports, self.root = [port], self.proc.pid
        elif config == "postfix":
            self.dir = tempfile.mkdtemp(prefix="pf-", dir=workdir)
            self.postfix = start_postfix_relay(self.dir, sink_ports[0])
            self.ports, self.root = [self.postfix.port], postfix_master_pid(self.postfix)
        else:
            # "smtplb=BINARY": another build, for comparing two binaries.
            name, _, binary = config.partition("=")
            mode = "tcp" if name == "smtplb-tcp" else "smtp"
            self.dir = tempfile.mkdtemp(prefix="lb-", dir=workdir)
            extra = UNREACHED_LIMITS if name in ("smtplb-limits", "smtplb-shared-limits") else ""
            if name == "smtplb-shared-limits":
                self.redis_port = free_port()
                self.redis = Proc(["redis-server", "--port", str(self.redis_port), "--bind",
                                   "127.0.0.1", "--save", "", "--appendonly", "no",
                                   "--dir", self.dir])
                wait_port(self.redis_port)
                extra += (f'[cluster]\nredis = "127.0.0.1:{self.redis_port}"\n'
                          'node_name = "bench"\ntimeout = "50ms"\n')
            port, self.proc = start_smtplb(binary or args.smtplb, self.dir, sink_ports, mode,
                                           spool=name == "smtplb-spool",
                                           pool_extra=UNREACHED_SHAPING
                                           if name == "smtplb-shaping" else "",
                                           tracking_log="" if name == "smtplb-nolog" else None,
                                           extra=extra,
                                           threads=args.smtplb_threads,
                                           source_address=STRICT_BALANCER_ADDRESS
                                           if args.strict_sinks else None)
            self.ports, self.root = [port], self.proc.pid

    def cpu(self):
        return tree_cpu_seconds(self.root) if self.root else 0.0

    def redis_calls(self):
        """Requests smtplb has sent Redis so far (INFO commandstats), None without
        Redis: the scripts (EVALSHA, EVAL, SCRIPT). Commandstats counts the
        commands a script runs inside Redis too: those are not round trips, so
        ZREM (which smtplb now sends inside its scripts) is not counted."""
        if not self.redis:
            return None
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "INFO", "commandstats"],
                             capture_output=True, text=True, timeout=10).stdout
        requests = ("cmdstat_evalsha:", "cmdstat_eval:", "cmdstat_script|load:",
                    "cmdstat_script:")
        return sum(int(part.split("=", 1)[1]) for line in out.splitlines()
                   if line.startswith(requests)
                   for part in line.split(":", 1)[1].split(",") if part.startswith("calls="))

    def wait_delivered(self, timeout=300):
        """Postfix has only accepted what smtp-source sent; wait for its queue."""
        deadline = time.monotonic() + timeout
        while self.postfix and postfix_queued(self.postfix):
            if time.monotonic() > deadline:
                raise RuntimeError("Postfix did not empty its queue in time")
            time.sleep(0.02)

    def stop(self):
        if self.postfix:
            self.postfix.stop()
            time.sleep(0.5)
        if self.proc:
            self.proc.stop()
        if self.redis:
            self.redis.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


# Workloads sent by bench/chunk_client.py, and the verb it sends them with.
CHUNK_CLIENT = {"large-data": "data", "large-bdat": "bdat"}
# Configurations that hand the client's bytes to smtp-sink, which has no BDAT.
NO_BDAT = ("direct", "haproxy", "nginx", "smtplb-tcp")


def messages_for(config, workload, args):
    count = {"reused": args.messages, "new-conn": args.new_conn_messages,
             "large": args.large_messages, "large-data": args.large_messages,
             "large-bdat": args.large_messages}[workload]
    if config in SLOW:
        count = min(count, args.slow_messages)
    if config.partition("=")[0] == "smtplb-spool":
        count = min(count, args.spool_messages)
    return count


def measure(config, workload, args, workdir, sinks):
    reuse = workload != "new-conn"
    size = args.large_size if workload.startswith("large") else args.size
    messages = messages_for(config, workload, args)
    if workload == "large-bdat" and config.partition("=")[0] in NO_BDAT:
        return None
    target = Target(config, args, workdir, sinks)
    if workload == "large-bdat" and not offers_chunking(target.ports[0]):
        target.stop()  # an older smtplb
        return None
    try:
        cpu0 = target.cpu()
        redis0 = target.redis_calls()
        sink0 = sum(cpu_seconds(s.pid) for _, s in sinks)
        gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        if workload in CHUNK_CLIENT:
            accept_time = run_chunk_client(target.ports, messages, args.sessions, size,
                                           CHUNK_CLIENT[workload], args.chunks, 300)
        else:
            accept_time = run_load(target.ports, messages, args.sessions, reuse, size, 300)
        target.wait_delivered()
        elapsed = time.monotonic() - start
        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = target.cpu()
        redis1 = target.redis_calls()
        sink1 = sum(cpu_seconds(s.pid) for _, s in sinks)
    finally:
        target.stop()
    generator = (gen1.ru_utime + gen1.ru_stime) - (gen0.ru_utime + gen0.ru_stime)
    return {"rate": messages / elapsed, "accept": messages / accept_time,
            "cpu": (cpu1 - cpu0) * 1000 / messages if config != "direct" else None,
            "sink_cpu": (sink1 - sink0) * 1000 / messages,
            "busy": ((cpu1 - cpu0) + (sink1 - sink0) + generator) / elapsed,
            # Round trips per message: each Redis command is one (pipelined or not).
            "redis_per_message": (redis1 - redis0) / messages if redis0 is not None else None}


def offers_chunking(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO bench.example\r\nQUIT\r\n")
        lines = []
        while not lines or lines[-1][3:4] == b"-":
            lines.append(f.readline())
        return any(line[4:].strip().upper() == b"CHUNKING" for line in lines)


def run_chunk_client(targets, messages, sessions, size, verb, chunks, timeout):
    """bench/chunk_client.py, the load split evenly across the targets."""
    client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chunk_client.py")
    procs = []
    start = time.monotonic()
    for i, port in enumerate(targets):
        m = messages // len(targets) + (1 if i < messages % len(targets) else 0)
        s = max(1, sessions // len(targets) + (1 if i < sessions % len(targets) else 0))
        procs.append(subprocess.Popen(
            [sys.executable, client, "--port", str(port), "--messages", str(m), "--sessions",
             str(s), "--size", str(size), "--verb", verb, "--chunks", str(chunks)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise RuntimeError("chunk_client timed out")
        if p.returncode != 0:
            raise RuntimeError("chunk_client failed: " + err.decode(errors="replace")[-500:])
    return time.monotonic() - start


def measure_idle(config, args, workdir, sinks):
    # Postfix runs a process per connection, up to its process limit.
    count = min(args.idle, 100) if config == "postfix" else args.idle
    target = Target(config, args, workdir, sinks)
    try:
        return idle_rss_per_connection(target.root, target.ports[0], count)
    finally:
        target.stop()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def paired(results, config, key):
    """Per run, the configuration's figure over HAProxy's from the same run:
    both measured minutes apart, so the machine's slow swings cancel out."""
    ours, hap = results[config][key], results["haproxy"][key]
    return [a / b for a, b in zip(ours, hap) if a is not None and b]


def spread(values):
    return f"{min(values):.2f}–{max(values):.2f}" if values else "–"


def report(results, idle, configs, workloads, args):
    print()
    print(f"Medians of {args.runs} interleaved runs; {args.sessions} sessions; "
          f"{args.size}-byte messages ({args.large_size} for `large`); 3 "
          f"{'`smtplb sink --xclient-strict`' if args.strict_sinks else 'smtp-sink'} backends; "
          "2 cores shared by everything.")
    print()
    print("| workload | configuration | messages/s | × direct | × HAProxy | proxy CPU-s per 1000 msgs "
          "| × HAProxy CPU | backends' CPU-s per 1000 msgs | cores busy (of 2) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for w in workloads:
        r = results[w]
        direct = median(r["direct"]["rate"]) if "direct" in r else None
        hap = median(r["haproxy"]["rate"]) if "haproxy" in r else None
        hap_cpu = median(r["haproxy"]["cpu"]) if "haproxy" in r else None
        for c in configs:
            rate, cpu = median(r[c]["rate"]), median(r[c]["cpu"])
            if rate is None:  # not measured (large-bdat through a BDAT-less path)
                continue
            entry = {"rate": rate, "cpu_per_1000": cpu, "accept_rate": median(r[c]["accept"]),
                     "backend_cpu_per_1000": median(r[c]["sink_cpu"]),
                     "x_direct": rate / direct if direct else None,
                     "x_haproxy": rate / hap if hap else None,
                     "cpu_x_haproxy": cpu / hap_cpu if cpu is not None and hap_cpu else None}
            if "haproxy" in r and c not in ("haproxy", "direct"):
                entry["x_haproxy_runs"] = paired(r, c, "rate")
                entry["cpu_x_haproxy_runs"] = paired(r, c, "cpu")
            summary[f"{w}/{c}"] = entry
            print(f"| {w} | {c} | {rate:.0f} | {fmt(entry['x_direct'])} | {fmt(entry['x_haproxy'])} | "
                  f"{fmt(cpu, 3)} | {fmt(entry['cpu_x_haproxy'])} | "
                  f"{fmt(entry['backend_cpu_per_1000'], 3)} | {fmt(median(r[c]['busy']))} |")
    if "haproxy" in configs:
        print()
        print("Per run, against HAProxy in the same run (median, lowest–highest of the runs):")
        print()
        print("| workload | configuration | × HAProxy rate | range | × HAProxy CPU | range |")
        print("|---|---|---:|---|---:|---|")
        for w in workloads:
            for c in configs:
                entry = summary.get(f"{w}/{c}", {})
                if "x_haproxy_runs" not in entry:
                    continue
                rates, cpus = entry["x_haproxy_runs"], entry["cpu_x_haproxy_runs"]
                print(f"| {w} | {c} | {fmt(median(rates))} | {spread(rates)} | "
                      f"{fmt(median(cpus))} | {spread(cpus)} |")
    if "postfix" in configs:
        print()
        for w in workloads:
            pf = summary[f"{w}/postfix"]["accept_rate"]
            line = f"{w}: Postfix accepts {pf:.0f} msg/s (queued, before delivery)"
            if "smtplb-spool" in configs:
                spool = summary[f"{w}/smtplb-spool"]["rate"]
                line += f"; smtplb spooling accepts {spool:.0f} msg/s = {spool / pf:.2f}× Postfix"
                summary[f"{w}/spool_x_postfix_accept"] = spool / pf
            if "smtplb" in configs:
                summary[f"{w}/smtplb_x_postfix"] = summary[f"{w}/smtplb"]["rate"] / \
                    summary[f"{w}/postfix"]["rate"]
                line += f"; smtplb relays {summary[f'{w}/smtplb_x_postfix']:.1f}× Postfix end to end"
            if "nginx" in configs and "smtplb" in configs:
                summary[f"{w}/smtplb_x_nginx"] = summary[f"{w}/smtplb"]["rate"] / \
                    summary[f"{w}/nginx"]["rate"]
                line += f"; {summary[f'{w}/smtplb_x_nginx']:.1f}× nginx"
            print(line)
    if "smtplb" in configs and "smtplb-shaping" in configs:
        compare_runs(results, summary, workloads, "smtplb-shaping", "smtplb", "shaping",
                     "The cost of destination limits no message reaches: smtplb-shaping over "
                     "smtplb, per run:", "without shaping")
    if "smtplb" in configs and "smtplb-nolog" in configs:
        compare_runs(results, summary, workloads, "smtplb", "smtplb-nolog", "tracking_log",
                     "The tracking log's cost: smtplb (log to a file) over smtplb-nolog, per run:",
                     "without the log")
    if "smtplb" in configs and "smtplb-limits" in configs:
        compare_runs(results, summary, workloads, "smtplb-limits", "smtplb", "limits",
                     "The cost of five limits no message reaches: smtplb-limits over smtplb, "
                     "per run:", "without limits")
    if "smtplb-limits" in configs and "smtplb-shared-limits" in configs:
        compare_runs(results, summary, workloads, "smtplb-shared-limits", "smtplb-limits",
                     "shared_limits", "The cost of keeping those limits in Redis: "
                     "smtplb-shared-limits over smtplb-limits, per run:", "with local limits")
        print()
        print("| workload | Redis round trips per message (median of the runs) |")
        print("|---|---:|")
        for w in workloads:
            trips = [t for t in results[w]["smtplb-shared-limits"].get("redis_per_message", [])
                     if t is not None]
            summary[f"{w}/shared_limits_redis_per_message_runs"] = trips
            print(f"| {w} | {fmt(median(trips), 2) if trips else '-'} |")
    if idle:
        print()
        print("| idle client connections | KiB RSS per connection |")
        print("|---|---:|")
        for c, v in idle.items():
            print(f"| {c} | {v:.2f} |")
            summary[f"idle/{c}"] = v
    return summary


def compare_runs(results, summary, workloads, config, baseline, key, title, versus):
    """`config` over `baseline`, run by run (the runs are interleaved)."""
    print()
    print(title)
    print()
    print(f"| workload | × rate {versus} | range | × CPU | range |")
    print("|---|---:|---|---:|---|")
    for w in workloads:
        on, off = results[w][config], results[w][baseline]
        rates = [a / b for a, b in zip(on["rate"], off["rate"]) if b]
        cpus = [a / b for a, b in zip(on["cpu"], off["cpu"]) if a is not None and b]
        summary[f"{w}/{key}_rate_ratio_runs"] = rates
        summary[f"{w}/{key}_cpu_ratio_runs"] = cpus
        print(f"| {w} | {fmt(median(rates), 3)} | {spread(rates)} | {fmt(median(cpus), 3)} | "
              f"{spread(cpus)} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--new-conn-messages", type=int, default=8000)
    ap.add_argument("--large-messages", type=int, default=2000)
    ap.add_argument("--slow-messages", type=int, default=1500,
                    help="at most this many messages per run through nginx and Postfix")
    ap.add_argument("--spool-messages", type=int, default=3000,
                    help="at most this many messages per run into the spool")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--large-size", type=int, default=102400)
    # HAProxy needs a sink connection per idle client; smtp-sink stalls past a few hundred each.
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--json", help="write the medians to this file")
    ap.add_argument("--chart", help="draw the table to this SVG file")
    ap.add_argument("--haproxy-threads", type=int, help="nbthread for HAProxy (default: one per core)")
    ap.add_argument("--smtplb-threads", type=int,
                    help="server.threads for smtplb (default: smtplb's own default)")
    ap.add_argument("--configs", default=ALL_CONFIGS,
                    help=f"comma-separated subset of {ALL_CONFIGS}; an smtplb one may name "
                    "another binary, as in smtplb=OLD/smtplb,smtplb")
    ap.add_argument("--strict-sinks", action="store_true",
                    help="backends are `smtplb sink --xclient-strict` (XCLIENT as Postfix's "
                    "smtpd allows it) of --sink-smtplb instead of Postfix's smtp-sink")
    ap.add_argument("--sink-smtplb", help="the smtplb binary whose sink --strict-sinks runs "
                    "(default: --smtplb), the same for every configuration")
    ap.add_argument("--workloads", default="reused,new-conn,large",
                    help="comma-separated subset of reused,new-conn,large,large-data,large-bdat")
    ap.add_argument("--chunks", type=int, default=1,
                    help="BDAT chunks per message in large-bdat (default 1: BDAT ... LAST)")
    ap.add_argument("--netns", action="store_true",
                    help="transparent mode beside XCLIENT mode in network namespaces "
                    "(bench/netns_bench.py) instead of the side-by-side set")
    ap.add_argument("--netns-configs", default="xclient,transparent",
                    help="with --netns: comma-separated subset of xclient, transparent, "
                    "transparent+xclient, tcp, tcp-transparent; ratios are to the first")
    args = ap.parse_args()
    if args.netns:
        import netns_bench
        args.smtplb = os.path.abspath(args.smtplb)
        summary = netns_bench.main(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=2)
        return
    configs = args.configs.split(",")
    workloads = args.workloads.split(",")
    for config in configs:
        name, _, binary = config.partition("=")
        known = (ALL_CONFIGS + "," + EXTRA_CONFIGS).split(",")
        if name not in known or (binary and not name.startswith("smtplb")):
            sys.exit(f"bench: unknown configuration {config}")
        if binary and not os.access(binary, os.X_OK):
            sys.exit(f"bench: {binary} is not an executable")
    require("smtp-source", *([] if args.strict_sinks else ["smtp-sink"]),
            *(["haproxy"] if "haproxy" in configs else []),
            *(["nginx"] if "nginx" in configs else []), *(["postfix"] if "postfix" in configs else []))
    args.smtplb = os.path.abspath(args.smtplb)
    args.sink_smtplb = os.path.abspath(args.sink_smtplb or args.smtplb)
    workdir = tempfile.mkdtemp(prefix="smtplb-bench-")
    os.chmod(workdir, 0o755)  # Postfix's user must traverse it
    results = {w: {c: {k: [] for k in ("rate", "accept", "cpu", "sink_cpu", "busy",
                                                  "redis_per_message")}
                   for c in configs} for w in workloads}
    idle = {}
    sinks = start_sinks(strict_smtplb=args.sink_smtplb if args.strict_sinks else None)
    try:
        for run in range(args.runs):
            for w in workloads:
                # Interleave configurations inside each run, rotating the order.
                order = configs[run % len(configs):] + configs[:run % len(configs)]
                for c in order:
                    m = measure(c, w, args, workdir, sinks)
                    if m is None:
                        continue
                    for k, v in m.items():
                        results[w][c][k].append(v)
                    print(f"run {run + 1} {w:8} {c:12} {m['rate']:9.0f} msg/s"
                          + ("" if m["cpu"] is None else f"  {m['cpu']:.3f} CPU-s/1000"), flush=True)
        for c in [c for c in configs
                  if c.partition("=")[0] not in ("direct", "smtplb-spool")] if args.idle else []:
            values = [measure_idle(c, args, workdir, sinks) for _ in range(args.runs)]
            idle[c] = statistics.median(values)
            print(f"idle {c:12} {idle[c]:.2f} KiB per connection", flush=True)
    finally:
        for _, s in sinks:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = report(results, idle, configs, workloads, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.chart:
        from chart import draw
        draw(summary, configs, workloads, idle, args.chart)
        print(f"\nchart: {args.chart}")


if __name__ == "__main__":
    main()
