"""`smtplb status` says why a backend is out (the probe's reason, as the
JSON has it), and shows no stale probe after a reload turned probes off;
`smtplb report` aligns its header with its rows and draws one interval as
bars with their values."""
import json
import os
import re
import signal
import subprocess

import configs
import harness
from harness import Sink, Smtplb, WorkdirTestCase, free_port, main, wait_until


class Status(WorkdirTestCase):
    def status(self, lb, *args):
        r = subprocess.run([harness.SMTPLB, "status", "--admin",
                            f"127.0.0.1:{lb.admin_port()}", *args],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_status_shows_the_reason_and_forgets_probes_turned_off(self):
        sink = Sink(self.workdir, "up").start()
        self.addCleanup(sink.stop)
        dead = free_port()  # nothing listens there
        port = free_port()
        text = lambda health: configs.balancer(
            port, [("up", sink.port), ("dead", dead)], pool_options={"health": health},
            server_options={"admin": "127.0.0.1:0"})
        lb = Smtplb(self.workdir, text({"depth": "mail", "interval": "200ms",
                                        "down_interval": "200ms", "fall": 1}))
        lb.start(port)
        self.addCleanup(lb.stop)
        wait_until(lambda: lb.log_lines("backend=dead from=up to=down"), what="dead marked down")
        doc = json.loads(self.status(lb, "--json"))
        dead_json = next(b for b in doc["pools"][0]["backends"] if b["name"] == "dead")
        reason = dead_json["last_probe"]["reason"]
        self.assertTrue(reason.startswith("connection failed: "), reason)
        table = self.status(lb)
        row = next(l for l in table.splitlines() if re.match(r"hubs\s+dead\s", l))
        self.assertTrue(row.endswith(f"down at connect: {reason}"), table)
        # Probes off by reload: no probe result is shown as if it were current.
        with open(lb.config, "w") as f:
            f.write(text({"enabled": False}).replace("@TRACKING@", lb.tracking)
                    .replace("@STATE@", self.workdir))
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("event=reloaded "), what="reloaded")
        doc = json.loads(self.status(lb, "--json"))
        for b in doc["pools"][0]["backends"]:
            self.assertNotIn("last_probe", b, b)
        table = self.status(lb)
        self.assertNotIn("at connect", table)
        self.assertNotIn("healthy at mail", table)


REPORT_LINES = [
    {"time_ms": 1795442400000 + i * 1000, "result": "relayed", "listener": "internet",
     "client": "192.0.2.1", "recipient_domains": ["example.net"],
     "attempts": [{"backend": "hub1" if i % 3 else "hub2-longer-name"}]}
    for i in range(30)
]


class Report(WorkdirTestCase):
    def test_header_is_aligned_and_one_interval_is_drawn_as_bars(self):
        log = os.path.join(self.workdir, "tracking.jsonl")
        with open(log, "w") as f:
            for line in REPORT_LINES:
                f.write(json.dumps(line) + "\n")
        svg = os.path.join(self.workdir, "chart.svg")
        r = subprocess.run([harness.SMTPLB, "report", "--log", log, "--svg", svg],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        header, row, total = lines[0], lines[1], lines[2]
        self.assertTrue(header.startswith("interval (UTC)"), r.stdout)
        self.assertEqual(len(header), len(row), r.stdout)
        self.assertEqual(len(header), len(total), r.stdout)
        # Each column's name ends where its numbers end.
        for name, count in (("hub1", "20"), ("hub2-longer-name", "10")):
            self.assertEqual(header.index(name) + len(name), row.index(" " + count + " ") + 3,
                             r.stdout)
        with open(svg) as f:
            chart = f.read()
        self.assertNotIn("<polyline", chart)
        self.assertIn(">20</text>", chart)
        self.assertIn(">10</text>", chart)


if __name__ == "__main__":
    main()
