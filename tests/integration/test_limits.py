"""[[limit]]s applied by the sessions (issue 27): real clients (smtp-source,
swaks, raw sockets) through smtplb to a real Postfix. What is asserted is
what the clients were answered, what reached Postfix and what the tracking
log says; never how long anything took."""
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import threading
import time

import smtplib

import configs
from harness import Dovecot, Postfix, SmtpClient, Smtplb, WorkdirTestCase, free_port, main, \
    make_ca, make_certificate, postfix_available, starttls_client, wait_until


SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tracking-schema.json"


def limit(**values):
    return configs.table("[[limit]]", values)


def v2_header(source, source_port):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + \
        struct.pack("!HH", source_port, 25)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def swaks(port, sender="alice@example.org", to="bob@example.net", source="127.0.0.1",
          extra=()):
    """One message; returns (exit code, transcript)."""
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", source,
                        "--from", sender, "--to", to, "--helo", "client.example",
                        "--timeout", "60", *extra],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def limit_lines(lb, **match):
    return [r for r in lb.tracking_records() if r.get("result") == "limited" and
            all(r.get(k) == v for k, v in match.items())]


def relayed(lb):
    return [r for r in lb.tracking_records() if r.get("result") == "relayed"]


class LimitsTest(WorkdirTestCase):
    postfix = None

    @classmethod
    def setUpClass(cls):
        if not postfix_available():
            raise AssertionError("postfix must be installed (scripts/bootstrap.sh test)")
        import tempfile
        cls.pf_dir = tempfile.mkdtemp(prefix="smtplb-limits-pf-")
        access = f"{cls.pf_dir}/rcpt_access"
        with open(access, "w") as f:
            f.write("nobody@example.net REJECT no such user\n")
        cls.postfix = Postfix(cls.pf_dir, "hub", extra_main=(
            f"smtpd_recipient_restrictions = check_recipient_access texthash:{access}"))
        cls.postfix.start()

    @classmethod
    def tearDownClass(cls):
        if cls.postfix:
            cls.postfix.stop()
        import shutil
        shutil.rmtree(cls.pf_dir, ignore_errors=True)

    def queued(self):
        """Messages Postfix has taken into its queue so far."""
        return [line for line in self.postfix.log_lines() if "(queue active)" in line]

    def start_lb(self, limits, threads=1, listener=None, extra_listeners=(), name="smtplb"):
        port = free_port()
        text = configs.balancer(port, [("hub", self.postfix.port)],
                                pool_options={"health": {"enabled": False}},
                                listener_options=listener,
                                extra_listeners=extra_listeners,
                                server_options={"threads": threads})
        lb = Smtplb(self.workdir, text + "".join(limits), name=name)
        lb.start(port)
        self.addCleanup(lb.stop)
        self.addCleanup(self.validate, lb)
        return lb, port

    def validate(self, lb):
        """Every line it wrote against the published schema."""
        import jsonschema
        with open(SCHEMA) as f:
            validator = jsonschema.Draft202012Validator(json.load(f))
        for r in lb.tracking_records():
            errors = [e.message for e in validator.iter_errors(r)]
            self.assertFalse(errors, f"{r}: {errors}")

    def greet(self, port, source="127.0.0.1"):
        c = SmtpClient(port, source=source)
        self.addCleanup(c.close)
        return c, c.read_reply()

    # --- rates -----------------------------------------------------------

    def test_sender_over_its_message_rate(self):
        """messages = "10/1m", burst = 5: smtp-source gets exactly 5 through,
        then 451 4.7.1; one more passes once its share of the interval has
        gone by. With one and two event loops."""
        for threads in (1, 2):
            with self.subTest(threads=threads):
                sender = f"load{threads}@example.org"
                before = len(self.queued())
                lb, port = self.start_lb(
                    [limit(name="per-sender", key="sender", messages="10/1m", burst=5)],
                    threads=threads, name=f"lb{threads}")
                # Two sessions in parallel, a message after another on each.
                r = subprocess.run(["smtp-source", "-d", "-s", "2", "-m", "8", "-l", "500",
                                    "-f", sender, "-t", "user@example.net", f"127.0.0.1:{port}"],
                                   capture_output=True, text=True, timeout=120)
                wait_until(lambda: len(relayed(lb)) >= 5, what="five relayed")
                refusals = limit_lines(lb, limit="per-sender", action="tempfail")
                self.assertTrue(refusals, r.stderr)
                self.assertEqual(len(relayed(lb)), 5, lb.tracking_records())
                wait_until(lambda: len(self.queued()) - before >= 5, what="five at Postfix")
                self.assertTrue(all(x["reply"].startswith("451 4.7.1 Too many messages "
                                                          "(limit \"per-sender\")")
                                    for x in refusals), refusals)
                # At MAIL, or at the end of data for a session that passed
                # MAIL while the other's message took the last one.
                self.assertLessEqual({(x["event"], x["key"]) for x in refusals},
                                     {("mail", f"sender={sender}"), ("data", f"sender={sender}")})
                code, out = swaks(port, sender=sender)
                self.assertNotEqual(code, 0)
                self.assertIn("<** 451 4.7.1 Too many messages (limit \"per-sender\"), "
                              "try again in", out)
                # Another sender is not affected.
                code, out = swaks(port, sender=f"other{threads}@example.org")
                self.assertEqual(code, 0, out)
                # 10 a minute: one more every 6 s.
                time.sleep(6.5)
                code, out = swaks(port, sender=sender)
                self.assertEqual(code, 0, out)
                code, out = swaks(port, sender=sender)
                self.assertNotEqual(code, 0, out)
                wait_until(lambda: len(self.queued()) - before == 7, what="seven at Postfix")
                self.assertEqual(len(relayed(lb)), 7)
                lb.stop()

    def test_recipients_count_only_the_accepted_ones(self):
        lb, port = self.start_lb([limit(name="rcpts", key="sender", recipients="3/1h")])
        c, greeting = self.greet(port)
        c.command("EHLO client.example")
        self.assertEqual(c.command("MAIL FROM:<bulk@example.org>")[0][:3], "250")
        # Refused by Postfix: not counted, however many.
        for _ in range(4):
            self.assertEqual(c.command("RCPT TO:<nobody@example.net>")[0][:3], "554")
        for i in range(3):
            self.assertEqual(c.command(f"RCPT TO:<u{i}@example.net>")[0][:3], "250")
        over = c.command("RCPT TO:<u9@example.net>")[0]
        self.assertTrue(over.startswith("451 4.7.1 Too many recipients (limit \"rcpts\")"), over)
        self.assertEqual(c.command("DATA")[0][:3], "354")
        self.assertEqual(c.command("Subject: r\r\n\r\nhi\r\n.")[0][:3], "250")
        c.command("QUIT")
        line, = limit_lines(lb, limit="rcpts")
        self.assertEqual((line["event"], line["recipient"], line["sender"], line["key"]),
                         ("rcpt", "u9@example.net", "bulk@example.org",
                          "sender=bulk@example.org"))
        record, = relayed(lb)
        self.assertEqual(record["recipients"], 3)

    def test_a_refusal_at_end_of_data_leaves_nothing_at_the_backend(self):
        # 1000 bytes an hour: the first 600-byte message passes, the second
        # is looked at (MAIL and RCPT) without its size and refused once
        # its size is known, before Postfix is given the final dot.
        lb, port = self.start_lb([limit(name="volume", key="sender", bytes="1000/1h")])
        before = len(self.queued())
        body = "Subject: v\r\n\r\n" + "x" * 580 + "\r\n."
        c, greeting = self.greet(port)
        c.command("EHLO client.example")
        answers = []
        for _ in range(2):
            c.command("MAIL FROM:<big@example.org>")
            c.command("RCPT TO:<bob@example.net>")
            c.command("DATA")
            answers.append(c.command(body)[0])
        self.assertEqual(answers[0][:3], "250", answers)
        self.assertTrue(answers[1].startswith("451 4.7.1 Too much mail (limit \"volume\")"),
                        answers)
        # The session goes on: a small message still fits.
        c.command("MAIL FROM:<big@example.org>")
        c.command("RCPT TO:<bob@example.net>")
        c.command("DATA")
        self.assertEqual(c.command("Subject: s\r\n\r\nok\r\n.")[0][:3], "250")
        c.command("QUIT")
        wait_until(lambda: len(self.queued()) - before >= 2, what="two at Postfix")
        time.sleep(1)  # anything more would have shown up by now
        self.assertEqual(len(self.queued()) - before, 2)
        self.assertEqual([r["result"] for r in lb.tracking_records() if "pool" in r],
                         ["relayed", "tempfailed", "relayed"])
        line, = limit_lines(lb, limit="volume")
        self.assertEqual(line["event"], "data")

    # --- concurrency -----------------------------------------------------

    def test_concurrent_connections_refused_at_the_greeting(self):
        tcp_port = free_port()
        lb, port = self.start_lb(
            [limit(name="conns", key="client_ip", concurrent_connections=2)],
            extra_listeners=[{"name": "plain", "bind": f"127.0.0.1:{tcp_port}", "mode": "tcp",
                              "pool": "hubs"}])
        a, ga = self.greet(port, "127.0.0.2")
        b, gb = self.greet(port, "127.0.0.2")
        self.assertEqual((ga[0][:3], gb[0][:3]), ("220", "220"))
        c, gc = self.greet(port, "127.0.0.2")
        self.assertEqual(gc, ['421 4.7.0 Too many concurrent connections (limit "conns"), '
                              'try again later'])
        other, go = self.greet(port, "127.0.0.3")
        self.assertEqual(go[0][:3], "220")
        # The tcp listener counts under the same key: closed, no SMTP of its own.
        t = socket.create_connection(("127.0.0.1", tcp_port), source_address=("127.0.0.2", 0),
                                     timeout=10)
        self.addCleanup(t.close)
        self.assertEqual(t.recv(100), b"")
        # A place given back is a place to take.
        a.command("QUIT")
        a.close()
        wait_until(lambda: self.greet(port, "127.0.0.2")[1][0][:3] == "220",
                   what="a place again")
        lines = limit_lines(lb, limit="conns")
        self.assertEqual({(x["event"], x["key"], x["listener"]) for x in lines},
                         {("connect", "client_ip=127.0.0.2", "internet"),
                          ("connect", "client_ip=127.0.0.2", "plain")})
        self.assertEqual([x.get("reply") for x in lines if x["listener"] == "plain"], [None])

    def test_concurrent_transactions(self):
        lb, port = self.start_lb([limit(name="tx", key="client_ip", concurrent_transactions=1)])
        a, _ = self.greet(port)
        b, _ = self.greet(port)
        for c in (a, b):
            c.command("EHLO client.example")
        self.assertEqual(a.command("MAIL FROM:<a@example.org>")[0][:3], "250")
        refused = b.command("MAIL FROM:<b@example.org>")[0]
        self.assertEqual(refused, '451 4.7.1 Too many concurrent transactions (limit "tx"), '
                                  'try again later')
        a.command("RSET")
        self.assertEqual(b.command("MAIL FROM:<b@example.org>")[0][:3], "250")
        self.assertEqual(b.command("RCPT TO:<bob@example.net>")[0][:3], "250")
        b.command("DATA")
        self.assertEqual(b.command("Subject: t\r\n\r\nhi\r\n.")[0][:3], "250")
        # The end of data ended b's transaction too.
        self.assertEqual(a.command("MAIL FROM:<a@example.org>")[0][:3], "250")

    # --- exemptions, PROXY -------------------------------------------------

    def test_an_exempt_network_is_never_limited(self):
        lb, port = self.start_lb([limit(name="once", key="client_ip", connections="1/1h",
                                        burst=1, exempt_networks=["127.0.0.3/32"])])
        for _ in range(4):
            c, g = self.greet(port, "127.0.0.3")
            self.assertEqual(g[0][:3], "220")
            c.close()
        code, out = swaks(port, source="127.0.0.3")
        self.assertEqual(code, 0, out)
        first, g1 = self.greet(port, "127.0.0.2")
        second, g2 = self.greet(port, "127.0.0.2")
        self.assertEqual((g1[0][:3], g2[0][:7]), ("220", "421 4.7"))
        self.assertEqual({x["client"] for x in limit_lines(lb)}, {"127.0.0.2"})

    def test_limits_behind_a_proxy_key_on_the_real_client(self):
        lb, port = self.start_lb(
            [limit(name="conns", key="client_ip", concurrent_connections=1)],
            listener={"proxy_protocol": "v2", "proxy_trusted_networks": ["127.0.0.1/32"]})

        def proxied(source, source_port):
            c = SmtpClient(port)
            self.addCleanup(c.close)
            c.send(v2_header(source, source_port))
            return c.read_reply()

        self.assertEqual(proxied("192.0.2.7", 40001)[0][:3], "220")
        self.assertEqual(proxied("192.0.2.7", 40002)[0][:3], "421")
        self.assertEqual(proxied("192.0.2.8", 40003)[0][:3], "220")
        line, = limit_lines(lb, limit="conns")
        self.assertEqual((line["client"], line["client_port"], line["key"]),
                         ("192.0.2.7", 40002, "client_ip=192.0.2.7"))

    # --- delay (tarpit) ----------------------------------------------------

    def test_delay_holds_the_reply_then_lets_it_through(self):
        # One message per 2 s, held up to 5 s: the second and third
        # messages wait their turn and pass.
        lb, port = self.start_lb([limit(name="tarpit", key="sender", messages="1/2s", burst=1,
                                        action="delay", delay="5s")])
        for _ in range(3):
            code, out = swaks(port, sender="slow@example.org")
            self.assertEqual(code, 0, out)
        self.assertEqual(len(relayed(lb)), 3)
        holds = limit_lines(lb, limit="tarpit", action="delay")
        self.assertTrue(holds, lb.tracking_records())
        self.assertTrue(all(h["hold_ms"] > 0 and "reply" not in h for h in holds), holds)
        # Each hold's line comes before its message's record.
        records = lb.tracking_records()
        self.assertEqual(records[0]["result"], "relayed")
        self.assertEqual(records[1]["result"], "limited")

    def test_delay_refuses_after_the_longest_hold(self):
        lb, port = self.start_lb([limit(name="tarpit", key="sender", messages="1/1h", burst=1,
                                        action="delay", delay="1s")])
        code, out = swaks(port, sender="flood@example.org")
        self.assertEqual(code, 0, out)
        code, out = swaks(port, sender="flood@example.org")
        self.assertIn('<** 451 4.7.1 Too many messages (limit "tarpit"), try again in', out)
        line, = limit_lines(lb, limit="tarpit")
        self.assertEqual((line["action"], line["event"], line["hold_ms"]), ("tempfail", "mail",
                                                                            1000))

    # --- hostile -----------------------------------------------------------

    def held_at_connect(self, port, limit_name, lb):
        """A client whose greeting is being held (its second connection;
        not from 127.0.0.1, where the harness's readiness check connected)."""
        first, g = self.greet(port, "127.0.0.2")
        self.assertEqual(g[0][:3], "220")
        held = SmtpClient(port, source="127.0.0.2")
        self.addCleanup(held.close)
        wait_until(lambda: limit_lines(lb, limit=limit_name), what="the hold's line")
        return held

    def test_a_client_that_leaves_during_a_hold(self):
        lb, port = self.start_lb([limit(name="slow", key="client_ip", connections="1/3s",
                                        burst=1, action="delay", delay="5s")])
        held = self.held_at_connect(port, "slow", lb)
        held.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        held.close()  # a reset in the middle of the hold
        # The daemon goes on serving (and the held session ends on its own).
        code, out = swaks(port, source="127.0.0.5")
        self.assertEqual(code, 0, out)
        self.assertEqual(lb.stop(), 0)

    def test_a_stop_does_not_wait_for_holds(self):
        # Held for up to 5 minutes: the daemon stops well before.
        lb, port = self.start_lb([limit(name="slow", key="client_ip", connections="1/1h",
                                        burst=1, action="delay", delay="5m")])
        held = self.held_at_connect(port, "slow", lb)
        answers = []

        def read_all():
            try:
                while True:
                    answers.append(held.read_reply()[0])
            except (ConnectionError, OSError):
                pass
        reader = threading.Thread(target=read_all)
        reader.start()
        self.assertEqual(lb.process.stop(timeout=20), 0)
        reader.join(timeout=20)
        # The refusal it was held for, at once (its wait named as from the
        # end of the 5-minute hold: 1 h - 5 min).
        self.assertEqual(answers, ['421 4.7.0 Too many connections (limit "slow"), '
                                   'try again in 3300 seconds'])

    def test_a_reload_during_a_hold(self):
        held_limit = limit(name="tarpit", key="sender", messages="1/3s", burst=1,
                           action="delay", delay="5s")
        lb, port = self.start_lb([held_limit])
        code, out = swaks(port, sender="slow@example.org")
        self.assertEqual(code, 0, out)
        c, _ = self.greet(port)
        c.command("EHLO client.example")
        c.send("MAIL FROM:<slow@example.org>\r\n")
        wait_until(lambda: limit_lines(lb, limit="tarpit"), what="the hold")
        # Another limit set: the new generation starts afresh, the held
        # session finishes on the old one.
        with open(lb.config, "a") as f:
            f.write(limit(name="other", key="client_ip", connections="100/1m"))
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("event=reloaded "), what="reloaded")
        self.assertEqual(c.read_reply()[0][:3], "250")
        self.assertEqual(c.command("RCPT TO:<bob@example.net>")[0][:3], "250")
        c.command("DATA")
        self.assertEqual(c.command("Subject: t\r\n\r\nhi\r\n.")[0][:3], "250")
        c.command("QUIT")
        code, out = swaks(port, sender="fresh@example.org")
        self.assertEqual(code, 0, out)


class AuthUserLimitsTest(WorkdirTestCase):
    """A limit keyed by the authenticated user, with one user exempt
    (submission: AUTH after STARTTLS, checked by a real Dovecot)."""

    def test_an_exempt_user_is_never_limited(self):
        os.chmod(self.workdir, 0o755)  # Dovecot reads its users file as its own user
        ca = make_ca(self.workdir)
        cert = make_certificate(self.workdir, ca, "lb.test", dns=("lb.test",))
        dovecot = Dovecot(self.workdir, {"alice": "correct horse", "monitor": "battery staple"})
        dovecot.start()
        self.addCleanup(dovecot.stop)
        sink, = self.start_sinks("hub")
        port = free_port()
        listener = {"role": "submission", "accepted_domains": [],
                    "tls": {"mode": "starttls", "cert": cert[0], "key": cert[1]},
                    "auth": {"verifier": "dovecot", "dovecot_socket": dovecot.socket}}
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub", sink.port)],
                                                   listener_options=listener) +
                    limit(name="per-user", key="auth_user", messages="1/1h", burst=1,
                          exempt_auth_users=["monitor"]))
        lb.start(port)
        self.addCleanup(lb.stop)

        def send(user, password, count):
            codes = []
            s = starttls_client(port, ca[0])
            s.login(user, password)
            for _ in range(count):
                try:
                    s.sendmail(f"{user}@example.org", ["x@elsewhere.example"], b"\r\nhi\r\n")
                    codes.append(250)
                except smtplib.SMTPSenderRefused as e:
                    codes.append((e.smtp_code, e.smtp_error.decode()))
                    s.rset()
            s.quit()
            return codes

        self.assertEqual(send("monitor", "battery staple", 3), [250, 250, 250])
        self.assertEqual(send("alice", "correct horse", 2),
                         [250, (451, '4.7.1 Too many messages (limit "per-user"), '
                                     'try again in 3600 seconds')])
        line, = [r for r in lb.tracking_records() if r.get("result") == "limited"]
        self.assertEqual((line["key"], line["login"]), ("auth_user=alice", "alice"))


if __name__ == "__main__":
    main()
