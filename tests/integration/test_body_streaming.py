"""The body streamed to the backend as it arrives (issue 29): a large message
reaches the backend before the client's final ".", a small or slow one goes
whole at its end as before, a backend lost midway costs the client nothing
(the whole message goes to another), and what arrives is byte for byte what
the client sent: against a counting fake, smtplb's sink, and a real Postfix
compared with the same client talking to it directly."""
import re
import smtplib
import threading
import time
import urllib.request

import configs
import fidelity
from harness import (Postfix, RawBackend, Sink, Smtplb, SmtpClient, WorkdirTestCase, free_port,
                     main, postfix_available, wait_until)

LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-streamed-body\r\n"


def body(octets, marker):
    """About `octets` of message in transmission form (a few lines start with
    a dot, stuffed), ending with a line naming `marker`."""
    head = f"Subject: {marker}\r\nMessage-ID: <{marker}@test>\r\n\r\n".encode()
    lines = [head]
    size = len(head)
    n = 0
    while size < octets:
        line = b".." + LINE if n % 1000 == 999 else LINE
        lines.append(line)
        size += len(line)
        n += 1
    lines.append(f"end-of-{marker}\r\n".encode())
    return b"".join(lines)


class CountingBackend(RawBackend):
    """An SMTP server (PIPELINING, 8BITMIME, SIZE) that counts each body's
    octets as they arrive and keeps every message whole (transmission form,
    without the final "."). With `close_after`, it drops the connection once
    that many octets of a body have come."""

    def __init__(self, close_after=None):
        self.octets = 0
        self.bodies = []
        self.close_after = close_after
        self.lock = threading.Lock()
        super().__init__(self._serve)

    def _serve(self, conn):
        try:
            with conn:
                f = conn.makefile("rb")
                conn.sendall(b"220 counting.test ESMTP\r\n")
                for raw in f:
                    verb = raw[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        conn.sendall(b"250-counting.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                     b"250 SIZE 104857600\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        if not self._take_body(f):
                            return
                        conn.sendall(b"250 2.0.0 Ok: queued as COUNTED\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass

    def _take_body(self, f):
        parts = []
        with self.lock:
            self.octets = 0
        for raw in f:
            if raw == b".\r\n":
                with self.lock:
                    self.bodies.append(b"".join(parts))
                return True
            parts.append(raw)
            with self.lock:
                self.octets += len(raw)
                cut = self.close_after is not None and self.octets >= self.close_after
            if cut:
                return False
        return False

    def received(self):
        with self.lock:
            return self.octets


def metric(lb, name, backend):
    with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf'^{name}{{[^}}]*backend="{backend}"[^}}]*}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def open_data(port, size=None, source="127.0.0.2"):
    """A raw client in DATA, after its 354 (SIZE= declared when given)."""
    c = SmtpClient(port, source=source, timeout=30)
    assert c.code() == 220
    c.command("EHLO client.example")
    size_param = f" SIZE={size}" if size else ""
    assert c.command(f"MAIL FROM:<alice@example.org>{size_param}")[-1].startswith("250")
    assert c.command("RCPT TO:<bob@example.net>")[-1].startswith("250")
    assert c.command("DATA")[-1].startswith("354")
    return c


class BodyStreaming(WorkdirTestCase):
    def start_balancer(self, backends, hold="3s"):
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, backends,
            pool_options={"health": {"enabled": False}, "backend_hold_time": hold},
            server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        return port, lb

    def test_a_large_body_reaches_the_backend_before_its_end(self):
        backend = CountingBackend()
        self.addCleanup(backend.stop)
        port, lb = self.start_balancer([("counting", backend.port)])
        message = body(3 << 20, "large")
        half = len(message) // 2
        # Twice in one session (the backend connection reused), with SIZE=
        # and without: the first half must reach the backend while the
        # client waits before sending the rest.
        c = None
        for size in (len(message), None):
            if c is None:
                c = open_data(port, size)
            else:
                assert c.command(
                    "MAIL FROM:<alice@example.org>" + (f" SIZE={size}" if size else ""))[-1][0] == "2"
                assert c.command("RCPT TO:<bob@example.net>")[-1].startswith("250")
                assert c.command("DATA")[-1].startswith("354")
            c.send(message[:half])
            # All but the last step's worth (smtplb writes 256 KiB at a time).
            wait_until(lambda: backend.received() >= half - 320 * 1024, timeout=10,
                       what="the first half of the body at the backend before the client's end")
            c.send(message[half:] + b".\r\n")
            self.assertTrue(c.read_reply()[-1].startswith("250"))
        c.command("QUIT")
        c.close()
        self.assertEqual(backend.bodies, [message, message])
        self.assertEqual(metric(lb, "smtplb_backend_streamed_messages_total", "counting"), 2)

    def test_a_small_or_slow_body_goes_whole_at_its_end(self):
        backend = CountingBackend()
        self.addCleanup(backend.stop)
        port, lb = self.start_balancer([("counting", backend.port)], hold="1s")
        small = body(48 * 1024, "small")
        c = open_data(port, len(small))
        c.send(small[:40000])
        time.sleep(0.5)
        self.assertEqual(backend.received(), 0, "a small body streamed")
        c.send(small[40000:] + b".\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("250"))
        # 1 MiB declared, 16 KiB every 0.1 s for 1.5 s: at that rate the
        # rest would take seconds, past the 1 s hold, which lets the backend
        # go; the message goes whole, to a new connection, at its end.
        slow = body(1 << 20, "slow")
        self.assertTrue(c.command(f"MAIL FROM:<alice@example.org> SIZE={len(slow)}")[-1][0] == "2")
        c.command("RCPT TO:<bob@example.net>")
        self.assertTrue(c.command("DATA")[-1].startswith("354"))
        slow_part = 15 * 16 * 1024
        for i in range(0, slow_part, 16 * 1024):
            c.send(slow[i:i + 16 * 1024])
            time.sleep(0.1)
        self.assertEqual(backend.received(), 0, "a body that would outlast the hold streamed")
        c.send(slow[slow_part:] + b".\r\n")
        self.assertTrue(c.read_reply()[-1].startswith("250"))
        c.close()
        self.assertEqual(backend.bodies, [small, slow])
        self.assertEqual(metric(lb, "smtplb_backend_streamed_messages_total", "counting"), 0)

    def test_a_backend_lost_midway_costs_the_client_nothing(self):
        # The preferred backend drops the connection 512 KiB into the body;
        # the whole message then goes to the sink, once, byte for byte.
        cut = CountingBackend(close_after=512 * 1024)
        self.addCleanup(cut.stop)
        sink = Sink(self.workdir, "sink").start()
        self.addCleanup(sink.stop)
        port, lb = self.start_balancer([("cut", cut.port, {"priority": 5}),
                                        ("sink", sink.port, {"priority": 10})])
        message = body(2 << 20, "lost")
        c = open_data(port, len(message))
        c.send(message[:1 << 20])
        wait_until(lambda: metric(lb, "smtplb_backend_streamed_messages_total", "cut") == 1,
                   timeout=10, what="the body streaming to the first backend")
        time.sleep(0.3)  # its connection is gone by now
        c.send(message[1 << 20:] + b".\r\n")
        reply = c.read_reply()[-1]
        c.close()
        self.assertTrue(reply.startswith("250"), reply)
        self.assertEqual(cut.bodies, [])
        got = sink.messages()
        self.assertEqual(len(got), 1, got and [m["size"] for m in got])
        # The sink counts the content (unstuffed), as Postfix would store it,
        # and records its first 64 KiB.
        content = message.replace(b"\r\n..", b"\r\n.")
        self.assertEqual(got[0]["size"], len(content))
        self.assertTrue(content.startswith(got[0]["body"].encode()))
        attempts = lb.tracking_records()[-1]["attempts"]
        self.assertEqual([a["backend"] for a in attempts], ["cut", "sink"], attempts)


class BodyStreamingPostfix(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def test_streamed_messages_reach_postfix_whole_as_they_do_directly(self):
        # Postfix logs each message's last line as cleanup reads it (body_checks
        # WARN), its size, and any transaction a client abandoned.
        checks = f"{self.workdir}/body_checks"
        with open(checks, "w") as f:
            f.write("/^end-of-/ WARN\n")
        pf = Postfix(self.workdir, "stream", extra_main=(
            f"body_checks = regexp:{checks}\nbody_checks_size_limit = 52428800\n"
            "message_size_limit = 52428800\n"))
        pf.start()
        self.addCleanup(pf.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("stream", pf.port)], pool_options={"health": {"enabled": False}},
            server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)

        def send(to_port, source, markers):
            # smtplib declares SIZE= where offered; two messages per session.
            with smtplib.SMTP("127.0.0.1", to_port, local_hostname="client.example",
                              source_address=(source, 0), timeout=60) as s:
                for marker in markers:
                    s.sendmail("alice@example.org", ["bob@example.net"],
                               body(2 << 20, marker).replace(b"\r\n..", b"\r\n."))

        send(pf.port, "127.0.0.2", ["direct-1", "direct-2"])
        # Two clients at once through smtplb, each with two messages.
        threads = [threading.Thread(target=send, args=(port, f"127.0.0.{3 + i}",
                                                       [f"lb-{i}-1", f"lb-{i}-2"]))
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        markers = ["direct-1", "direct-2", "lb-0-1", "lb-0-2", "lb-1-1", "lb-1-2"]

        def delivered():
            found = {m: fidelity.delivered_with(pf, message_id=f"{m}@test") for m in markers}
            return found if all(any(d["sent"] for d in v.values()) for v in found.values()) \
                else None
        wait_until(delivered, timeout=30, what="Postfix delivering every message")
        found = delivered()
        ends = [line for line in pf.log_lines() if re.search(r"warning: body end-of-", line)]
        direct_size = next(iter(found["direct-1"].values()))["size"]
        for m in markers:
            with self.subTest(m):
                copies = list(found[m].values())
                # Once, whole: Postfix's size differs from the direct copy's
                # only by its own Received: header (the client's name).
                self.assertEqual(len(copies), 1, copies)
                self.assertEqual(copies[0]["sent"], ["bob@example.net"])
                self.assertLess(abs(copies[0]["size"] - direct_size), 100, (copies, direct_size))
                self.assertEqual(sum(f"end-of-{m}" in line for line in ends), 1, ends)
        # No transaction abandoned midway (the harness's own port check
        # shows as "lost connection after CONNECT").
        self.assertEqual([line for line in pf.log_lines()
                          if re.search(r"lost connection after (?!CONNECT)", line)], [])
        self.assertEqual(metric(lb, "smtplb_backend_streamed_messages_total", "stream"), 4)


if __name__ == "__main__":
    main()
