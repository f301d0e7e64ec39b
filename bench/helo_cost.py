#!/usr/bin/env python3
"""What `helo_to_backend = "client"` costs (issue 26 item 5).

A pool that greets backends with the client's HELO keeps a backend
connection for one HELO name: a client can reuse only connections greeted
with its own name. Here many distinct clients (127.0.1.1, 127.0.1.2, ...,
each with its own HELO, as in identity_cost.py) send through a listener with
`client_identity = "none"` to smtp-sink backends, once with the default
(`helo_to_backend = "smtplb"`, any client reuses any idle connection) and
once with `"client"`. Workloads: `reused` (each client one session, several
messages) and `new-conn` (each message its own session, the case where
connections are reused across clients). Reports the medians over
interleaved runs of messages per second and smtplb's CPU microseconds per
message, and the ratio of `client` to `smtplb`. The clients are Python
threads: CPU per message is the figure to read. Loopback only; needs root.

  python3 bench/helo_cost.py --clients 50 --messages 20 --runs 3
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from identity_cost import measure, print_medians, run_interleaved  # noqa: E402
from peers import BUILT_SMTPLB, start_sinks  # noqa: E402

MODES = ("smtplb", "client")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smtplb", default=BUILT_SMTPLB)
    ap.add_argument("--clients", type=int, default=50, help="distinct clients (at most 250)")
    ap.add_argument("--messages", type=int, default=20, help="messages per client")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workloads", default="reused,new-conn")
    args = ap.parse_args()
    clients = max(1, min(args.clients, 250))
    sinks = start_sinks()
    try:
        results = run_interleaved(
            args.runs, args.workloads.split(","), MODES,
            lambda mode, workload: measure(args.smtplb, sinks, clients, args.messages,
                                           workload == "reused", source_address=None,
                                           client_identity="none",
                                           pool_extra=f'helo_to_backend = "{mode}"\n'))
    finally:
        for _, p in sinks:
            p.stop()
    print(f"\n{clients} clients x {args.messages} messages, {args.runs} interleaved runs; "
          "medians; ratios to helo_to_backend = \"smtplb\"")
    print_medians(results, args.workloads.split(","), MODES, column="helo")


if __name__ == "__main__":
    main()
