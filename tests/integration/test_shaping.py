"""Per-destination shaping (issue 27 item 2) against two real Postfix backends:
a backend at its limit for a recipient domain is passed over while the other
has room, and only when both are does the client get 451 4.7.1 naming the
limit and the domain.

    python3 tests/integration/test_shaping.py --smtplb build/src/app/smtplb
"""
import json
import re
import signal
import subprocess
import urllib.request

import configs
from harness import (Postfix, SmtpClient, Smtplb, WorkdirTestCase, free_port, main,
                     postfix_available, wait_until)

SHAPED = "example.net"
OTHER = "example.com"


def swaks(port, rcpt, sender="app@example.org"):
    """One message in one session, as a mail client sends it: (exit status,
    the conversation)."""
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--helo", "client.example",
                        "--from", sender, "--to", rcpt, "--timeout", "30",
                        "--body", "shaping test"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def delivered(pf, domain):
    """Recipients at `domain` that this Postfix took (its discard transport logs each)."""
    return sum(1 for line in pf.log_lines()
               if re.search(rf"to=<[^>]*@{re.escape(domain)}>.*status=sent", line))


class Shaping(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.backends = []
        for name in ("ip1", "ip2"):
            pf = Postfix(self.workdir, name, extra_main=f"relay_domains = {SHAPED}, {OTHER}")
            pf.start()
            self.addCleanup(pf.stop)
            self.backends.append(pf)

    def start_balancer(self, destination_limit, pool_options=None, weights=(1, 1)):
        port = free_port()
        options = {"health": {"enabled": False}}  # only the test's traffic
        options.update(pool_options or {})
        text = configs.balancer(
            port, [(name, pf.port, {"weight": weight})
                   for name, pf, weight in zip(("ip1", "ip2"), self.backends, weights)],
            pool_options=options, listener_options={"accepted_domains": [SHAPED, OTHER]},
            server_options={"admin": "127.0.0.1:0"})
        text += configs.table("[[pool.destination_limit]]", destination_limit)
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        return port, lb

    def metrics(self, lb):
        with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/metrics",
                                    timeout=10) as r:
            return r.read().decode()

    def wait_delivered(self, domain, total):
        wait_until(lambda: sum(delivered(pf, domain) for pf in self.backends) >= total,
                   timeout=30)
        return [delivered(pf, domain) for pf in self.backends]

    def test_a_rate_per_backend_moves_mail_to_the_other_backend_before_refusing(self):
        # A period long enough that nothing comes back during the test.
        # ip1 would take three of four messages by weight.
        port, lb = self.start_balancer(
            {"domain": SHAPED, "messages": "2/10m", "burst": 2}, weights=(3, 1))
        for i in range(4):
            status, out = swaks(port, f"user{i}@{SHAPED}")
            self.assertEqual(status, 0, out)
        # Two each: the second sending IP took what the first could not.
        self.assertEqual(self.wait_delivered(SHAPED, 4), [2, 2])

        status, out = swaks(port, f"user5@{SHAPED}")
        self.assertNotEqual(status, 0, out)
        self.assertRegex(out, r'<\*\* +451 4\.7\.1 Too many messages to example\.net now '
                         r'\(destination limit "example\.net" of pool "hubs"\), try again in '
                         r'\d+ seconds')
        # Another domain is not shaped: it goes as before.
        status, out = swaks(port, f"someone@{OTHER}")
        self.assertEqual(status, 0, out)
        self.assertEqual(sum(self.wait_delivered(OTHER, 1)), 1)
        self.assertEqual(sum(delivered(pf, SHAPED) for pf in self.backends), 4)

        text = self.metrics(lb)
        skips = [float(m) for m in re.findall(
            r'^smtplb_shaping_skips_total\{pool="hubs",backend="ip\d"\} (\S+)$', text, re.M)]
        self.assertEqual(len(skips), 2, text)
        self.assertGreaterEqual(sum(skips), 3)  # one at the fourth message, both at the fifth
        self.assertRegex(text, r'smtplb_shaping_full_total\{pool="hubs"\} 1\b')
        # Two keys: example.net on each backend.
        self.assertRegex(text, r'smtplb_shaping_tracked_keys\{pool="hubs",'
                         r'domain="example\.net"\} 2\b')
        # The tracking log says what the client was told.
        records = lb.tracking_records()
        refused = [r for r in records if "destination limit" in r.get("reply", "")]
        self.assertEqual(len(refused), 1, records)

        # A reload that keeps the destination limits keeps their counts...
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("event=reloaded "), what="reloaded")
        status, out = swaks(port, f"user6@{SHAPED}")
        self.assertIn("451 4.7.1 Too many messages to example.net", out)
        # ... and one that changes them starts afresh.
        with open(lb.config) as f:
            text = f.read()
        with open(lb.config, "w") as f:
            f.write(text.replace('messages = "2/10m"', 'messages = "3/10m"'))
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(lb.log_lines("event=reloaded ")) >= 2, what="reloaded again")
        self.assertTrue(lb.log_lines("destination limit example.net in pool hubs: 2/10m -> 3/10m"),
                        lb.log_lines("reload"))
        status, out = swaks(port, f"user7@{SHAPED}")
        self.assertEqual(status, 0, out)

    def test_concurrency_one_moves_the_second_client_to_the_other_backend(self):
        # backend_hold_time at its most: the clients below pause between
        # commands, and a backend let go would give its place back.
        port, lb = self.start_balancer({"domain": SHAPED, "concurrent_transactions": 1},
                                       pool_options={"backend_hold_time": "5s"})
        clients = []
        for i in range(3):
            c = SmtpClient(port)
            self.addCleanup(c.close)
            self.assertEqual(c.code(), 220)
            c.command("EHLO client.example")
            self.assertEqual(c.command(f"MAIL FROM:<app{i}@example.org>")[-1][:3], "250")
            clients.append(c)
        # Two transactions open at once, one per backend; a third finds both
        # at their limit for the domain.
        self.assertEqual(clients[0].command(f"RCPT TO:<a@{SHAPED}>")[-1][:3], "250")
        self.assertEqual(clients[1].command(f"RCPT TO:<b@{SHAPED}>")[-1][:3], "250")
        third = clients[2].command(f"RCPT TO:<c@{SHAPED}>")[-1]
        self.assertRegex(third, r'^451 4\.7\.1 Too many concurrent transactions to example\.net '
                         r'now \(destination limit "example\.net" of pool "hubs"\)')
        # Another domain is not affected.
        self.assertEqual(clients[2].command(f"RCPT TO:<d@{OTHER}>")[-1][:3], "250")
        for c in clients:
            self.assertEqual(c.command("DATA")[-1][:3], "354")
            self.assertEqual(c.command("Subject: t\r\n\r\nhi\r\n.")[-1][:3], "250")
        self.assertEqual(self.wait_delivered(SHAPED, 2), [1, 1])
        # The places are given back at the end of each transaction.
        self.assertEqual(clients[2].command("MAIL FROM:<app@example.org>")[-1][:3], "250")
        self.assertEqual(clients[2].command(f"RCPT TO:<c@{SHAPED}>")[-1][:3], "250")

    def test_a_spooling_pool_spools_what_no_backend_may_take_and_its_deliveries_wait_too(self):
        port, lb = self.start_balancer({"domain": SHAPED, "messages": "1/10m", "burst": 1},
                                       pool_options={"on_unavailable": "spool"})
        for i in range(3):
            status, out = swaks(port, f"user{i}@{SHAPED}")
            self.assertEqual(status, 0, out)  # the third one spooled: acknowledged all the same
        self.assertEqual(self.wait_delivered(SHAPED, 2), [1, 1])

        def queue():
            with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/api/v1/queue",
                                        timeout=10) as r:
                return json.load(r)

        # The spool's delivery goes through the same limits: it waits, deferred by them.
        wait_until(lambda: any("destination limit" in m.get("last_error", "")
                               for m in queue()["queue"]), timeout=30)
        self.assertEqual(len(queue()["queue"]), 1)
        self.assertEqual(sum(delivered(pf, SHAPED) for pf in self.backends), 2)
        self.assertRegex(self.metrics(lb), r'smtplb_shaping_full_total\{pool="hubs"\} [1-9]')


if __name__ == "__main__":
    main()
