#!/usr/bin/env python3
"""Restart with a large spool (issue #4: the scan of 100 000 queued messages
must not block accepting new mail). Writes N committed spool files straight
into state_dir/spool/queue (the documented format), starts smtplb with its
backend down, and measures from the start of the process: when a new
message is first acknowledged (250), and when the daemon logs that the
whole queue is indexed. Loopback only; bounded in count and time.
"""
import argparse
import os
import shutil
import smtplib
import struct
import subprocess
import sys
import tempfile
import time

from peers import BUILT_SMTPLB, free_port, rss_kib


def record(kind, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return kind.encode() + struct.pack(">I", len(payload)) + payload


def spool_file(n, now_ms):
    body = f"Subject: recovered {n}\r\n\r\nbody {n}\r\n".encode()
    return (b"SMTPLB-SPOOL 1\n" + record("A", str(now_ms)) + record("L", "bench")
            + record("P", "hubs") + record("S", "bench@example.org") + record("M", "")
            + record("I", "addr=192.0.2.7 port=40000 laddr=127.0.0.1 lport=25 esmtp=1")
            + record("R", f"user{n}@example.net") + record("B", body) + record("E", str(len(body))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--timeout", type=int, default=120, help="seconds to wait for recovery")
    args = ap.parse_args()
    if not (1 <= args.messages <= 2000000 and 1 <= args.timeout <= 1800):
        sys.exit("recovery bench: --messages 1..2000000, --timeout 1..1800")
    workdir = tempfile.mkdtemp(prefix="smtplb-recovery-")
    queue = os.path.join(workdir, "spool", "queue")
    os.makedirs(queue)
    now_us = int(time.time() * 1e6) - args.messages
    t0 = time.monotonic()
    for n in range(args.messages):
        with open(os.path.join(queue, f"{now_us + n:013X}000"), "wb") as f:
            f.write(spool_file(n, (now_us + n) // 1000))
    print(f"wrote {args.messages} spool files in {time.monotonic() - t0:.1f} s", flush=True)
    subprocess.run(["sync"])
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], capture_output=True)
    port = free_port()
    cfg = os.path.join(workdir, "smtplb.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
hostname = "lb.bench.invalid"
state_dir = "{workdir}"
tracking_log = ""
admin = ""
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
accepted_domains = ["example.net"]
pool = "hubs"
[[pool]]
name = "hubs"
on_unavailable = "spool"
connect_timeout = "1s"
[[pool.backend]]
name = "down"
address = "127.0.0.1:{free_port()}"
""")
    err = open(os.path.join(workdir, "smtplb.err"), "w+")
    start = time.monotonic()
    proc = subprocess.Popen([os.path.abspath(args.smtplb), "run", "--config", cfg],
                            stdout=subprocess.DEVNULL, stderr=err)
    first_ack = recovered = None
    try:
        deadline = start + args.timeout
        while time.monotonic() < deadline and (first_ack is None or recovered is None):
            if first_ack is None:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                        s.sendmail("new@example.org", ["fresh@example.net"],
                                   "Subject: new\r\n\r\nnew\r\n")
                    first_ack = time.monotonic() - start
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.01)
            if recovered is None:
                err.seek(0)
                if "event=spool_recovered" in err.read():
                    recovered = time.monotonic() - start
            time.sleep(0.005)
        peak_kib = rss_kib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            err.seek(0)
            print(err.read()[-3000:])
            raise
        shutil.rmtree(workdir, ignore_errors=True)
    if first_ack is None or recovered is None:
        sys.exit("recovery bench: timed out")
    print()
    print(f"| {args.messages} queued messages on start (cold cache) | seconds after exec |")
    print("|---|---:|")
    print(f"| first new message acknowledged (250, spooled) | {first_ack:.2f} |")
    print(f"| the whole queue indexed (event=spool_recovered) | {recovered:.2f} |")
    print(f"\nsmtplb's peak RSS with the queue indexed: {peak_kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
