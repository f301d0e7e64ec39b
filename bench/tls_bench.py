#!/usr/bin/env python3
"""TLS side by side on loopback (issue #5): the same client load, the same
certificate, against

  smtplb  (STARTTLS listener, per-message balancing over 3 smtp-sink backends)
  postfix (its own smtpd with STARTTLS, discarding what it accepts)

Workloads, each bounded in count and time:
  handshake  connect, EHLO, STARTTLS, TLS handshake, EHLO, QUIT
  messages   one STARTTLS session per worker carrying many 4 KiB messages

Clients are Python processes (ssl module), so absolute rates are bounded by
the client on a shared 2-core machine: read the ratios, and the server CPU
per 1000 operations (from /proc: smtplb's process; Postfix's smtpd
processes for this port). Runs are interleaved; medians are reported.
"""
import argparse
import multiprocessing
import os
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness  # noqa: E402  (certificates, Postfix)
import peers  # noqa: E402
from peers import BUILT_SMTPLB, cpu_seconds, start_sinks  # noqa: E402

BODY = b"Subject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 52  # about 4 KiB


def client_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    return ctx


def handshake_worker(args):
    port, ca, count = args
    ctx = client_context(ca)
    for _ in range(count):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.starttls(context=ctx)
            s.ehlo("bench.example")
    return count


def message_worker(args):
    port, ca, count = args
    ctx = client_context(ca)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        for i in range(count):
            s.sendmail("bench@example.org", [f"user{i}@example.net"], BODY)
    return count


def postfix_cpu(port):
    """CPU seconds of the smtpd processes serving this port."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
            if b"smtpd" in cmdline and f"127.0.0.1:{port}".encode() in cmdline:
                total += cpu_seconds(int(pid))
        except OSError:
            pass
    return total


def start_smtplb(smtplb, workdir, sink_ports, cert):
    tls = f'tls = {{ mode = "starttls", cert = "{cert[0]}", key = "{cert[1]}" }}'
    return peers.start_smtplb(smtplb, workdir, sink_ports, listener_extra=tls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--handshakes", type=int, default=600)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("postfix") or not shutil.which("smtp-sink"):
        sys.exit("tls_bench: needs root, postfix and smtp-sink (scripts/bootstrap.sh all)")
    smtplb = os.path.abspath(args.smtplb)
    workdir = tempfile.mkdtemp(prefix="smtplb-tlsbench-")
    os.chmod(workdir, 0o755)
    ca = harness.make_ca(workdir)
    cert = harness.make_certificate(workdir, ca, "lb.bench", dns=("lb.bench.invalid",))
    sinks = start_sinks()
    pf = harness.Postfix(workdir, "postfix", extra_main=f"""\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert[0]}
smtpd_tls_key_file = {cert[1]}
smtpd_tls_session_cache_database =
default_process_limit = 200
# smtpd processes live through the run, so /proc holds all their CPU time.
max_use = 1000000
max_idle = 3600s
""")
    pf.start()
    results = {(w, c): {"rate": [], "cpu": []} for w in ("handshake", "messages")
               for c in ("smtplb", "postfix")}
    pool = multiprocessing.Pool(args.workers)
    try:
        for run in range(args.runs):
            for workload, total, worker in (("handshake", args.handshakes, handshake_worker),
                                            ("messages", args.messages, message_worker)):
                order = ["smtplb", "postfix"] if run % 2 == 0 else ["postfix", "smtplb"]
                for config in order:
                    proxy = None
                    if config == "smtplb":
                        port, proxy = start_smtplb(smtplb, workdir, [p for p, _ in sinks], cert)
                        cpu = lambda: cpu_seconds(proxy.pid)  # noqa: E731
                    else:
                        port = pf.port
                        cpu = lambda: postfix_cpu(pf.port)  # noqa: E731
                    try:
                        per = total // args.workers
                        # Warm up (Postfix starts its smtpd processes on demand).
                        pool.map(handshake_worker, [(port, ca[0], 2)] * args.workers)
                        cpu0 = cpu()
                        start = time.monotonic()
                        pool.map(worker, [(port, ca[0], per)] * args.workers, chunksize=1)
                        elapsed = time.monotonic() - start
                        cpu1 = cpu()
                    finally:
                        if proxy:
                            proxy.stop()
                    done = per * args.workers
                    rate = done / elapsed
                    results[(workload, config)]["rate"].append(rate)
                    results[(workload, config)]["cpu"].append((cpu1 - cpu0) * 1000 / done)
                    print(f"run {run + 1} {workload:9} {config:7} {rate:8.0f}/s  "
                          f"{(cpu1 - cpu0) * 1000 / done:.3f} CPU-s/1000", flush=True)
    finally:
        pool.close()
        pf.stop()
        for _, s in sinks:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"Medians of {args.runs} interleaved runs; {args.workers} Python client processes, "
          "P-256 certificate, TLS 1.3, 2 cores shared by everything.")
    print()
    print("| workload | server | per second | × Postfix | server CPU-s per 1000 | × Postfix CPU |")
    print("|---|---|---:|---:|---:|---:|")
    for workload in ("handshake", "messages"):
        base_rate = statistics.median(results[(workload, "postfix")]["rate"])
        base_cpu = statistics.median(results[(workload, "postfix")]["cpu"])
        for config in ("smtplb", "postfix"):
            rate = statistics.median(results[(workload, config)]["rate"])
            cpu = statistics.median(results[(workload, config)]["cpu"])
            print(f"| {workload} | {config} | {rate:.0f} | {rate / base_rate:.2f} | {cpu:.3f} | "
                  f"{cpu / base_cpu:.2f} |")


if __name__ == "__main__":
    main()
