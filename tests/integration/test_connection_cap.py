"""A backend's max_connections: smtplb never has more connections open to
it than that, over all its event loops; a transaction that needs another
waits (pool connection_wait) for one to close, and when the wait runs out
it goes to another backend, or gets 451 4.4.1, without the backend it
waited for being judged for it."""
import json
import re
import smtplib
import subprocess
import threading
import time
import urllib.request

import configs
from harness import (Postfix, ScriptedBackend, Smtplb, WorkdirTestCase, free_port, main,
                     plain_answers, postfix_available, private_loopback, wait_until)


class CountingBackend(ScriptedBackend):
    """A well-behaved SMTP server that counts the connections open to it at
    once: from its accept until QUIT arrives (before its reply, which is
    when smtplb closes and gives the slot back: this thread running late can
    never show a connection too many) or the connection ends."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self._local = threading.local()
        # Its own address: it counts smtplb's connections only.
        super().__init__(plain_answers, per_connection=self._answers, host=private_loopback())

    def _serve(self, conn):
        state = {"counted": True}
        self._local.state = state
        with self.lock:
            self.open += 1
            self.most = max(self.most, self.open)
        try:
            super()._serve(conn)
        finally:
            self._uncount(state)

    def _uncount(self, state):
        with self.lock:
            if state["counted"]:
                state["counted"] = False
                self.open -= 1

    def _answers(self):
        state = self._local.state

        def answer(line):
            verb = line.split(" ", 1)[0].upper()
            if verb == "QUIT":
                self._uncount(state)
            return self.ehlo if verb in ("EHLO", "HELO") else plain_answers(line)
        return answer

    def messages(self):
        """Messages received whole (ended with "."): DATA lines would also
        count one smtplb abandoned in DATA (a slow client) and replayed."""
        return len(self.bodies)

    def subjects(self):
        return sorted(line for body in self.bodies for line in body.split("\n")
                      if line.startswith("Subject: "))


def established_to(port, host="127.0.0.1"):
    """Connections in ESTABLISHED to host:port, as the kernel sees them
    from the connecting side (smtplb's)."""
    out = subprocess.run(["ss", "-Htn", "state", "established",
                          f"( dst {host} and dport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return sum(1 for line in out.splitlines() if line.strip())


class Client(threading.Thread):
    """One SMTP session: MAIL, RCPT, then waits for `go` (holding the
    transaction open) before DATA and QUIT. Records the replies."""

    def __init__(self, port, n, go, source="127.0.0.1"):
        super().__init__(daemon=True)
        self.port, self.n, self.go, self.source = port, n, go, source
        self.rcpt = None
        self.data = None
        self.error = None

    def run(self):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname=f"c{self.n}.example",
                              source_address=(self.source, 0), timeout=120) as s:
                s.ehlo()
                s.mail(f"sender{self.n}@example.org")
                self.rcpt = s.rcpt("bob@example.net")
                if self.rcpt[0] != 250:
                    return
                self.go.wait(120)
                self.data = s.data(f"Subject: {self.n}\r\n\r\nhi\r\n")[0]
        except Exception as e:  # recorded, and the test says which
            self.error = repr(e)


class ConnectionCap(WorkdirTestCase):
    def start_lb(self, backends, listener_options=None, extra_listeners=(), **pool_options):
        """backends: (name, a CountingBackend or a port on 127.0.0.1, options)."""
        backends = [(name, target, options) if isinstance(target, int) else
                    (name, target.port, {"address": f"{target.host}:{target.port}", **options})
                    for name, target, options in backends]
        pool = {"health": {"enabled": False}}
        pool.update(pool_options)
        port = free_port()
        listener = {"client_identity": "none"}
        listener.update(listener_options or {})
        lb = Smtplb(self.workdir, configs.balancer(
            port, backends, pool_options=pool, listener_options=listener,
            extra_listeners=extra_listeners, server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        self.admin = f"127.0.0.1:{lb.admin_port()}"
        return port, lb

    def backend(self):
        b = CountingBackend()
        self.addCleanup(b.stop)
        return b

    def metric(self, name, backend):
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=10) as r:
            text = r.read().decode()
        m = re.search(rf'^{name}{{pool="hubs",backend="{backend}"}} (\S+)$', text, re.M)
        self.assertIsNotNone(m, f"{name} for {backend} not in /metrics")
        return float(m.group(1))

    def health(self, backend):
        with urllib.request.urlopen(f"http://{self.admin}/api/v1/status", timeout=10) as r:
            status = json.load(r)
        return {b["name"]: b["health"] for b in status["pools"][0]["backends"]}[backend]

    def hold(self, port, count):
        """`count` clients, started, each holding its transaction after RCPT
        until the event returned is set."""
        go = threading.Event()
        self.addCleanup(go.set)  # before smtplb stops, should the test fail
        clients = [Client(port, n, go) for n in range(count)]
        for c in clients:
            c.start()
        return go, clients

    def assert_never_judged(self, lb, backend):
        self.assertEqual(self.health(backend), "up")
        self.assertFalse([line for line in lb.log_lines("event=health ") if "to=up" not in line])

    def test_six_clients_share_two_connections_and_every_message_is_delivered(self):
        hub = self.backend()
        port, lb = self.start_lb([("hub1", hub, {"max_connections": 2})],
                                 connection_wait="60s")
        go, clients = self.hold(port, 6)
        # Two transactions hold the two slots; the four others wait for one.
        wait_until(lambda: self.metric("smtplb_backend_connection_waits_total", "hub1") == 4
                   and sum(c.rcpt is not None for c in clients) >= 2,
                   timeout=30, what="two transactions under way and four waiting for a slot")
        answered = [c for c in clients if c.rcpt is not None]
        self.assertEqual(len(answered), 2, [c.rcpt for c in clients])
        self.assertEqual(hub.open, 2)
        self.assertEqual(established_to(hub.port, hub.host), 2)
        self.assertEqual(self.metric("smtplb_backend_connections", "hub1"), 2)
        self.assertEqual(self.metric("smtplb_backend_max_connections", "hub1"), 2)
        go.set()  # the holders finish and leave; the waiters take their slots in turn
        for c in clients:
            c.join(150)
        evidence = "\n".join(["backend:"] + hub.lines + ["smtplb:"] + lb.log_lines() +
                              ["tracking:"] + [json.dumps(r) for r in lb.tracking_records()])
        self.assertEqual([(c.error, c.rcpt[0], c.data) for c in clients],
                         [(None, 250, 250)] * 6, evidence)
        self.assertEqual(hub.subjects(), [f"Subject: {n}" for n in range(6)], evidence)
        self.assertEqual(hub.violations, [], evidence)
        self.assertEqual(hub.most, 2)
        self.assertEqual(self.metric("smtplb_backend_connection_wait_timeouts_total", "hub1"), 0)
        self.assertEqual(len(lb.log_lines("event=backend_connections_at_max ")), 1)
        self.assert_never_judged(lb, "hub1")

    def test_a_wait_that_runs_out_goes_to_the_next_backend_without_judging_the_first(self):
        first, second = self.backend(), self.backend()
        port, lb = self.start_lb([("first", first, {"max_connections": 1, "priority": 10}),
                                  ("second", second, {"priority": 20})],
                                 connection_wait="1s")
        go, [holder] = self.hold(port, 1)
        wait_until(lambda: holder.rcpt is not None, what="the holder's RCPT reply")
        self.assertEqual((holder.rcpt[0], first.open, second.open), (250, 1, 0))
        at_once = threading.Event()
        at_once.set()
        late = Client(port, 1, at_once)
        late.start()
        late.join(60)
        self.assertEqual((late.error, late.rcpt[0], late.data), (None, 250, 250))
        self.assertEqual((first.most, second.messages()), (1, 1))
        go.set()
        holder.join(60)
        self.assertEqual((holder.error, holder.data), (None, 250))
        self.assertEqual(first.messages(), 1)
        self.assertEqual(self.metric("smtplb_backend_connection_waits_total", "first"), 1)
        self.assertEqual(self.metric("smtplb_backend_connection_wait_timeouts_total", "first"), 1)
        self.assertEqual(len(lb.log_lines("event=connection_wait_timeout ")), 1)
        self.assert_never_judged(lb, "first")
        wait_until(lambda: len(lb.tracking_records()) == 2, what="two tracking records")
        late_record = [r for r in lb.tracking_records() if r["sender"] == "sender1@example.org"][0]
        self.assertEqual([(a["backend"], a["stage"]) for a in late_record["attempts"]][0],
                         ("first", "connect"))
        self.assertIn("max_connections 1", late_record["attempts"][0]["reply"])
        self.assertEqual(late_record["result"], "relayed")

    def test_with_no_other_backend_the_wait_ends_in_451_and_the_backend_stays_up(self):
        hub = self.backend()
        port, lb = self.start_lb([("hub1", hub, {"max_connections": 1})],
                                 connection_wait="500ms")
        go, [holder] = self.hold(port, 1)
        wait_until(lambda: holder.rcpt is not None, what="the holder's RCPT reply")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="late.example", timeout=60) as s:
            s.ehlo()
            s.mail("late@example.org")
            code, text = s.rcpt("bob@example.net")
        self.assertEqual(code, 451, text)
        self.assertTrue(text.startswith(b"4.4.1"), text)
        go.set()
        holder.join(60)
        self.assertEqual((holder.error, holder.data), (None, 250))
        self.assert_never_judged(lb, "hub1")
        # Still in service: the next client is served at once.
        after = Client(port, 2, go)
        after.start()
        after.join(60)
        self.assertEqual((after.error, after.rcpt[0], after.data), (None, 250, 250))
        self.assertEqual((hub.most, hub.messages()), (1, 2))

    def test_an_idle_connection_no_transaction_can_reuse_is_closed_to_make_room(self):
        # Connections are cached per source address: one kept idle for the
        # first listener's traffic cannot carry the second listener's.
        hub = self.backend()
        second_port = free_port()
        second = {"name": "second", "bind": f"127.0.0.1:{second_port}", "role": "inbound",
                  "accepted_domains": ["example.net"], "pool": "hubs",
                  "client_identity": "none", "resolve_client_names": False,
                  "source_address": "127.0.0.2"}
        port, lb = self.start_lb([("hub1", hub, {"max_connections": 1})],
                                 extra_listeners=[second], connection_wait="30s",
                                 idle_timeout="10m")
        go = threading.Event()
        go.set()
        first = Client(port, 0, go)
        first.start()
        first.join(60)
        self.assertEqual((first.error, first.data), (None, 250))
        self.assertEqual(hub.open, 1)  # kept for reuse, idle
        # Only closing that idle connection lets this one through before its
        # wait ends (idle_timeout is far longer).
        other = Client(second_port, 1, go)
        other.start()
        other.join(60)
        self.assertEqual((other.error, other.rcpt[0], other.data), (None, 250, 250))
        self.assertEqual((hub.most, hub.messages()), (1, 2))
        self.assertEqual(self.metric("smtplb_backend_connection_waits_total", "hub1"), 1)
        self.assertEqual(self.metric("smtplb_backend_connection_wait_timeouts_total", "hub1"), 0)

    def test_tcp_mode_respects_the_cap_too(self):
        first, second = self.backend(), self.backend()
        port, lb = self.start_lb([("first", first, {"max_connections": 1, "priority": 10}),
                                  ("second", second, {"priority": 20})],
                                 listener_options={"mode": "tcp"}, connection_wait="500ms")
        sessions = []
        for n in range(3):
            s = smtplib.SMTP(timeout=60)
            self.addCleanup(s.close)
            self.assertEqual(s.connect("127.0.0.1", port)[0], 220)  # a backend's greeting
            sessions.append(s)
        # One holds the first backend's only slot; the others waited, then
        # took the second, which has no cap.
        self.assertEqual((first.open, second.open, first.most), (1, 2, 1))
        self.assertEqual(self.metric("smtplb_backend_connection_wait_timeouts_total", "first"), 2)
        self.assert_never_judged(lb, "first")
        sessions[0].quit()
        wait_until(lambda: self.metric("smtplb_backend_connections", "first") == 0,
                   what="the first backend's connection to close")
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("after.example")
            self.assertEqual(first.open, 1)  # the slot is free again

    def test_postfix_with_a_process_limit_serves_every_client_in_turn(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        # Three smtpd processes: a fourth connection would sit in the listen
        # queue without a greeting until one of them is free.
        pf = Postfix(self.workdir, "limited", extra_main="default_process_limit = 3")
        pf.start()
        self.addCleanup(pf.stop)
        port, lb = self.start_lb([("limited", pf.port, {"max_connections": 3})],
                                 listener_options={"client_identity": "xclient"},
                                 connection_wait="60s", greeting_timeout="2s")
        most = [0]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                most[0] = max(most[0], established_to(pf.port))
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.addCleanup(sampling.set)
        go, clients = self.hold(port, 8)
        wait_until(lambda: self.metric("smtplb_backend_connection_waits_total", "limited") == 5,
                   timeout=30, what="five transactions waiting for a slot")
        # Each holds its smtpd longer than a greeting may take.
        time.sleep(3)
        go.set()
        for c in clients:
            c.join(150)
        sampling.set()
        sampler.join(10)
        self.assertEqual([(c.error, c.rcpt[0], c.data) for c in clients],
                         [(None, 250, 250)] * 8)
        self.assertLessEqual(most[0], 3)
        self.assertGreater(most[0], 0)
        self.assert_never_judged(lb, "limited")
        wait_until(lambda: sum("to=<bob@example.net>" in line and "status=sent" in line
                               for line in pf.log_lines()) == 8,
                   timeout=60, what="eight deliveries in Postfix's log")


if __name__ == "__main__":
    main()
