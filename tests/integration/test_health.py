"""Health checks against `smtplb sink` backends with injected faults: deep
probes that see sender-dependent back pressure, passive health, failover to
a backup tier and back, drain through the admin API, and `smtplb probe`."""
import re
import smtplib
import subprocess
import threading
import time
import urllib.request

import configs
import harness
from harness import Sink, Smtplb, WorkdirTestCase, free_port, main, wait_until

# The classic outage: 452 4.3.1 to outside senders, 250 to local ones.
SICK = ["--fault", "mail=452:4.3.1", "--fault-unless-sender-domain", "example.net"]


def send(port, count, sender="someone@outside.example", subject="t", start=0):
    """Sends `count` messages over one connection; returns (accepted ids, failures)."""
    ok, failed = [], []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        for i in range(start, start + count):
            mid = f"{subject}-{i}"
            body = f"Subject: {mid}\r\nMessage-ID: <{mid}@test>\r\n\r\nbody {i}\r\n"
            try:
                s.sendmail(sender, ["user@example.net"], body)
                ok.append(mid)
            except smtplib.SMTPException as e:
                failed.append((mid, str(e)))
    return ok, failed


def subjects(sink):
    out = []
    for m in sink.messages():
        found = re.search(r"Subject: (\S+)", m["body"])
        if found:
            out.append(found.group(1))
    return out


def attempts_on(lb, backend):
    return sum(1 for r in lb.tracking_records() for a in r["attempts"] if a["backend"] == backend)


class Health(WorkdirTestCase):
    def sinks(self, *specs):
        out = []
        for name, extra in specs:
            s = Sink(self.workdir, name, extra=extra)
            s.start()
            self.addCleanup(s.stop)
            out.append(s)
        return out

    def balancer(self, backends, health, server_options=None, **pool_options):
        port = free_port()
        pool = {"health": health}
        pool.update(pool_options)
        lb = Smtplb(self.workdir, configs.balancer(port, backends, pool_options=pool,
                                                   server_options=server_options))
        lb.start(port)
        self.addCleanup(lb.stop)
        return port, lb

    def test_probe_sees_sender_dependent_back_pressure_and_mail_avoids_it(self):
        a, b, sick = self.sinks(("a", []), ("b", []), ("sick", SICK))
        health = {"depth": "rcpt", "interval": "200ms", "down_interval": "200ms", "fall": 2,
                  "rise": 2, "mail_from": "probe@external.invalid",
                  "rcpt_to": "postmaster@example.net"}
        port, lb = self.balancer([(s.name, s.port) for s in (a, b, sick)], health)
        # Detected by probes alone, on exactly the fall-th failed probe.
        wait_until(lambda: lb.log_lines("backend=sick from=up to=busy"), what="sick marked busy")
        line = lb.log_lines("backend=sick from=up to=busy")[0]
        self.assertIn("source=probe", line)
        self.assertIn("observations=2", line)
        self.assertIn('reply="452 4.3.1', line)
        # 300 messages from outside senders over 6 connections: none fails,
        # and none is even tried on the sick backend.
        accepted, failures = [], []
        for c in range(6):
            ok, bad = send(port, 50, subject=f"c{c}")
            accepted += ok
            failures += bad
        self.assertEqual(failures, [])
        self.assertEqual(len(accepted), 300)
        wait_until(lambda: len(subjects(a)) + len(subjects(b)) >= 300, what="300 delivered")
        self.assertEqual(sorted(subjects(a) + subjects(b)), sorted(accepted))
        self.assertEqual(subjects(sick), [])
        self.assertEqual(attempts_on(lb, "sick"), 0)
        # A local sender's mail is still fine on it: the probe judged what outsiders see.
        self.assertEqual(lb.log_lines("backend=sick from=busy"), [])

    def test_passive_health_stops_new_transactions_after_one_failure(self):
        a, sick = self.sinks(("a", []), ("sick", SICK))
        # Probes far apart: only live traffic can notice.
        port, lb = self.balancer([("a", a.port), ("sick", sick.port)],
                                 {"depth": "banner", "interval": "1h"})
        ok, failed = send(port, 50)
        self.assertEqual(failed, [])
        self.assertEqual(len(ok), 50)
        # Round robin would give it 25; one deferred MAIL took it out.
        self.assertEqual(attempts_on(lb, "sick"), 1)
        line = lb.log_lines("backend=sick from=up to=busy")[0]
        self.assertIn("source=live", line)
        wait_until(lambda: len(subjects(a)) >= 50, what="50 delivered")

    def test_backend_killed_during_a_run_loses_nothing(self):
        sinks = self.sinks(("a", []), ("b", []), ("c", []))
        port, lb = self.balancer([(s.name, s.port) for s in sinks],
                                 {"depth": "mail", "interval": "500ms"})
        results = {"ok": [], "failed": []}

        def client(n):
            ok, bad = send(port, 100, subject=f"k{n}")
            results["ok"].extend(ok)
            results["failed"].extend(bad)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(subjects(sinks[1])) >= 20, what="traffic on b")
        sinks[1].process.proc.kill()  # SIGKILL, mid-run
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(results["failed"], [])
        self.assertEqual(len(results["ok"]), 300)
        delivered = set()
        for s in sinks:
            delivered.update(subjects(s))
        missing = set(results["ok"]) - delivered
        self.assertEqual(missing, set(), "acknowledged but in no backend")
        wait_until(lambda: lb.log_lines("backend=b from=up to=down"), what="b marked down")

    def test_backup_tier_takes_over_and_gives_back(self):
        main_sink, backup = self.sinks(("main", []), ("backup", []))
        main_port = main_sink.port
        port, lb = self.balancer(
            [("main", main_port, {"priority": 10}), ("backup", backup.port, {"priority": 20})],
            {"depth": "mail", "interval": "200ms", "down_interval": "200ms", "rise": 2,
             "fall": 1}, slow_start="0s")
        ok, failed = send(port, 10, subject="before")
        self.assertEqual((len(ok), failed), (10, []))
        self.assertEqual(len(subjects(backup)), 0)
        main_sink.stop()
        wait_until(lambda: lb.log_lines("backend=main from=up to=down"), what="main down")
        ok, failed = send(port, 10, subject="during")
        self.assertEqual((len(ok), failed), (10, []))
        wait_until(lambda: len(subjects(backup)) >= 10, what="backup took over")
        # The preferred server returns on the same port: after `rise` good
        # probes, new transactions go back to it.
        again = Sink(self.workdir, "main2", port=main_port)
        again.start()
        self.addCleanup(again.stop)
        wait_until(lambda: lb.log_lines("backend=main from=down to=up"), what="main back up")
        ok, failed = send(port, 10, subject="after")
        self.assertEqual((len(ok), failed), (10, []))
        wait_until(lambda: len(subjects(again)) >= 10, what="main took mail again")
        self.assertEqual(len(subjects(backup)), 10)

    def test_drain_lets_the_open_transaction_finish_and_takes_no_new_ones(self):
        a, b = self.sinks(("a", []), ("b", []))
        port, lb = self.balancer([("a", a.port), ("b", b.port)],
                                 {"depth": "mail", "interval": "1s"},
                                 server_options={"admin": "127.0.0.1:0"},
                                 # Two commands run between RCPT and DATA: on a loaded
                                 # machine they may take over the default 1 s, after which
                                 # the held connection is let go and the envelope replayed
                                 # elsewhere (correct, but not what this test is about).
                                 backend_hold_time="5s")
        admin = f"127.0.0.1:{lb.admin_port()}"
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.ehlo("client.test")
        self.assertEqual(s.mail("x@outside.example")[0], 250)
        self.assertEqual(s.rcpt("user@example.net")[0], 250)
        # Which backend holds the open transaction: the one with one in flight.
        status = subprocess.run([harness.SMTPLB, "status", "--admin", admin, "--json"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stderr)
        import json
        backends = json.loads(status.stdout)["pools"][0]["backends"]
        holder = [x["name"] for x in backends if x["in_flight"] == 1]
        self.assertEqual(len(holder), 1, backends)
        holder = holder[0]
        other = "b" if holder == "a" else "a"
        r = subprocess.run([harness.SMTPLB, "backend", "hubs", holder, "drain", "--admin", admin],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("admin drain", r.stdout)
        code, _ = s.data("Subject: inflight\r\n\r\nfinished on the drained backend\r\n")
        self.assertEqual(code, 250)
        s.quit()
        sinks = {"a": a, "b": b}
        wait_until(lambda: "inflight" in subjects(a) + subjects(b), what="in-flight message")
        hold = [x for r in lb.tracking_records() for x in r["attempts"] if x.get("stage") == "hold"]
        self.assertEqual(hold, [], "the client was too slow for backend_hold_time")
        self.assertIn("inflight", subjects(sinks[holder]))
        ok, failed = send(port, 10, subject="new")
        self.assertEqual((len(ok), failed), (10, []))
        wait_until(lambda: len(subjects(sinks[other])) >= 10, what="new mail elsewhere")
        self.assertEqual(subjects(sinks[holder]), ["inflight"])
        table = subprocess.run([harness.SMTPLB, "status", "--admin", admin],
                               capture_output=True, text=True, timeout=30)
        self.assertRegex(table.stdout, rf"hubs\s+{holder}\s.*\sdrain\s")
        # The same in /metrics, whose every line is valid exposition format.
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            metrics = r.read().decode()
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="[^"]*",?)*\})? '
                            r'(-?[0-9.e+-]+|\+Inf)$')
        for line in metrics.splitlines():
            if not line.startswith("#"):
                self.assertRegex(line, sample)
        # Prometheus' own checker accepts it (promtool, from Debian's prometheus).
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn(f'smtplb_backend_admin_state{{pool="hubs",backend="{holder}",'
                      'state="drain"} 1', metrics)
        self.assertIn('smtplb_listener_transactions_total{listener="internet",result="relayed"} 11',
                      metrics)
        self.assertIn(f'smtplb_backend_reply_seconds_count{{pool="hubs",backend="{other}"}} 10',
                      metrics)
        # Unknown names and actions are refused with a reason.
        bad = subprocess.run([harness.SMTPLB, "backend", "hubs", "nosuch", "drain", "--admin",
                              admin], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("no backend named", bad.stderr)
        r = subprocess.run([harness.SMTPLB, "backend", "hubs", holder, "enable", "--admin", admin],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        ok, failed = send(port, 10, subject="back")
        self.assertEqual((len(ok), failed), (10, []))
        wait_until(lambda: any(x.startswith("back-") for x in subjects(sinks[holder])),
                   what="traffic back on the enabled backend")

    def test_probe_command_prints_the_conversation_and_exits_by_verdict(self):
        good, sick = self.sinks(("good", []), ("sick", SICK))
        run = lambda *args: subprocess.run([harness.SMTPLB, "probe", *args], capture_output=True,
                                           text=True, timeout=30)
        r = run(f"127.0.0.1:{good.port}", "--depth", "rcpt", "--rcpt-to", "postmaster@example.net")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for expected in ("S: 220 good.test", "C: EHLO", "C: MAIL FROM:<probe@external.invalid>",
                         "C: RCPT TO:<postmaster@example.net>", "C: RSET", "C: QUIT",
                         "result: healthy at rcpt"):
            self.assertIn(expected, r.stdout)
        r = run(f"127.0.0.1:{sick.port}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("S: 452 4.3.1", r.stdout)
        self.assertIn("result: busy at mail", r.stdout)
        r = run(f"127.0.0.1:{sick.port}", "--mail-from", "admin@example.net")
        self.assertEqual(r.returncode, 0, r.stdout)
        r = run(f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("down at connect", r.stdout)
        r = run("not-an-address")
        self.assertEqual(r.returncode, 64)


if __name__ == "__main__":
    main()
