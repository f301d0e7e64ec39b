"""Hostile peers through the real binary, beyond single commands: backends
that refuse what the balancer needs, identities that need encoding and
splitting, trickled PROXY headers, STARTTLS abuse, thousands of slow
clients, clients stalled inside DATA, and connection floods."""
import json
import os
import resource
import smtplib
import socket
import ssl
import struct
import threading
import time
import urllib.request

import configs
from harness import (RawBackend, ScriptedBackend, Sink, SmtpClient, Smtplb, WorkdirTestCase, free_port, main,
                     make_ca, make_certificate, plain_answers, rss_kib, sanitized_build,
                     wait_until)


def xtext_decode(value):
    out, i = "", 0
    while i < len(value):
        if value[i] == "+":
            out += chr(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out += value[i]
            i += 1
    return out


class SlowReader(RawBackend):
    """An SMTP server that takes message bodies in slowly: `pace` seconds
    between reads of 16 KiB, or, with `stall`, none at all after its 354.
    Its receive buffer is small, so that the sender's writes wait on it."""

    def __init__(self, pace=0.0, stall=False):
        self.pace, self.stall = pace, stall
        self.received = []  # body sizes, one per message taken
        self.released = threading.Event()
        super().__init__(self._serve)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

    def stop(self):
        self.released.set()
        super().stop()

    def _serve(self, conn):
        buf = b""
        try:
            with conn:
                conn.sendall(b"220 slow.test ESMTP\r\n")
                while True:
                    while b"\r\n" not in buf:
                        data = conn.recv(4096)
                        if not data:
                            return
                        buf += data
                    line, buf = buf.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    if verb != b"DATA":
                        conn.sendall(b"250 slow.test\r\n" if verb in (b"EHLO", b"HELO")
                                     else b"250 2.0.0 Ok\r\n")
                        continue
                    conn.sendall(b"354 go ahead\r\n")
                    if self.stall:
                        self.released.wait()
                        return
                    body, buf = buf, b""
                    while not body.endswith(b"\r\n.\r\n"):
                        time.sleep(self.pace)
                        data = conn.recv(16384)
                        if not data:
                            return
                        # Only the tail is kept: enough to see the end.
                        self.size = getattr(self, "size", 0) + len(data)
                        body = (body + data)[-8:]
                    self.received.append(self.size)
                    self.size = 0
                    conn.sendall(b"250 2.0.0 Ok: queued\r\n")
        except OSError:
            pass


class HostilePeers(WorkdirTestCase):
    def start_lb(self, backends, pool_options=None, listener_options=None, server_options=None):
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, backends, pool_options=pool_options,
                                                   listener_options=listener_options,
                                                   server_options=server_options))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def scripted(self, answer, ehlo_lines):
        backend = ScriptedBackend(answer, ehlo_lines)
        self.addCleanup(backend.stop)
        return backend

    def test_backend_refusing_xclient_is_misconfigured_and_mail_goes_elsewhere(self):
        def refuse_xclient(line):
            if line.upper().startswith("XCLIENT"):
                return b"550 5.7.0 Error: insufficient authorization\r\n"
            return plain_answers(line)

        refuser = self.scripted(refuse_xclient, ("250-refuser.test", "250-PIPELINING",
                                                 "250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN"))
        good, = self.start_sinks("good")
        lb, port = self.start_lb([("refuser", refuser.port), ("good", good.port)],
                                 pool_options={"algorithm": "round_robin",
                                               "health": {"enabled": False}},
                                 server_options={"admin": "127.0.0.1:0"})
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.example")
            for i in range(6):
                s.sendmail("a@example.org", ["b@example.net"], f"Subject: m{i}\r\n\r\nhi\r\n")
        wait_until(lambda: len(good.messages()) == 6, what="six messages at the good backend")
        # Tried once, then left out: one XCLIENT, never a MAIL there.
        self.assertEqual(sum(x.upper().startswith("XCLIENT") for x in refuser.lines), 1)
        self.assertFalse(any(x.upper().startswith("MAIL") for x in refuser.lines))
        wait_until(lambda: lb.log_lines("to=misconfigured"), what="the health log line")
        self.assertIn("insufficient authorization", lb.log_lines("to=misconfigured")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/api/v1/status",
                                    timeout=10) as r:
            backends = {b["name"]: b for b in json.load(r)["pools"][0]["backends"]}
        self.assertEqual(backends["refuser"]["health"], "misconfigured")
        self.assertEqual(backends["good"]["health"], "up")
        wait_until(lambda: len(lb.tracking_records()) == 6, what="tracking records")
        first = [r for r in lb.tracking_records() if len(r["attempts"]) == 2]
        self.assertEqual(len(first), 1)
        self.assertEqual(first[0]["attempts"][0]["stage"], "xclient")
        self.assertEqual(first[0]["result"], "relayed")

    def test_a_clients_refused_helo_or_refused_xclient_never_takes_the_backend_out(self):
        # As Postfix: after XCLIENT ADDR=x the EHLO no longer offers XCLIENT
        # (x is not authorised) and another XCLIENT gets 550; with
        # smtpd_delay_reject = no a HELO checks refuse comes at EHLO.
        def postfix_like():
            impersonating = False

            def answer(line):
                nonlocal impersonating
                upper = line.upper()
                if upper.startswith("XCLIENT"):
                    if impersonating:
                        return b"550 5.7.0 Error: insufficient authorization\r\n"
                    impersonating = True
                    return b"220 strict.test ESMTP\r\n"
                if upper.startswith("EHLO FOO BAR"):
                    return b"501 5.5.2 <foo bar>: Helo command rejected: Invalid name\r\n"
                if upper.startswith("EHLO"):
                    return b"250-strict.test\r\n250 PIPELINING\r\n" if impersonating \
                        else backend.ehlo
                return plain_answers(line)
            return answer

        backend = ScriptedBackend(None, ("250-strict.test", "250-PIPELINING",
                                         "250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN"),
                                  per_connection=postfix_like)
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("only", backend.port)],
                                 pool_options={"health": {"enabled": False}},
                                 server_options={"admin": "127.0.0.1:0"})
        replies = {}
        for helo in ("foo bar", "good-a.example", "good-b.example", "good-a.example"):
            c = SmtpClient(port)
            c.read_reply()
            c.command(f"EHLO {helo}")
            c.command("MAIL FROM:<a@example.org>")
            rcpt = c.command("RCPT TO:<b@example.net>")[-1]
            if rcpt.startswith("250"):
                c.command("DATA")
                c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
                rcpt = c.read_reply()[-1]
            replies.setdefault(helo, []).append(rcpt)
            c.command("QUIT")
            c.close()
        # The backend's verdict on that client's HELO is that client's answer.
        self.assertTrue(replies["foo bar"][0].startswith("501 5.5.2 <foo bar>: Helo command"),
                        replies)
        # Each later client on a connection of its own: no second XCLIENT
        # on a connection that speaks for someone else.
        for helo in ("good-a.example", "good-b.example"):
            self.assertTrue(all(r.startswith("250") for r in replies[helo]), replies)
        with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/api/v1/status",
                                    timeout=10) as r:
            only = json.load(r)["pools"][0]["backends"][0]
        self.assertEqual(only["health"], "up")
        self.assertFalse(lb.log_lines("to=misconfigured"))
        self.assertFalse(lb.log_lines("to=down"))

    def test_xclient_is_one_command_and_the_helo_follows_as_the_client_gave_it(self):
        def accept_xclient(line):
            if line.upper().startswith("XCLIENT"):
                return b"220 scripted.test ESMTP\r\n"
            return plain_answers(line)

        backend = self.scripted(accept_xclient, ("250-scripted.test", "250-PIPELINING",
                                                 "250 XCLIENT NAME ADDR PORT PROTO HELO LOGIN"))
        lb, port = self.start_lb([("b", backend.port)], pool_options={"health": {"enabled": False}})
        # 150 characters that xtext triples (450 octets, past the 255 Postfix
        # takes in an XCLIENT value), then 270 with 90 to encode, then two
        # words (in XCLIENT as "foo+20bar").
        for helo in ("+" * 150, "a+b=c." * 45, "foo bar"):
            backend.lines.clear()
            c = SmtpClient(port)
            self.addCleanup(c.close)
            c.read_reply()
            self.assertEqual(c.command(f"EHLO {helo}")[-1][:3], "250")
            c.command("MAIL FROM:<a@example.org>")
            self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
            c.command("DATA")
            c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
            self.assertEqual(c.read_reply()[-1][:3], "250")
            c.close()
            xclient = [x for x in backend.lines if x.upper().startswith("XCLIENT")]
            # One command: Postfix judges a second against the first's client.
            self.assertEqual(len(xclient), 1, xclient)
            self.assertLessEqual(len(xclient[0]) + 2, 2048, xclient)
            attributes = {}
            for word in xclient[0].split()[1:]:
                name, value = word.split("=", 1)
                # xtext: no "+" or "=" or space unencoded in a value.
                self.assertNotIn("=", value)
                attributes[name] = xtext_decode(value)
            self.assertEqual(attributes["ADDR"], "127.0.0.1")
            encoded = "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}"
                              for c in helo)
            # Postfix refuses a value over 255 octets as sent: left out.
            if len(encoded) <= 255:
                self.assertEqual(attributes["HELO"], helo)
            else:
                self.assertNotIn("HELO", attributes)
            # The EHLO after XCLIENT carries the client's own name, byte for
            # byte: the backend records and judges it, as if directly.
            after = backend.lines[backend.lines.index(xclient[0]) + 1]
            self.assertEqual(after, f"EHLO {helo}")

    def test_trickled_proxy_header_is_read_whole(self):
        sink, = self.start_sinks("sink")
        lb, port = self.start_lb([("sink", sink.port)],
                                 listener_options={"proxy_protocol": "any",
                                                   "proxy_trusted_networks": ["127.0.0.0/8"],
                                                   "proxy_timeout": "5s"})
        sig = b"\r\n\r\n\x00\r\nQUIT\n"
        header = sig + bytes([0x21, 0x11]) + struct.pack("!H", 12) + \
            socket.inet_aton("198.51.100.9") + socket.inet_aton("127.0.0.1") + \
            struct.pack("!HH", 4242, 25)
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(c.close)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in header:  # one byte per segment
            c.sendall(bytes([byte]))
            time.sleep(0.01)
        f = c.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220"))
        c.sendall(b"EHLO trickle.example\r\nMAIL FROM:<a@example.org>\r\n"
                  b"RCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = []
        while len(replies) < 4 or replies[-1][3:4] == b"-":
            replies.append(f.readline())
        c.sendall(b"Subject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        self.assertTrue(f.readline().startswith(b"250"))
        wait_until(lambda: sink.messages(), what="the message")
        self.assertEqual(sink.messages()[0]["client"], "198.51.100.9")

    def test_starttls_abuse(self):
        ca = make_ca(self.workdir)
        cert, key = make_certificate(self.workdir, ca, "lb", dns=("lb.test",))
        sink, = self.start_sinks("sink")
        lb, port = self.start_lb([("sink", sink.port)],
                                 listener_options={"tls": {"mode": "starttls", "cert": cert,
                                                           "key": key}})
        c = SmtpClient(port)
        self.addCleanup(c.close)
        c.read_reply()
        c.command("EHLO abuser.example")
        self.assertTrue(c.command("STARTTLS now")[-1].startswith("501"))
        # STARTTLS during a transaction is out of sequence.
        c.command("MAIL FROM:<a@example.org>")
        self.assertTrue(c.command("STARTTLS")[-1].startswith("503"))
        c.command("RSET")
        # After the handshake nothing from before counts: EHLO again first.
        context = ssl.create_default_context(cafile=ca[0])
        context.check_hostname = False
        self.assertEqual(c.command("STARTTLS")[-1][:3], "220")
        tls = context.wrap_socket(c.sock, server_hostname="lb.test")
        f = tls.makefile("rb")

        def command(line):
            tls.sendall(line.encode() + b"\r\n")
            replies = [f.readline()]
            while replies[-1][3:4] == b"-":
                replies.append(f.readline())
            return replies[-1].decode()

        self.assertTrue(command("MAIL FROM:<a@example.org>").startswith("503"))
        ehlo = []
        tls.sendall(b"EHLO abuser.example\r\n")
        ehlo.append(f.readline())
        while ehlo[-1][3:4] == b"-":
            ehlo.append(f.readline())
        self.assertFalse(any(b"STARTTLS" in x for x in ehlo), ehlo)  # not offered again
        self.assertTrue(command("STARTTLS").startswith("503"))  # already in TLS
        self.assertTrue(command("MAIL FROM:<a@example.org>").startswith("250"))
        tls.close()

    def use_hard_descriptor_limit(self):
        """Raises this process's descriptor limit to the hard one for the
        test; returns it."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        return hard

    def test_thousands_of_slow_clients_do_not_starve_a_normal_one(self):
        hard = self.use_hard_descriptor_limit()
        # The test needs a descriptor per slow client, and so does smtplb.
        count = min(5000, (hard - 500) // 2)
        self.assertGreaterEqual(count, 1000, f"descriptor limit {hard} is too low for this test")
        sink, = self.start_sinks("sink")
        lb, port = self.start_lb([("sink", sink.port)],
                                 listener_options={"max_connections": count + 100,
                                                   "max_connections_per_client": count + 100})
        before = rss_kib(lb.process.proc.pid)
        slow = []
        try:
            for i in range(count):
                # Spread over loopback sources; each sends half a command.
                s = connect_from_many(port, i)
                s.sendall(b"EH")
                slow.append(s)
            # Every one of them has been accepted and greeted.
            for s in slow:
                self.assertTrue(s.recv(100).startswith(b"220"))
            held = rss_kib(lb.process.proc.pid) - before
            # A normal client is still served, promptly and fully.
            start = time.monotonic()
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("a@example.org", ["b@example.net"], "Subject: normal\r\n\r\nhi\r\n")
            self.assertLess(time.monotonic() - start, 10)
            wait_until(lambda: sink.messages(), what="the normal message")
        finally:
            for s in slow:
                s.close()
        # Bounded memory: a few KiB each (16 KiB would mean a buffer leak;
        # AddressSanitizer's redzones and quarantine cost a few times more).
        bound = 64 if sanitized_build(lb.process.proc.pid) else 16
        self.assertLess(held / count, bound, f"{held} KiB for {count} slow clients")
        print(f"\n{count} slow clients held {held} KiB of smtplb RSS ({held / count:.1f} each)")

    def test_clients_stalled_inside_data_hold_bounded_memory(self):
        # Slowloris inside a message: each client has a backend transaction
        # open and part of a body sent, then goes quiet. What smtplb holds
        # for each is that part plus a bounded overhead, not a full-size
        # buffer per client, and a normal client is still served.
        hard = self.use_hard_descriptor_limit()
        count = min(1000, (hard - 500) // 3)  # client, session and backend descriptors
        self.assertGreaterEqual(count, 500, f"descriptor limit {hard} is too low for this test")
        body_part = b"Subject: stalled\r\n\r\n" + b"x" * 78 + b"\r\n"
        body_part *= 2048 // len(body_part)
        sink, = self.start_sinks("sink")
        lb, port = self.start_lb([("sink", sink.port)],
                                 listener_options={"max_connections": count + 100,
                                                   "max_connections_per_client": count + 100,
                                                   "data_timeout": "5m"})
        before = rss_kib(lb.process.proc.pid)
        stalled = []
        try:
            for i in range(count):
                s = connect_from_many(port, i)
                stalled.append(s)
                f = s.makefile("rb")
                self.assertTrue(f.readline().startswith(b"220"))
                s.sendall(b"HELO stalled.example\r\nMAIL FROM:<a@example.org>\r\n"
                          b"RCPT TO:<b@example.net>\r\nDATA\r\n")
                replies = [f.readline()[:3] for _ in range(4)]
                self.assertEqual(replies, [b"250", b"250", b"250", b"354"])
                s.sendall(body_part)
            time.sleep(0.5)  # the last parts are read
            held = rss_kib(lb.process.proc.pid) - before
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("a@example.org", ["b@example.net"], "Subject: normal\r\n\r\nhi\r\n")
            wait_until(lambda: sink.messages(), what="the normal message")
            self.assertEqual(len(sink.messages()), 1)  # none of the stalled ones
        finally:
            for s in stalled:
                s.close()
        per_client = held / count
        print(f"\n{count} clients stalled in DATA held {held} KiB of smtplb RSS "
              f"({per_client:.1f} each, {len(body_part) / 1024:.1f} KiB of body each)")
        bound = 160 if sanitized_build(lb.process.proc.pid) else 40
        self.assertLess(per_client, bound, f"{held} KiB for {count} clients stalled in DATA")

    def test_connection_flood_past_max_connections_is_refused_then_recovers(self):
        sink, = self.start_sinks("sink")
        lb, port = self.start_lb([("sink", sink.port)],
                                 listener_options={"max_connections": 50,
                                                   "max_connections_per_client": 200})
        held, replies = [], []
        try:
            for _ in range(120):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                held.append(s)
            for s in held:
                try:
                    replies.append(s.recv(200))
                except OSError:
                    replies.append(b"")
        finally:
            for s in held:
                s.close()
        greeted = [r for r in replies if r.startswith(b"220")]
        refused = [r for r in replies if r.startswith(b"421 4.7.0")]
        self.assertEqual(len(greeted), 50)
        self.assertEqual(len(refused), 70, replies[50:55])
        # Once they are gone, clients are served again.
        wait_until(lambda: _greets(port), what="a greeting after the flood")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("a@example.org", ["b@example.net"], "Subject: after\r\n\r\nhi\r\n")
        wait_until(lambda: sink.messages(), what="the message after the flood")

    def send_large_message(self, port, megabytes):
        c = SmtpClient(port, timeout=60)
        self.addCleanup(c.close)
        self.assertEqual(c.code(), 220)
        self.assertEqual(c.command("EHLO big.example")[-1][:3], "250")
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[-1][:3], "250")
        self.assertEqual(c.command("RCPT TO:<b@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[-1][:3], "354")
        line = b"x" * 1022 + b"\r\n"
        c.send(b"Subject: large\r\n\r\n" + line * (megabytes * 1024) + b".\r\n")
        return c.read_reply()[-1]

    def test_a_large_body_to_a_slow_backend_is_not_cut_at_reply_timeout(self):
        # 16 MiB taken at about 3 MB/s: several seconds of writes, each of
        # which makes progress. They used to run under the deadline of the
        # wait for the 354 (reply_timeout, 1 s here) and were cut.
        backend = SlowReader(pace=0.005)
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("slow", backend.port)],
                                 pool_options={"health": {"enabled": False},
                                               "reply_timeout": "1s", "max_attempts": 1})
        reply = self.send_large_message(port, 16)
        self.assertTrue(reply.startswith("250"), reply)
        self.assertEqual(len(backend.received), 1)
        self.assertGreater(backend.received[0], 16 << 20)

    def test_a_backend_that_stops_reading_the_body_fails_within_data_timeout(self):
        # A body write that makes no progress gets the pool's data_timeout
        # (2 s), not the reply_timeout of an earlier step (1 min here).
        backend = SlowReader(stall=True)
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("stalls", backend.port)],
                                 pool_options={"health": {"enabled": False},
                                               "reply_timeout": "1m", "data_timeout": "2s",
                                               "max_attempts": 1})
        reply = self.send_large_message(port, 16)  # the client waits up to 60 s
        self.assertTrue(reply.startswith("451"), reply)
        wait_until(lambda: lb.tracking_records(), what="tracking record")
        record = lb.tracking_records()[-1]
        self.assertEqual(record["result"], "tempfailed", record)
        self.assertIn("timeout", json.dumps(record["attempts"]), record)


def connect_from_many(port, i):
    """The i-th of many clients, spread over loopback source addresses."""
    return socket.create_connection(("127.0.0.1", port), timeout=30,
                                    source_address=(f"127.0.{1 + i // 250}.{1 + i % 250}", 0))


def _greets(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return s.recv(100).startswith(b"220")


if __name__ == "__main__":
    main()
