"""Slow clients through smtplb against real Postfix (DESIGN.md: the delivery
contract, and "no client can change another client's service": a slow
upload may not mark a backend unhealthy or use up shared capacity).

Postfix's smtpd times every read (`smtpd_timeout`) and serves one client per
process, at most the service's process limit at once. A client may be much
slower than that, so smtplb must not pass a client's pace on to a backend: a
backend connection that has waited on its client longer than the pool's
`backend_hold_time` is given back (QUIT, or closed when in DATA), and the
envelope is replayed on a fresh connection when the client goes on. These
tests say what the client and Postfix see, not how smtplb does it.
"""
import os
import subprocess
import threading
import time

import configs
import fidelity
from harness import (Postfix, Smtplb, SmtpClient, WorkdirTestCase, free_port, main,
                     postfix_available)

# The pool setting these tests are about: how long smtplb keeps a backend
# connection while it waits on its client; set explicitly so that the tests
# do not depend on its default. SMTPLB_TEST_BACKEND_HOLD_TIME="" leaves it
# out, to run them against a build from before it (which fails them all).
BACKEND_HOLD_TIME = os.environ.get("SMTPLB_TEST_BACKEND_HOLD_TIME", "1s") or None

# Postfix reads each command and each piece of a body within this.
SMTPD_TIMEOUT = "smtpd_timeout = 5s\n"

# Test 1: a message well over smtpd_timeout in the making, in steady writes
# each well within it.
UPLOAD_SIZE = 1024 * 1024
UPLOAD_CHUNKS = 40
UPLOAD_INTERVAL = 0.25  # seconds between chunks: 40 chunks take ~10 s

# Test 2: more slow clients than Postfix has smtpd processes.
SMTPD_PROCESSES = 20
SLOW_CLIENTS = 40
TRICKLE = b"hello slow\r\n"  # 12 bytes of body, one at a time
TRICKLE_INTERVAL = 2.0  # seconds before each byte: 24 s per body
SETTLE = 3.0  # seconds after every slow client is in its body
NORMAL_MARGIN = 1.0  # the normal client's allowance over its baseline

# Test 3: a pause between two RCPTs, longer than smtpd_timeout.
RCPT_PAUSE = 8.0

# Test 4: a client idle between two messages, longer than backend_hold_time
# and shorter than smtpd_timeout (so that Postfix does not close it first).
IDLE_PAUSE = 3.0

ENVELOPE_TIMEOUT = 35  # each reply before the body (smtplb's greeting_timeout is 30 s)
FINAL_TIMEOUT = 20  # the reply to the final "."


class Client(SmtpClient):
    """SmtpClient recording (step, the reply's last line) for every reply, a
    failure to read one recorded in its place."""

    def __init__(self, port, source, timeout=ENVELOPE_TIMEOUT):
        super().__init__(port, source=source, timeout=timeout)
        self.replies = []
        self.waits = []  # (step, seconds until its reply), for the failure messages

    def expect(self, step, line, first_digit):
        """Sends `line` (a command without its CRLF; bytes: sent as they are;
        None: nothing, e.g. for the banner), reads the reply; True when its
        code starts with first_digit."""
        start = time.monotonic()
        try:
            if line is not None:
                self.send(line if isinstance(line, bytes) else line + "\r\n")
            last = self.read_reply()[-1]
        except (OSError, ConnectionError) as e:  # a timeout is an OSError too
            last = f"no reply: {e!r}"
        self.waits.append((step, round(time.monotonic() - start, 2)))
        self.replies.append((step, last))
        if last.startswith("no reply"):
            return False
        return last.startswith(first_digit)

    def reply_to(self, step):
        return dict(self.replies).get(step, "(not reached)")

    def quit(self):
        """QUIT unless the last reply never came (the session is broken), then close."""
        try:
            if self.replies and self.replies[-1][1][:1].isdigit():
                self.expect("QUIT", "QUIT", "2")
        finally:
            self.close()


def connect(port, source, timeout=ENVELOPE_TIMEOUT):
    """A Client, or None with the reason when not even the connection works."""
    try:
        return Client(port, source, timeout), None
    except OSError as e:
        return None, f"connect failed: {e!r}"


def envelope(c, sender, recipients):
    """Banner, EHLO, MAIL, each RCPT, DATA: True when DATA got 354."""
    if not (c.expect("banner", None, "2") and c.expect("EHLO", "EHLO client.example", "2")
            and c.expect("MAIL", f"MAIL FROM:<{sender}>", "2")):
        return False
    for i, rcpt in enumerate(recipients):
        if not c.expect(f"RCPT {i + 1}", f"RCPT TO:<{rcpt}>", "2"):
            return False
    return c.expect("DATA", "DATA", "3")


def upload_message(message_id):
    """A message of at least UPLOAD_SIZE bytes (lines of 78), ending in CRLF."""
    head = f"Message-ID: <{message_id}>\r\nSubject: slow upload\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * -(-(UPLOAD_SIZE - len(head)) // len(line))


def slow_upload(port, source, message_id):
    """One message uploaded in UPLOAD_CHUNKS writes UPLOAD_INTERVAL apart;
    returns the Client (its replies) and the seconds the body took."""
    c, failed = connect(port, source)
    if c is None:
        raise AssertionError(failed)
    body = upload_message(message_id)
    took = 0.0
    try:
        if envelope(c, "alice@example.org", ["bob@example.net"]):
            start = time.monotonic()
            step = -(-len(body) // UPLOAD_CHUNKS)
            try:
                for i in range(0, len(body), step):
                    if i:
                        time.sleep(UPLOAD_INTERVAL)
                    c.send(body[i:i + step])
                took = time.monotonic() - start
                c.sock.settimeout(FINAL_TIMEOUT)
                c.expect("end of data", b".\r\n", "2")
            except OSError as e:
                c.replies.append(("end of data", f"upload failed after "
                                  f"{time.monotonic() - start:.1f}s: {e!r}"))
    finally:
        c.quit()
    return c, took


def normal_message(port, source, message_id):
    """One ordinary message; returns the Client and the seconds from connect
    to the reply to its final "." (None when it did not get that far)."""
    start, took = time.monotonic(), None
    c, failed = connect(port, source)
    if c is None:
        return None, failed
    try:
        if envelope(c, "carol@example.org", ["dave@example.net"]):
            c.expect("end of data", f"Message-ID: <{message_id}>\r\nSubject: normal\r\n\r\n"
                                    "an ordinary message\r\n.\r\n".encode(), "2")
        took = time.monotonic() - start
        c.quit()
    except OSError:
        c.close()
    return c, took


class SlowBody(threading.Thread):
    """A client that sends its envelope and DATA at once, then its body a
    byte every TRICKLE_INTERVAL seconds, then the final "."."""

    def __init__(self, port, source, sender):
        super().__init__(daemon=True)
        self.port, self.source, self.sender = port, source, sender
        self.in_body = threading.Event()
        self.done = threading.Event()
        self.client = None
        self.failed = None

    def run(self):
        try:
            self.client, self.failed = connect(self.port, self.source)
            c = self.client
            if c is None or not envelope(c, self.sender, ["bob@example.net"]):
                return
            self.in_body.set()
            try:
                for byte in TRICKLE:
                    time.sleep(TRICKLE_INTERVAL)
                    c.send(bytes([byte]))
                c.sock.settimeout(FINAL_TIMEOUT)
                c.expect("end of data", b".\r\n", "2")
            except OSError as e:
                c.replies.append(("end of data", f"body not sent: {e!r}"))
            c.quit()
        except OSError:
            pass
        finally:
            if self.client:
                self.client.close()
            self.done.set()

    def outcome(self):
        if self.client is None:
            return self.failed or "(not started)"
        return self.client.reply_to("end of data") if self.in_body.is_set() \
            else self.client.replies[-1:] or "(no reply)"


def complaints(pf):
    """Postfix's log lines that say why a session went wrong (not the
    harness's own probe of its port, nor its NIS warnings)."""
    keys = ("timeout after", "lost connection after", "process limit", "too many errors",
            "warning:")
    return [line for line in pf.log_lines() if any(k in line for k in keys)
            and "NIS" not in line and "after CONNECT from localhost[" not in line][-25:]


def wait_delivered(pf, expected, timeout, **match):
    """delivered_with(**match) once it holds `expected` deliveries (status=sent)
    or timeout, plus a second so that a late copy shows too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(len(d["sent"]) for d in fidelity.delivered_with(pf, **match).values()) >= expected:
            break
        time.sleep(0.1)
    time.sleep(1)
    return fidelity.delivered_with(pf, **match)


class PostfixSlowClients(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def start_pair(self, name, extra_main):
        """A Postfix, and smtplb in front of it alone (probes off: only the
        test's own traffic judges the backend)."""
        pf = Postfix(self.workdir, name, extra_main=extra_main)
        pf.start()
        self.addCleanup(pf.stop)
        pool = {"health": {"enabled": False}}
        if BACKEND_HOLD_TIME is not None:
            pool["backend_hold_time"] = BACKEND_HOLD_TIME
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(name, pf.port)], pool_options=pool,
            server_options={"admin": "127.0.0.1:0"}), name=f"lb-{name}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return pf, port, lb

    @staticmethod
    def stop_clients(threads):
        """Ends the SlowBody threads still running (a test that failed early)."""
        for t in threads:
            if t.client:
                t.client.close()
        for t in threads:
            t.join(TRICKLE_INTERVAL + 1)

    def assert_backend_in_service(self, lb, name):
        """Up now, and never out of service during the test."""
        backend = lb.status()["pools"][0]["backends"][0]
        self.assertEqual((backend["health"], lb.health_changes(name)), ("up", []), backend)

    def test_a_slow_upload_outlasting_smtpd_timeout_is_delivered_once(self):
        pf, port, lb = self.start_pair("upload", SMTPD_TIMEOUT)
        # Straight to Postfix: every write comes well within smtpd_timeout.
        direct, took = slow_upload(pf.port, "127.0.0.2", "direct-upload@test")
        self.assertGreater(took, 5 + 2, "the upload must outlast smtpd_timeout")
        self.assertTrue(direct.reply_to("end of data").startswith("250"), direct.replies)
        copies = wait_delivered(pf, 1, 15, message_id="direct-upload@test")
        self.assertEqual([(d["sent"], d["size"] >= UPLOAD_SIZE) for d in copies.values()],
                         [(["bob@example.net"], True)], copies)

        through, took = slow_upload(port, "127.0.0.2", "lb-upload@test")
        final = through.reply_to("end of data")
        why = f"\nreplies: {through.replies}\nPostfix: " + "\n".join(complaints(pf))
        with self.subTest("the client's reply"):
            self.assertEqual(final[:1], direct.reply_to("end of data")[:1], why)
            self.assertTrue(final.startswith("250"), why)
        with self.subTest("delivered exactly once, whole"):
            copies = wait_delivered(pf, 1, 15 if final.startswith("250") else 2,
                                    message_id="lb-upload@test")
            self.assertEqual([(d["sent"], d["size"] >= UPLOAD_SIZE) for d in copies.values()],
                             [(["bob@example.net"], True)], f"{copies}{why}")
        with self.subTest("the backend stays in service"):
            self.assert_backend_in_service(lb, "upload")

    def test_slow_bodies_leave_room_for_others_on_a_process_limited_postfix(self):
        pf, port, lb = self.start_pair("limited",
                                       f"default_process_limit = {SMTPD_PROCESSES}\n")
        # The normal client alone, a few times: its usual time to a 250.
        baseline = []
        for i in range(3):
            c, took = normal_message(port, "127.0.0.3", f"baseline-{i}@test")
            self.assertTrue(c and c.reply_to("end of data").startswith("250"),
                            c.replies if c else took)
            baseline.append(took)
        allowed = max(baseline) + NORMAL_MARGIN

        slow = [SlowBody(port, f"127.0.1.{i + 1}", f"slow-{i:02d}@example.org")
                for i in range(SLOW_CLIENTS)]
        self.addCleanup(self.stop_clients, slow)
        for s in slow:
            s.start()
        started = time.monotonic()
        # Every slow client in its body (or out of the race), then a few seconds.
        deadline = started + 15
        while time.monotonic() < deadline and not all(
                s.in_body.is_set() or s.done.is_set() for s in slow):
            time.sleep(0.05)
        in_body = sum(s.in_body.is_set() for s in slow)
        in_body_after = time.monotonic() - started
        time.sleep(SETTLE)
        connections = lb.status()["pools"][0]["backends"][0]["connections"]

        c, took = normal_message(port, "127.0.0.3", "normal@test")
        normal = f"{c.replies}, waits {c.waits}" if c else took
        for s in slow:
            s.done.wait(max(0.0, started + ENVELOPE_TIMEOUT + len(TRICKLE) * TRICKLE_INTERVAL
                            + FINAL_TIMEOUT + 5 - time.monotonic()))
        outcomes = {s.sender: s.outcome() for s in slow}
        accepted = [s.sender for s in slow if s.in_body.is_set() and
                    s.client.reply_to("end of data").startswith("250")]
        why = (f"\nslow clients in their body after {in_body_after:.1f}s: {in_body} of "
               f"{SLOW_CLIENTS}; smtplb's connections to Postfix then: {connections}"
               f"\nbaseline {['%.2f' % t for t in baseline]}s; the normal client: {normal}, "
               f"{took if isinstance(took, str) else '%.2fs' % took}"
               f"\nslow clients' outcomes: {sorted(outcomes.items())}"
               "\nPostfix: " + "\n".join(complaints(pf)))

        with self.subTest("every slow client gets to its body"):
            self.assertEqual(in_body, SLOW_CLIENTS, why)
        with self.subTest("the normal client is served as fast as without them"):
            self.assertTrue(c and c.reply_to("end of data").startswith("250"), why)
            self.assertLessEqual(took, allowed, why)
        with self.subTest("every slow client gets 250"):
            self.assertEqual(len(accepted), SLOW_CLIENTS, why)
        with self.subTest("every accepted message delivered exactly once"):
            normal_accepted = bool(c and c.reply_to("end of data").startswith("250"))
            copies = wait_delivered(pf, len(baseline) + normal_accepted + len(accepted), 20)
            sent = {}
            for d in copies.values():
                sent.setdefault(d.get("sender"), []).extend(d["sent"])
            self.assertEqual({x: sent.get(x) for x in accepted},
                             {x: ["bob@example.net"] for x in accepted}, why)
            self.assertEqual(len(fidelity.delivered_with(pf, message_id="normal@test")),
                             int(normal_accepted), why)
        with self.subTest("the backend stays in service"):
            self.assert_backend_in_service(lb, "limited")

    def test_a_pause_between_recipients_outlasting_smtpd_timeout(self):
        pf, port, lb = self.start_pair("pause", SMTPD_TIMEOUT)
        rcpts = ["one@example.net", "two@example.net"]

        def paused(p, message_id):
            c, failed = connect(p, "127.0.0.2")
            if c is None:
                raise AssertionError(failed)
            try:
                if (c.expect("banner", None, "2") and c.expect("EHLO", "EHLO client.example", "2")
                        and c.expect("MAIL", "MAIL FROM:<alice@example.org>", "2")
                        and c.expect("RCPT 1", f"RCPT TO:<{rcpts[0]}>", "2")):
                    time.sleep(RCPT_PAUSE)
                    if (c.expect("RCPT 2", f"RCPT TO:<{rcpts[1]}>", "2")
                            and c.expect("DATA", "DATA", "3")):
                        c.expect("end of data", f"Message-ID: <{message_id}>\r\n"
                                                "Subject: paused\r\n\r\nhi\r\n.\r\n".encode(), "2")
                c.quit()
            except OSError:
                c.close()
            return c

        # Straight to Postfix the pause ends the session: smtplb is meant to
        # be kinder than its backend here.
        direct = paused(pf.port, "direct-pause@test")
        self.assertTrue(direct.reply_to("RCPT 2").startswith("421 4.4.2"), direct.replies)

        through = paused(port, "lb-pause@test")
        why = f"\nreplies: {through.replies}\nPostfix: " + "\n".join(complaints(pf))
        with self.subTest("both recipients accepted, then the message"):
            self.assertEqual([through.reply_to(s)[:3] for s in ("RCPT 1", "RCPT 2", "DATA",
                                                                "end of data")],
                             ["250", "250", "354", "250"], why)
        with self.subTest("delivered once to each recipient"):
            copies = wait_delivered(pf, 2, 15 if through.reply_to("end of data")
                                    .startswith("250") else 2, message_id="lb-pause@test")
            self.assertEqual(sorted(r for d in copies.values() for r in d["sent"]), rcpts,
                             f"{copies}{why}")
        with self.subTest("the backend stays in service"):
            self.assert_backend_in_service(lb, "pause")

    def test_a_client_idle_between_messages_does_not_keep_a_postfix_process(self):
        """Between transactions too: the session's idle connection, bound to
        this client by XCLIENT, holds an smtpd for it alone; after
        backend_hold_time it is closed, and the next message opens another."""
        pf, port, lb = self.start_pair("idle", SMTPD_TIMEOUT)

        def to_backend():
            out = subprocess.run(["ss", "-Htn", "state", "established",
                                  f"( dport = :{pf.port} )"], capture_output=True, text=True)
            return len(out.stdout.splitlines())

        def message(n):
            return f"Message-ID: <idle-{n}@test>\r\n\r\nhi\r\n.\r\n".encode()

        c, failed = connect(port, "127.0.0.2")
        self.assertIsNotNone(c, failed)
        try:
            self.assertTrue(envelope(c, "alice@example.org", ["bob@example.net"]), c.replies)
            self.assertTrue(c.expect("end of data 1", message(1), "2"), c.replies)
            held = to_backend()
            time.sleep(IDLE_PAUSE)
            idle = to_backend()
            self.assertTrue(c.expect("MAIL 2", "MAIL FROM:<alice@example.org>", "2")
                            and c.expect("RCPT 2", "RCPT TO:<bob@example.net>", "2")
                            and c.expect("DATA 2", "DATA", "3")
                            and c.expect("end of data 2", message(2), "2"), c.replies)
            c.quit()
        finally:
            c.close()
        with self.subTest("the idle connection is closed after backend_hold_time"):
            self.assertEqual((held, idle), (1, 0))
        with self.subTest("both messages delivered once"):
            for n in (1, 2):
                copies = wait_delivered(pf, 1, 15, message_id=f"idle-{n}@test")
                self.assertEqual(sum(len(d["sent"]) for d in copies.values()), 1, copies)
        with self.subTest("the backend stays in service"):
            self.assert_backend_in_service(lb, "idle")


if __name__ == "__main__":
    main()
