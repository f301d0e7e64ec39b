#!/usr/bin/env python3
"""AUTH towards smarthosts (pool.backend.auth): how many AUTH exchanges a
load costs, through smtplb to a real Postfix that relays only for
authenticated clients (Dovecot SASL, STARTTLS required), beside the same
Postfix trusting smtplb by address, in one run:

  python3 bench/smarthost_auth.py --smtplb build/src/app/smtplb \
      [--sessions 5] [--messages 1000]

smtp-source -d (each session one connection, many messages). Prints, per
configuration, the elapsed time, the messages Postfix took, its AUTH
commands and connections (from its "disconnect" lines). smtp-source greets
with HELO: the by-address backend is greeted with HELO after XCLIENT (no
PIPELINING), the AUTH backend with EHLO (AUTH needs it), so the times are
not the cost of AUTH alone; the AUTH count is the point: one per backend
connection, not per message."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import configs  # noqa: E402
import harness  # noqa: E402
from harness import Dovecot, Smtplb, free_port, make_ca, start_sasl_postfix  # noqa: E402


class Run:
    """Enough of a test case for start_sasl_postfix: a work directory and cleanups."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))

    def close(self):
        for fn, args in reversed(self.cleanups):
            fn(*args)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", required=True)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    harness.SMTPLB = os.path.abspath(args.smtplb)
    run = Run(tempfile.mkdtemp(prefix="smtplb-smarthost-"))
    try:
        ca = make_ca(run.workdir)
        dovecot = Dovecot(run.workdir, {"relay@example.net": "bench password"}).start()
        run.addCleanup(dovecot.stop)
        password = os.path.join(run.workdir, "password")
        with open(password, "w") as f:
            f.write("bench password\n")
        backends = [
            ("auth", start_sasl_postfix(
                run, ca, dovecot, "authed",
                extra_main="smtpd_relay_restrictions = permit_sasl_authenticated, reject\n"),
             {"username": "relay@example.net", "password_file": password}),
            ("by-address", start_sasl_postfix(
                run, ca, dovecot, "byaddr", sasl=False,
                extra_main="smtpd_relay_restrictions = permit_mynetworks, reject\n"), None)]
        for name, pf, auth in backends:
            port = free_port()
            options = {"tls_name": os.path.basename(pf.dir) + ".test"}
            if auth:
                options["auth"] = auth
            text = configs.balancer(
                port, [("smarthost", pf.port, options)],
                listener_options={"role": "relay", "accepted_domains": [],
                                  "trusted_networks": ["127.0.0.0/8"]},
                pool_options={"tls": {"mode": "required", "ca_file": ca[0]},
                              "health": {"enabled": False}})
            lb = Smtplb(run.workdir, text, name=f"lb-{name}").start(port)
            started = time.monotonic()
            r = subprocess.run(["smtp-source", "-d", "-s", str(args.sessions), "-m",
                                str(args.messages), "-f", "a@example.net", "-t",
                                "someone@example.org", f"127.0.0.1:{port}"],
                               capture_output=True, text=True, timeout=600)
            elapsed = time.monotonic() - started
            lb.stop()
            ends = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ends = [line for line in pf.log_lines() if "disconnect from" in line
                        and " mail=" in line]
                if sum(int(re.search(r" mail=(\d+)", line).group(1)) for line in ends) >= \
                        args.messages:
                    break
                time.sleep(0.2)
            count = lambda key: sum(int(m.group(1)) for line in ends  # noqa: E731
                                    for m in [re.search(rf" {key}=(\d+)", line)] if m)
            print(f"{name:10s} elapsed {elapsed:.2f} s  messages {count('mail')}  "
                  f"AUTH {count('auth')}  backend connections {len(ends)}  "
                  f"smtp-source exit {r.returncode}", flush=True)
    finally:
        run.close()
        shutil.rmtree(run.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
