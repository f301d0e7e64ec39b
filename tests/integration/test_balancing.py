"""Per-message balancing, invisible retries and live recipient checks, against
`smtplb sink` backends with injected faults."""
import os
import smtplib
import subprocess
import time

import configs
import harness
from harness import Sink, Smtplb, WorkdirTestCase, free_port, main, wait_until


class Balancing(WorkdirTestCase):
    def sinks(self, *specs):
        out = []
        for name, faults in specs:
            s = Sink(self.workdir, name, faults)
            s.start()
            self.addCleanup(s.stop)
            out.append(s)
        return out

    def balancer(self, sinks, **kwargs):
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [(s.name, s.port) for s in sinks], **kwargs))
        lb.start(port)
        self.addCleanup(lb.stop)
        return port, lb

    def test_one_connection_300_messages_spread_over_three_backends(self):
        sinks = self.sinks(("a", []), ("b", []), ("c", []))
        port, lb = self.balancer(sinks)
        # smtp-source -d: one session reused for every message, like an appliance.
        r = subprocess.run(["smtp-source", "-d", "-s", "1", "-m", "300", "-l", "1024",
                            "-f", "app@example.org", "-t", "user@example.net", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: sum(len(s.messages()) for s in sinks) >= 300, what="300 messages")
        counts = [len(s.messages()) for s in sinks]
        self.assertEqual(sum(counts), 300)
        for c in counts:
            self.assertGreaterEqual(c, 95, counts)
            self.assertLessEqual(c, 105, counts)
        # The traffic report from the tracking log agrees with the backends.
        wait_until(lambda: len(lb.tracking_records()) >= 300, what="300 tracking records")
        svg = os.path.join(self.workdir, "report.svg")
        r = subprocess.run([harness.SMTPLB, "report", "--log", lb.tracking, "--interval", "1d",
                            "--svg", svg], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        header, total = r.stdout.splitlines()[0], r.stdout.splitlines()[-4]
        self.assertEqual(header.split()[2:5], ["a", "b", "c"], r.stdout)
        self.assertEqual([int(x) for x in total.split()[1:]], counts + [300], r.stdout)
        self.assertIn("300 relayed messages", r.stdout)
        self.assertNotIn("IMBALANCED", r.stdout)
        with open(svg) as f:
            chart = f.read()
        # One interval: a bar per backend with its count (and a legend square each).
        self.assertEqual(chart.count("<rect x="), 6, chart)
        for c in counts:
            self.assertIn(f">{c}</text>", chart)
        # The SVG renders (rsvg-convert, from Debian's librsvg2-bin).
        png = os.path.join(self.workdir, "report.png")
        r = subprocess.run(["rsvg-convert", "-o", png, svg], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_weights_and_identity_reach_backends(self):
        sinks = self.sinks(("heavy", []), ("light", []))
        port = free_port()
        text = configs.balancer(port, [("heavy", sinks[0].port, {"weight": 3}),
                                       ("light", sinks[1].port, {"weight": 1})])
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                          source_address=("127.0.0.2", 0), timeout=30) as s:
            for i in range(40):
                s.sendmail("a@example.org", ["u@example.net"], f"Subject: {i}\r\n\r\nx\r\n")
        wait_until(lambda: sum(len(s.messages()) for s in sinks) >= 40, what="40 messages")
        self.assertEqual([len(s.messages()) for s in sinks], [30, 10])
        for m in sinks[0].messages() + sinks[1].messages():
            self.assertEqual(m["client"], "127.0.0.2")  # XCLIENT ADDR
            self.assertEqual(m["client_helo"], "client.example")

    def test_deferring_and_dead_backends_are_invisible_to_the_client(self):
        sinks = self.sinks(("defers_mail", ["mail=452:4.3.1"]), ("defers_end", ["message=451"]),
                           ("drops", ["data=drop"]), ("good", []))
        dead_port = free_port()  # nothing listens here
        port = free_port()
        backends = [(s.name, s.port) for s in sinks] + [("dead", dead_port)]
        lb = Smtplb(self.workdir, configs.balancer(port, backends, pool_options={"max_attempts": 5}))
        lb.start(port)
        self.addCleanup(lb.stop)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for i in range(30):
                refused = s.sendmail("a@example.org", ["u@example.net", "v@example.net"],
                                     f"Subject: {i}\r\n\r\nbody {i}\r\n")
                self.assertEqual(refused, {})
        good = sinks[3]
        wait_until(lambda: len(good.messages()) >= 30, what="all 30 at the good backend")
        self.assertEqual(len(good.messages()), 30)
        for s in sinks[:3]:
            self.assertEqual(s.messages(), [], s.name)
        self.assertEqual(sorted(good.messages()[0]["rcpt"]), ["u@example.net", "v@example.net"])
        wait_until(lambda: len(lb.tracking_records()) >= 30, what="tracking")
        tried = {a["backend"] for r in lb.tracking_records() for a in r["attempts"]}
        self.assertTrue({"defers_mail", "defers_end", "good"} <= tried, tried)
        self.assertTrue(all(r["result"] == "relayed" for r in lb.tracking_records()))

    def test_permanent_recipient_verdict_reaches_the_client_unchanged(self):
        sinks = self.sinks(("strict", ["rcpt=550:5.1.1"]))
        port, _ = self.balancer(sinks)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            code, msg = s.rcpt("nobody@example.net")
            self.assertEqual(code, 550)
            self.assertIn(b"5.1.1", msg)

    def test_client_gets_451_only_when_no_backend_can_take_it(self):
        sinks = self.sinks(("x", ["mail=421"]), ("y", ["greeting=421"]))
        port, lb = self.balancer(sinks)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            s.mail("a@example.org")
            code, msg = s.rcpt("u@example.net")
            # The last backend's own deferral (issue 25), its 421 as 451:
            # smtplb keeps the client's connection open.
            self.assertEqual(code, 451, msg)
            self.assertEqual(msg, b"4.3.0 Fault injected by smtplb sink")

    def test_a_recipient_every_backend_defers_gets_their_reply_and_takes_none_out(self):
        # 4.3.x to RCPT is often about the recipient (Postfix's "451 4.3.0
        # Temporary lookup failure"): tried elsewhere, then answered with the
        # backend's own reply, and no backend's health changes.
        sinks = self.sinks(("x", ["rcpt=452:4.3.1"]), ("y", ["rcpt=452:4.3.1"]))
        port, lb = self.balancer(sinks, pool_options={"health": {"enabled": False}})
        for _ in range(3):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("client.example")
                s.mail("a@example.org")
                code, msg = s.rcpt("u@example.net")
                self.assertEqual(code, 452, msg)
                self.assertTrue(msg.startswith(b"4.3.1"), msg)
        self.assertFalse(lb.log_lines("event=health"))

    def test_recipient_for_another_pool_gets_452_453(self):
        a, b = self.sinks(("net", []), ("org", []))
        port = free_port()
        text = configs.balancer(port, [("net", a.port)],
                                listener_options={"accepted_domains": ["example.net", "example.org"]},
                                extra_pools=[("orgpool", [("org", b.port)])],
                                routes=[{"recipient_domain": "example.org", "pool": "orgpool"}])
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            s.mail("a@example.com")
            self.assertEqual(s.rcpt("x@example.org")[0], 250)
            code, msg = s.rcpt("y@example.net")
            self.assertEqual(code, 452)
            self.assertIn(b"4.5.3", msg)
            s.data(b"Subject: routed\r\n\r\nx\r\n")
        wait_until(lambda: len(b.messages()) == 1, what="message at the org pool")
        self.assertEqual(a.messages(), [])
        self.assertEqual(b.messages()[0]["rcpt"], ["x@example.org"])


    def test_large_message_spills_to_disk_and_is_replayed_intact(self):
        sinks = self.sinks(("first", ["message=451"]), ("second", []))
        port = free_port()
        text = configs.balancer(port, [(s.name, s.port) for s in sinks])
        text = text.replace("[server]\n", "[server]\nspill_threshold = \"4KiB\"\n")
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        # 60 KiB with lines that need dot-stuffing: from disk, re-stuffed, twice.
        body = "".join(f".line {i} " + "x" * 60 + "\r\n" for i in range(900))
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("a@example.org", ["u@example.net"], "Subject: big\r\n\r\n" + body)
        wait_until(lambda: sinks[1].messages(), what="the message at the second backend")
        got = sinks[1].messages()[0]
        self.assertEqual(got["size"], len("Subject: big\r\n\r\n" + body))
        self.assertEqual(sinks[0].messages(), [])
        rec = lb.tracking_records()
        wait_until(lambda: lb.tracking_records(), what="tracking")
        rec = lb.tracking_records()[0]
        self.assertEqual([a["backend"] for a in rec["attempts"]], ["first", "second"])
        self.assertEqual(rec["result"], "relayed")
        # The message's size, not what the stuffing made of it on the wire.
        self.assertEqual(rec["size"], len("Subject: big\r\n\r\n" + body))

    def test_backend_connections_come_from_the_listener_source_address(self):
        sinks = self.sinks(("hub", []))
        port, _ = self.balancer(sinks, listener_options={"source_address": "127.0.0.3"})
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("a@example.org", ["u@example.net"], "Subject: src\r\n\r\nx\r\n")
        wait_until(lambda: sinks[0].messages(), what="message")
        self.assertEqual(sinks[0].messages()[0]["peer"], "127.0.0.3")

    def test_backend_connections_are_replaced_after_max_messages_or_max_age(self):
        sinks = self.sinks(("hub", []))
        port, lb = self.balancer(sinks, pool_options={"max_messages_per_connection": 2,
                                                      "max_connection_age": "2s",
                                                      "health": {"enabled": False}})
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            for i in range(5):
                s.sendmail("a@example.org", ["u@example.net"], f"Subject: {i}\r\n\r\nx\r\n")
            # Past the age, the next message goes on a new connection too.
            time.sleep(2.5)
            s.sendmail("a@example.org", ["u@example.net"], "Subject: late\r\n\r\nx\r\n")
        wait_until(lambda: len(sinks[0].messages()) == 6, what="six messages")
        # 2 + 2 + 1 by count, then 1 after the age: four connections, and
        # the harness's own one that waited for the sink's port.
        self.assertEqual(sinks[0].final_stats()["connections"], 1 + 4)

    def test_smtp_only_backend_gets_helo_and_no_identity(self):
        old = Sink(self.workdir, "old", extra=["--no-esmtp"])
        old.start()
        self.addCleanup(old.stop)
        port, lb = self.balancer([old])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("a@example.org", ["u@example.net"], "Subject: old\r\n\r\nx\r\n")
        wait_until(lambda: old.messages(), what="message at the SMTP-only backend")
        self.assertEqual(old.messages()[0]["helo"], "lb.test")
        wait_until(lambda: lb.tracking_records(), what="tracking")
        # Not presented: said so in the tracking log and in the event log.
        self.assertEqual(lb.tracking_records()[0]["identity"], "none")
        self.assertTrue(lb.log_lines("event=identity_not_presented"), "no warning logged")

    def test_ipv6_client_identity_is_passed_as_ipv6(self):
        sinks = self.sinks(("hub", []))
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub", sinks[0].port)],
                                                   listener_options={"bind": f"[::1]:{port}"}))
        lb.process.start()
        self.addCleanup(lb.stop)
        wait_until(lambda: _v6_listening(port), what="smtplb on [::1]")
        with smtplib.SMTP("::1", port, local_hostname="v6.example", timeout=30) as s:
            s.sendmail("a@example.org", ["u@example.net"], "Subject: v6\r\n\r\nx\r\n")
        wait_until(lambda: sinks[0].messages(), what="message")
        # Postfix's XCLIENT form for IPv6 addresses.
        self.assertEqual(sinks[0].messages()[0]["client"], "IPV6:::1")
        wait_until(lambda: lb.tracking_records(), what="tracking")
        self.assertEqual(lb.tracking_records()[0]["client"], "::1")


def _v6_listening(port):
    import socket
    try:
        with socket.create_connection(("::1", port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
