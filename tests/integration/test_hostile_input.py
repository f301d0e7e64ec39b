"""Hostile input through the real binary: the open-relay battery, SMTP
smuggling end-of-data variants, and every limit with its reply."""
import json
import socket
import threading
import time

import configs
from harness import (Sink, SmtpClient, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, rss_kib, sanitized_build, wait_until)

RELAY_BATTERY = [
    "<victim@target.example>", "<victim%target.example@example.net>",
    "<target.example!victim@example.net>", '<"victim@target.example">',
    '<"victim@target.example"@example.net>', '<"victim%target.example"@example.net>',
    "<@example.net:victim@target.example>", "<@example.net,@x.example:victim@target.example>",
    "<victim@[192.0.2.1]>", "<victim@[127.0.0.1]>", "<victim@example.net.target.example>",
    "<victim@localhost>", "<victim@target.example@example.net>",
]

SMUGGLING = [b"\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n",
             b"\r\n.\r", b"\r\n\x00.\r\n", b"\r\r\n.\r\r\n"]


class Hostile(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.sink = Sink(self.workdir, "backend")
        self.sink.start()
        self.addCleanup(self.sink.stop)

    def balancer(self, **listener_options):
        port = free_port()
        # Without probes, so that the backend's connection count shows
        # exactly which client commands reached it.
        lb = Smtplb(self.workdir, configs.balancer(port, [("backend", self.sink.port)],
                                                   pool_options={"health": {"enabled": False}},
                                                   listener_options=listener_options))
        lb.start(port)
        self.addCleanup(lb.stop)
        self.lb = lb
        return port

    def session(self, port, source="127.0.0.1"):
        c = SmtpClient(port, source)
        self.addCleanup(c.close)
        self.assertEqual(c.code(), 220)
        self.assertEqual(int(c.command("EHLO attacker.example")[-1][:3]), 250)
        return c

    def test_open_relay_battery_refused_on_inbound_and_untrusted_relay(self):
        denied = 0
        for role, extra in (("inbound", {}), ("relay", {"trusted_networks": ["10.0.0.0/8"]})):
            port = self.balancer(role=role, **extra)
            c = self.session(port)
            for rcpt in RELAY_BATTERY:
                self.assertEqual(c.command("MAIL FROM:<spammer@evil.example>")[-1][:3], "250")
                reply = c.command(f"RCPT TO:{rcpt}")[-1]
                self.assertTrue(reply.startswith("550 5.7.1") or reply.startswith("501"),
                                f"{role} {rcpt}: {reply}")
                denied += reply.startswith("550 5.7.1")
                self.assertIn(c.command("RSET")[-1][:3], "250")
        # Every relay attempt the balancer refused is in its tracking log.
        wait_until(lambda: len(self.lb.tracking_records()) >= denied, what="tracking records")
        records = self.lb.tracking_records()
        self.assertGreaterEqual(denied, 10)
        self.assertEqual(len(records), denied)
        for r in records:
            self.assertEqual(r["result"], "rejected")
            self.assertTrue(r["reply"].startswith("550 5.7.1"), r)
            self.assertEqual(r["sender"], "spammer@evil.example")
            self.assertEqual(r["attempts"], [])
        self.assertEqual(self.sink.messages(), [])
        # Refused by the balancer itself: no backend was even connected to
        # (the one connection is the harness's readiness probe).
        self.assertEqual(self.sink.final_stats()["connections"], 1)

    def test_smuggling_variants_never_make_a_second_message(self):
        for mode in ("reject", "normalise"):
            port = self.balancer(bare_line_endings=mode)
            for variant in SMUGGLING:
                before = len(self.sink.messages())
                c = self.session(port)
                c.command("MAIL FROM:<a@example.org>")
                self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
                self.assertEqual(c.command("DATA")[-1][:3], "354")
                c.send(b"Subject: outer\r\n\r\nhello" + variant +
                       b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
                       b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
                final = c.read_reply()[-1]
                c.command("QUIT")
                if variant == b"\r\n\x00.\r\n":
                    # NUL octets are refused by default, whatever the mode
                    # for bare line endings (test_nul_bytes_* below).
                    self.assertTrue(final.startswith("550 5.6.0"), f"{variant!r}: {final}")
                elif mode == "reject":
                    self.assertTrue(final.startswith("550 5.6.11"), f"{variant!r}: {final}")
                else:
                    self.assertTrue(final.startswith("250"), f"{variant!r}: {final}")
                time.sleep(0.1)
                received = self.sink.messages()[before:]
                self.assertLessEqual(len(received), 1, variant)
                for m in received:
                    self.assertEqual(m["from"], "a@example.org")
                    self.assertEqual(m["rcpt"], ["b@example.net"])
                    # The would-be second message is text inside the first.
                    self.assertIn("Subject: smuggled", m["body"])

    # (message as sent, what a backend gets with nul_bytes = "strip")
    NUL_PAYLOADS = [
        # The smuggling variant: a NUL-blind backend would end the message
        # at "<CRLF><NUL>.<CRLF>" and run the rest as commands.
        (b"Subject: outer\r\n\r\nhello\r\n\x00.\r\nMAIL FROM:<evil@example.org>\r\n"
         b"RCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n",
         "Subject: outer\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@example.org>\r\n"
         "RCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"),
        # ".<NUL>": its dot is stuffing (the line holds more), as in Postfix.
        (b"Subject: outer\r\n\r\nhello\r\n.\x00\r\nMAIL FROM:<evil@example.org>\r\n",
         "Subject: outer\r\n\r\nhello\r\n\r\nMAIL FROM:<evil@example.org>\r\n"),
        (b"Subject: a\x00b\r\n\r\n\x00line\x00\r\n\x00\r\n",
         "Subject: ab\r\n\r\nline\r\n\r\n"),
    ]

    def send_message(self, c, payload, sender="a@example.org"):
        self.assertEqual(c.command(f"MAIL FROM:<{sender}>")[-1][:3], "250")
        self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[-1][:3], "354")
        c.send(payload + b".\r\n")
        return c.read_reply()[-1]

    def test_nul_bytes_are_refused_by_default(self):
        port = self.balancer()
        for payload, _ in self.NUL_PAYLOADS:
            before = len(self.sink.messages())
            records = len(self.lb.tracking_records())
            c = self.session(port)
            final = self.send_message(c, payload)
            self.assertTrue(final.startswith("550 5.6.0"), f"{payload!r}: {final}")
            # The backend transaction was abandoned cleanly: the next message
            # of the same session goes through, alone.
            self.assertTrue(self.send_message(c, b"Subject: clean\r\n\r\nok\r\n",
                                              "next@example.org").startswith("250"))
            c.command("QUIT")
            wait_until(lambda: len(self.sink.messages()) > before, what="message")
            time.sleep(0.1)
            received = self.sink.messages()[before:]
            self.assertEqual([m["from"] for m in received], ["next@example.org"], payload)
            self.assertEqual(received[0]["body"], "Subject: clean\r\n\r\nok\r\n")
            wait_until(lambda: len(self.lb.tracking_records()) >= records + 2,
                       what="tracking records")
            refused = self.lb.tracking_records()[records]
            self.assertEqual(refused["sender"], "a@example.org")
            self.assertEqual(refused["result"], "rejected", refused)
            self.assertTrue(refused["reply"].startswith("550 5.6.0"), refused)

    def test_nul_bytes_are_stripped_where_configured(self):
        port = self.balancer(nul_bytes="strip")
        for payload, stripped in self.NUL_PAYLOADS:
            before = len(self.sink.messages())
            c = self.session(port)
            final = self.send_message(c, payload)
            c.command("QUIT")
            self.assertTrue(final.startswith("250"), f"{payload!r}: {final}")
            wait_until(lambda: len(self.sink.messages()) > before, what="message")
            time.sleep(0.1)
            received = self.sink.messages()[before:]
            # One message, NUL-free (the sink keeps NULs, as Postfix does),
            # with the would-be commands as text inside it; a "<NUL>." line
            # arrives as a line holding one dot.
            self.assertEqual(len(received), 1, payload)
            self.assertEqual(received[0]["from"], "a@example.org")
            self.assertEqual(received[0]["body"], stripped, payload)

    def test_bare_cr_and_lf_in_headers_and_body(self):
        # In a header and in the body, alone and in runs: refused whole in
        # `reject` mode; in `normalise` mode delivered with CRLF everywhere.
        payloads = [b"Subject: a\nX-Evil: b\r\n\r\nbody\r\n",
                    b"Subject: a\rX-Evil: b\r\n\r\nbody\r\n",
                    b"Subject: a\r\n\r\nline one\nline two\r\n",
                    b"Subject: a\r\n\r\nline one\rline two\r\n",
                    b"Subject: a\r\n\r\nruns\r\r\r\n\n\nend\r\n"]
        for mode in ("reject", "normalise"):
            port = self.balancer(bare_line_endings=mode)
            for payload in payloads:
                before = len(self.sink.messages())
                c = self.session(port)
                c.command("MAIL FROM:<a@example.org>")
                self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
                self.assertEqual(c.command("DATA")[-1][:3], "354")
                c.send(payload + b".\r\n")
                final = c.read_reply()[-1]
                # The session goes on either way.
                self.assertEqual(c.command("NOOP")[-1][:3], "250")
                c.command("QUIT")
                if mode == "reject":
                    self.assertTrue(final.startswith("550 5.6.11"), f"{payload!r}: {final}")
                    time.sleep(0.1)
                    self.assertEqual(len(self.sink.messages()), before, payload)
                else:
                    self.assertTrue(final.startswith("250"), f"{payload!r}: {final}")
                    wait_until(lambda: len(self.sink.messages()) > before, what="message")
                    body = self.sink.messages()[-1]["body"]
                    stripped = body.replace("\r\n", "")
                    self.assertNotIn("\r", stripped, repr(body))
                    self.assertNotIn("\n", stripped, repr(body))

    def relayed_body(self, data):
        """Sends `data` (the bytes after DATA, end of data included) as one
        message and returns the body the sink received."""
        port = self.balancer()
        c = self.session(port)
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<b@example.net>")
        c.command("DATA")
        c.send(data)
        self.assertTrue(c.read_reply()[-1].startswith("250"))
        wait_until(lambda: self.sink.messages(), what="message")
        return self.sink.messages()[-1]["body"]

    def test_dot_stuffing_round_trip(self):
        self.assertEqual(self.relayed_body(b"Subject: dots\r\n\r\n..\r\n...x\r\n.y\r\n.\r\n"),
                         "Subject: dots\r\n\r\n.\r\n..x\r\ny\r\n")

    def test_empty_message_is_relayed_empty(self):
        self.assertEqual(self.relayed_body(b".\r\n"), "")

    def test_limits_get_their_replies(self):
        port = self.balancer(max_recipients=3, max_message_size="2KiB", max_errors=5,
                             max_connections_per_client=2)
        c = self.session(port)
        self.assertTrue(c.command("NOOP " + "x" * 600)[-1].startswith("500 5.5.2"))
        # 10 MB on one line: answered, and the session survives.
        c.send(b"NOOP " + b"y" * (10 << 20) + b"\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("500 5.5.2"))
        self.assertTrue(c.command("MAIL FROM:<a@example.org> SIZE=999999")[-1].startswith("552 5.3.4"))
        c.command("MAIL FROM:<a@example.org>")
        for i in range(3):
            self.assertEqual(c.command(f"RCPT TO:<r{i}@example.net>")[-1][:3], "250")
        self.assertTrue(c.command("RCPT TO:<r9@example.net>")[-1].startswith("452 4.5.3"))
        c.command("DATA")
        c.send(b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 100 + b".\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("552 5.3.4"))
        # Per-client connection limit: this is the 2nd, the 3rd is refused.
        d = SmtpClient(port)
        self.addCleanup(d.close)
        self.assertEqual(d.code(), 220)
        e = SmtpClient(port)
        self.addCleanup(e.close)
        self.assertTrue(e.read_reply()[-1].startswith("421 4.7.0"))
        # Error limit: the fifth error closes the session with 421.
        for _ in range(4):
            reply = c.command("BOGUS")[-1]
        self.assertTrue(reply.startswith("421 4.7.0"), reply)
        self.assertEqual(len([m for m in self.sink.messages() if m["from"] == "a@example.org"]), 0)

    def test_command_line_and_data_line_bounds(self):
        port = self.balancer(max_data_line_length=1000)
        c = self.session(port)
        # 512 octets with CRLF is the RFC 5321 limit: accepted; 513 is not.
        line = "NOOP " + "x" * (512 - 2 - 5)
        self.assertEqual(len(line) + 2, 512)
        self.assertEqual(c.command(line)[-1][:3], "250")
        self.assertTrue(c.command(line + "x")[-1].startswith("500 5.5.2"))
        # A message line of 1001 octets with CRLF is refused whole with 550.
        c.command("MAIL FROM:<a@example.org>")
        self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[-1][:3], "354")
        c.send(b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("550 5.6.0"))
        # 1000 is allowed.
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<b@example.net>")
        c.command("DATA")
        c.send(b"Subject: long\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("250"))
        wait_until(lambda: len(self.sink.messages()) == 1, what="the 1000-octet message")

    def test_relay_battery_refused_on_submission_without_auth(self):
        cert_dir = self.workdir
        ca = make_ca(cert_dir)
        cert, key = make_certificate(cert_dir, ca, "lb")
        # No AUTH is attempted: the verifier is never asked.
        port = self.balancer(role="submission",
                             tls={"mode": "starttls", "cert": cert, "key": key},
                             auth={"verifier": "dovecot",
                                   "dovecot_socket": f"{self.workdir}/no-such-socket"})
        c = self.session(port)
        for rcpt in RELAY_BATTERY[:4] + ["<b@example.net>"]:
            reply = c.command("MAIL FROM:<spammer@evil.example>")[-1]
            # No transaction at all before authentication (RFC 4954 §6).
            self.assertTrue(reply.startswith("530 5.7.0"), reply)
            reply = c.command(f"RCPT TO:{rcpt}")[-1]
            self.assertTrue(reply.startswith("503"), f"{rcpt}: {reply}")
        self.assertEqual(self.sink.messages(), [])

    def test_pipelined_flood_without_reading_stays_bounded(self):
        port = self.balancer(max_commands=20000)
        c = SmtpClient(port)
        self.addCleanup(c.close)
        c.sock.settimeout(30)
        c.send(b"EHLO flood.example\r\n" + b"NOOP\r\n" * 10000 + b"QUIT\r\n")
        data = b""
        while True:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        self.assertEqual(data.count(b"250 2.0.0 Ok\r\n"), 10000)
        self.assertTrue(data.endswith(b"221 2.0.0 Bye\r\n"))

    def test_client_that_never_reads_replies_is_held_back_not_buffered(self):
        # A million pipelined commands (6 MB) whose 14 MB of replies the
        # client does not read (more than loopback's socket buffers hold):
        # smtplb must stop reading once its replies cannot be written, not
        # queue them. Its memory is measured while
        # the client is stuck, then every reply must still arrive in order.
        count = 1000000
        port = self.balancer(max_commands=count + 10)
        c = SmtpClient(port)
        self.addCleanup(c.close)
        c.sock.settimeout(60)
        self.assertEqual(c.code(), 220)
        pid = self.lb.process.proc.pid
        before = rss_kib(pid)
        flood = b"NOOP\r\n" * count + b"QUIT\r\n"
        sender = threading.Thread(target=c.sock.sendall, args=(flood,), daemon=True)
        sender.start()
        time.sleep(1.5)  # smtplb answers until the socket buffers are full, then waits
        held = rss_kib(pid) - before
        self.assertTrue(sender.is_alive(), "the whole flood was taken in without back pressure")
        data = bytearray()
        while chunk := c.sock.recv(1 << 20):
            data += chunk
        sender.join(timeout=30)
        self.assertEqual(data.count(b"250 2.0.0 Ok\r\n"), count)
        self.assertTrue(data.endswith(b"221 2.0.0 Bye\r\n"))
        print(f"\n{held} KiB of smtplb RSS while {count} replies waited to be read")
        # AddressSanitizer keeps freed memory in quarantine (a million
        # commands' worth of small allocations), so RSS says nothing there;
        # the back pressure above is checked in both builds.
        if not sanitized_build(pid):
            self.assertLess(held, 4096, f"{held} KiB held while the client did not read")

    def test_slow_data_times_out_and_nothing_is_delivered(self):
        port = self.balancer(data_timeout="1s")
        c = self.session(port)
        c.command("MAIL FROM:<a@example.org>")
        self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[-1][:3], "354")
        c.send(b"Subject: slow\r\n\r\npart of a body")
        reply = c.read_reply()[-1]
        self.assertTrue(reply.startswith("421 4.4.2"), reply)
        time.sleep(0.3)
        self.assertEqual(self.sink.messages(), [])
        wait_until(lambda: self.lb.tracking_records(), what="tracking record")
        self.assertEqual(self.lb.tracking_records()[-1]["result"], "aborted")

    def test_idle_client_times_out_with_421(self):
        port = self.balancer(command_timeout="1s")
        c = SmtpClient(port)
        self.addCleanup(c.close)
        self.assertEqual(c.code(), 220)
        start = time.time()
        reply = c.read_reply()[-1]
        self.assertTrue(reply.startswith("421 4.4.2"), reply)
        self.assertLess(time.time() - start, 10)

    def test_idle_timeout_survives_a_transaction_longer_than_it(self):
        # Issue 23: the client's idle timeout ran on while the session waited
        # on a slow backend, fired with nothing to cancel and was gone for
        # good: the session never timed out again and held its connection
        # slots. It counts only while smtplb waits for the client.
        slow = Sink(self.workdir, "slow", faults=["message=delay:6s"]).start()
        self.addCleanup(slow.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("slow", slow.port)], pool_options={"health": {"enabled": False}},
            listener_options={"command_timeout": "3s", "data_timeout": "3s"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        c = SmtpClient(port, timeout=30)
        self.addCleanup(c.close)
        self.assertEqual(c.code(), 220)
        self.assertEqual(c.command("EHLO slow.example")[-1][:3], "250")
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[-1][:3], "250")
        self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[-1][:3], "354")
        # The backend takes 6 s over the final ".", longer than both timeouts:
        # not the client's time, so the message goes through.
        reply = c.command("Subject: slow backend\r\n\r\nbody\r\n.")[-1]
        self.assertTrue(reply.startswith("250"), reply)
        self.assertEqual(len(slow.messages()), 1)
        # Now the client idles: command_timeout (3 s) counts from here, and
        # the session must end (the bug: no 421 after 20 s and more).
        idle_since = time.monotonic()
        c.sock.settimeout(20)
        try:
            reply = c.read_reply()[-1]
        except socket.timeout:
            self.fail("no 421 after 20 s idle: the session lost its idle timeout")
        idled = time.monotonic() - idle_since
        self.assertTrue(reply.startswith("421 4.4.2"), reply)
        # Within command_timeout plus the deadlines' resolution, with room for
        # a loaded machine; and not before command_timeout.
        self.assertGreater(idled, 2.5)
        self.assertLess(idled, 3 + 5)
        self.assertEqual(c.sock.recv(100), b"")  # and the connection is closed

    def test_a_slow_final_reply_gets_its_own_timeout(self):
        # The backend answers the final "." after 4 s: reply_timeout (2 s)
        # bounds the other replies, final_reply_timeout this one.
        slow = Sink(self.workdir, "slow", faults=["message=delay:4s"]).start()
        self.addCleanup(slow.stop)
        for final, delivered in (("1m", True), ("2s", False)):
            port = free_port()
            lb = Smtplb(self.workdir, configs.balancer(
                port, [("slow", slow.port)],
                pool_options={"health": {"enabled": False}, "reply_timeout": "2s",
                              "final_reply_timeout": final, "max_attempts": 1}))
            lb.start(port)
            self.addCleanup(lb.stop)
            c = SmtpClient(port, timeout=30)
            self.addCleanup(c.close)
            self.assertEqual(c.code(), 220)
            self.assertEqual(c.command("EHLO slow.example")[-1][:3], "250")
            self.assertEqual(c.command("MAIL FROM:<a@example.org>")[-1][:3], "250")
            self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
            self.assertEqual(c.command("DATA")[-1][:3], "354")
            reply = c.command(f"Subject: final {final}\r\n\r\nbody\r\n.")[-1]
            if delivered:
                self.assertTrue(reply.startswith("250"), f"{final}: {reply}")
            else:
                self.assertTrue(reply.startswith("4"), f"{final}: {reply}")
            c.command("QUIT")
            lb.stop()
            wait_until(lambda: lb.tracking_records(), what="tracking record")
            record = lb.tracking_records()[-1]
            self.assertEqual(record["result"], "relayed" if delivered else "tempfailed", record)
            if not delivered:
                self.assertIn("timeout", json.dumps(record["attempts"]), record)


if __name__ == "__main__":
    main()
