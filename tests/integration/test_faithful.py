"""Faithful replies and a spool that drains (issue 25, items 7 and 8), with
real Postfix backends, each session compared with the same session sent to
Postfix directly (DESIGN.md, transparency):

- a deferral every backend gives (greylisting at RCPT, a 451 at the end of
  data) reaches the client verbatim: code, enhanced code and text;
- a client that said HELO is received "with SMTP" by the backend, one that
  said EHLO "with ESMTP", through smtplb as directly;
- a message smtplb spools carries smtplb's own Received: header (the spool
  id as its id); one relayed directly does not;
- every backend down, 200 messages spooled, 5 SIGKILLs, the backends back:
  the whole spool is delivered within 30 s of the probes seeing a backend
  healthy again (the issue's bound; the figure is printed), none lost;
- a spooled message deferred at a backend's max_connections goes as soon
  as the connection it waited for is free, not after its backoff."""
import datetime
import json
import os
import re
import smtplib
import threading
import time

import configs
import fidelity
from harness import (Postfix, RawBackend, Smtplb, SmtpClient, WorkdirTestCase, free_port, main,
                     postfix_available, wait_for_port, wait_until)
from test_connection_cap import Client, CountingBackend
from test_spool import FAST_HEALTH, queued_files, send

GREYLIST = "450 4.2.0 Greylisted, see https://greylist.example/"
WRITE_ERROR = "451 4.3.0 Error: queue file write error"


def postfix_main(workdir):
    """Greylists grey@example.net at RCPT, and defers every message from
    busy@example.org at its end (as a full queue file system does); logs
    each Received: header it writes or finds."""
    return (fidelity.header_checks(workdir) +
            "smtpd_recipient_restrictions = check_recipient_access "
            f"inline:{{ {{grey@example.net={GREYLIST}}} }}, permit_mynetworks, "
            "reject_unauth_destination\n"
            "smtpd_end_of_data_restrictions = check_sender_access "
            f"inline:{{ {{busy@example.org={WRITE_ERROR}}} }}\n")


def session(port, helo_verb, sender, rcpt, message_id="<m@client.test>"):
    """One session; every reply after the banner as (step, (code, enhanced, text))."""
    c = SmtpClient(port, timeout=30)
    steps = []
    try:
        c.read_reply()
        for step, line in ((helo_verb, f"{helo_verb} client.test"), ("MAIL", f"MAIL FROM:<{sender}>"),
                           ("RCPT", f"RCPT TO:<{rcpt}>"), ("DATA", "DATA")):
            c.send(line + "\r\n")
            steps.append((step, fidelity.reply_key(c.read_reply())))
            if not steps[-1][1][0].startswith(("2", "3")):
                break
        if steps[-1][0] == "DATA" and steps[-1][1][0] == "354":
            c.send(f"Subject: faithful\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n.\r\n")
            steps.append(("end of data", fidelity.reply_key(c.read_reply())))
        c.send("QUIT\r\n")
        c.read_reply()
    finally:
        c.close()
    return steps


def received_lines(postfix, queue_id):
    """Postfix's log lines for each Received: header of a message (header_checks WARN)."""
    return [line for line in postfix.log_lines()
            if f": {queue_id}: warning: header Received: " in line]


def log_time(line):
    """The ts= of one of smtplb's log lines, as seconds since the epoch."""
    ts = re.search(r"ts=(\S+)", line).group(1)
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class FaithfulReplies(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.hubs = [Postfix(self.workdir, name, extra_main=postfix_main(self.workdir))
                     for name in ("hub1", "hub2")]
        for pf in self.hubs:
            pf.start()
            self.addCleanup(pf.stop)
        self.port = free_port()
        self.lb = Smtplb(self.workdir, configs.balancer(
            self.port, [(pf.dir.rsplit("/", 1)[1], pf.port) for pf in self.hubs]))
        self.lb.start(self.port)
        self.addCleanup(self.lb.stop)

    def test_deferrals_every_backend_gives_reach_the_client_verbatim(self):
        for what, sender, rcpt in (("greylisting at RCPT", "alice@example.org", "grey@example.net"),
                                   ("451 at end of data", "busy@example.org", "bob@example.net")):
            with self.subTest(what):
                direct = session(self.hubs[0].port, "EHLO", sender, rcpt)
                via = session(self.port, "EHLO", sender, rcpt)
                # The reference: Postfix itself defers, 4xx with its own text.
                self.assertTrue(direct[-1][1][0].startswith("4"), direct)
                # smtplb answers EHLO itself; everything after it must match.
                self.assertEqual(via[1:], direct[1:])
        # Each deferral tried both backends before the client heard it.
        records = [r for r in self.lb.tracking_records() if r.get("sender") == "busy@example.org"]
        self.assertEqual({a["backend"] for a in records[-1]["attempts"]}, {"hub1", "hub2"})

    def test_a_helo_client_is_received_with_smtp_and_an_ehlo_client_with_esmtp(self):
        for verb, protocol in (("HELO", "SMTP"), ("EHLO", "ESMTP")):
            with self.subTest(verb):
                ids = {}
                for how, port in (("direct", self.hubs[0].port), ("via smtplb", self.port)):
                    steps = session(port, verb, "alice@example.org", "bob@example.net")
                    self.assertEqual(steps[-1][1][0], "250", steps)
                    ids[how] = fidelity.queue_id(steps[-1][1][2])
                for how, queue_id in ids.items():
                    # Either backend may have it through smtplb.
                    def found():
                        return [l for pf in self.hubs for l in received_lines(pf, queue_id)]
                    wait_until(found, what=f"the Received: header of the message sent {how}")
                    (line,) = found()
                    self.assertIn(f" with {protocol} id {queue_id}", line, how)
                    self.assertIn("from client.test (", line, how)


def multiline_queue_id_server(conn):
    """An SMTP server that names its queue id on the second line of its 250."""
    with conn:
        f = conn.makefile("rb")
        conn.sendall(b"220 multi.test ESMTP\r\n")
        for raw in f:
            verb = raw[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-multi.test\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                for line in f:
                    if line == b".\r\n":
                        break
                conn.sendall(b"250-2.0.0 Message accepted\r\n250-2.0.0 queued as MULTI42\r\n"
                             b"250 2.0.0 thank you\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")


class MultiLineQueueId(WorkdirTestCase):
    def test_the_queue_id_on_any_line_of_the_250_reaches_the_tracking_log(self):
        backend = RawBackend(multiline_queue_id_server)
        self.addCleanup(backend.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("multi", backend.port)],
                                                   listener_options={"client_identity": "none"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("client.test")
            s.mail("alice@example.org")
            s.rcpt("bob@example.net")
            code, text = s.data("Subject: multi\r\n\r\nhello\r\n")
        self.assertEqual(code, 250)
        # The whole reply reaches the client (smtplib joins the lines' texts).
        self.assertEqual(text, b"2.0.0 Message accepted\n2.0.0 queued as MULTI42\n2.0.0 thank you")
        wait_until(lambda: lb.tracking_records(), what="the tracking record")
        self.assertEqual(lb.tracking_records()[-1]["queue_id"], "MULTI42")


class SpoolTrace(WorkdirTestCase):
    def test_a_spooled_message_carries_smtplbs_received_header_a_relayed_one_does_not(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        pf = Postfix(self.workdir, "hub", extra_main=fidelity.header_checks(self.workdir))
        port = free_port()
        text = configs.balancer(port, [("hub", pf.port)], pool_options={
            "on_unavailable": "spool", "health": FAST_HEALTH, "connect_timeout": "1s"})
        lb = Smtplb(self.workdir, text + configs.table("[spool]", {"retry_initial": "1s"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        # Postfix is down: spooled.
        steps = session(port, "EHLO", "alice@example.org", "bob@example.net", "<spooled@client.test>")
        self.assertEqual(steps[-1][1][0], "250", steps)
        spool_id = re.search(r"queued as (\w+)", steps[-1][1][2]).group(1)
        pf.start()
        self.addCleanup(pf.stop)
        wait_until(lambda: not queued_files(self.workdir), timeout=30, what="the spool to drain")
        (delivered,) = fidelity.delivered_with(pf, message_id="spooled@client.test")
        wait_until(lambda: len(received_lines(pf, delivered)) == 2,
                   what="Postfix to log both Received: headers")
        postfix_own, smtplbs = received_lines(pf, delivered)
        self.assertIn("by hub.test (Postfix)", postfix_own)
        # (Postfix logs a folded header's line breaks as it sees fit.)
        self.assertRegex(smtplbs, r"header Received: from client\.test \(unknown \[127\.0\.0\.1\]\)"
                                  rf".{{1,4}}by lb\.test \(smtplb\) with ESMTP id {spool_id}.{{1,4}}"
                                  r"for <bob@example\.net>; \w{3}, [ \d]\d \w{3} \d{4} ")
        # Relayed directly (Postfix is up now): Postfix's header only.
        steps = session(port, "EHLO", "alice@example.org", "bob@example.net", "<direct@client.test>")
        queue_id = fidelity.queue_id(steps[-1][1][2])
        self.assertFalse(queued_files(self.workdir))
        wait_until(lambda: received_lines(pf, queue_id), what="the direct message's header")
        time.sleep(0.5)  # both header lines are logged together; none may follow
        self.assertEqual(len(received_lines(pf, queue_id)), 1, received_lines(pf, queue_id))


class SpoolDrains(WorkdirTestCase):
    MESSAGES = 200
    KILLS = 5

    def send(self, port, n):
        for _ in range(100):  # a real client retries later
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
                    s.ehlo("client.test")
                    s.sendmail("alice@example.org", ["bob@example.net"],
                               f"Subject: drain {n}\r\nMessage-ID: <drain-{n}@client.test>\r\n"
                               f"\r\nmessage {n}\r\n")
                return
            except (OSError, smtplib.SMTPException):
                time.sleep(0.1)
        self.fail(f"message {n} was never acknowledged")

    def test_the_whole_spool_is_delivered_soon_after_the_backends_return(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        hubs = [Postfix(self.workdir, name) for name in ("hub1", "hub2")]
        port = free_port()
        # The spool's default backoff (1 min, doubling to 30): without the
        # drain, a message deferred while the backends were down waits it
        # out. Probes as by default (rise 2, fall 2), every 2 s.
        health = {"interval": "2s", "down_interval": "2s", "rise": 2, "fall": 2, "timeout": "2s"}
        text = configs.balancer(port, [("hub1", hubs[0].port), ("hub2", hubs[1].port)],
                                pool_options={"on_unavailable": "spool", "health": health,
                                              "connect_timeout": "1s"})
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        def deferrals():
            return sum(r.get("result") == "deferred" for r in lb.tracking_records())
        per_kill = self.MESSAGES // self.KILLS
        for n in range(self.MESSAGES):
            self.send(port, n)
            if (n + 1) % per_kill == 0:
                before = deferrals()
                lb.process.proc.kill()  # SIGKILL
                lb.process.proc.wait()
                lb.process.start()
                wait_for_port(port, proc=lb.process.proc)
                # The restarted daemon believes its backends up until it
                # finds otherwise: it tries what it recovered, in vain.
                wait_until(lambda: deferrals() > before, timeout=20,
                           what="deferred attempts after a restart")
        self.assertEqual(len(queued_files(self.workdir)), self.MESSAGES)
        wait_until(lambda: len(lb.log_lines(" to=down ")) >= 2, timeout=30,
                   what="both backends seen down after the last restart")
        before = len(lb.tracking_records())

        for pf in hubs:
            pf.start()
            self.addCleanup(pf.stop)
        wait_until(lambda: lb.log_lines(" to=up "), timeout=30, what="a backend seen healthy")
        healthy_at = log_time(lb.log_lines(" to=up ")[0])
        wait_until(lambda: not queued_files(self.workdir), timeout=120, what="the spool to drain")
        drained_in = time.time() - healthy_at

        def delivered_ids():
            return [d.get("message_id") for pf in hubs for d in fidelity.deliveries(pf).values()
                    if d.get("message_id", "").startswith("drain-")]
        wait_until(lambda: len(delivered_ids()) >= self.MESSAGES, timeout=30,
                   what="Postfix to log every message")
        ids = delivered_ids()
        missing = sorted({f"drain-{n}@client.test" for n in range(self.MESSAGES)} - set(ids))
        duplicates = len(ids) - len(set(ids))
        drains = lb.log_lines("event=spool_drain ")
        print(f"\ndrain: {self.MESSAGES} spooled, {self.KILLS} SIGKILLs; the whole spool "
              f"delivered {drained_in:.1f} s after the first healthy probe "
              f"({len(lb.tracking_records()) - before} delivery records); "
              f"{len(missing)} lost, {duplicates} duplicates by Message-ID; "
              f"{len(drains)} drain(s): {drains[:1]}")
        self.assertEqual(missing, [], "acknowledged but never delivered")
        self.assertTrue(drains, "the drain is logged")
        self.assertLessEqual(drained_in, 30, "the issue's bound")


class SpoolDrainsForSlots(WorkdirTestCase):
    def test_a_message_deferred_at_a_backends_cap_goes_once_the_connection_is_free(self):
        hub = CountingBackend()
        self.addCleanup(hub.stop)
        port = free_port()
        text = configs.balancer(
            port, [("hub", hub.port, {"address": f"{hub.host}:{hub.port}", "max_connections": 1})],
            pool_options={"on_unavailable": "spool", "health": {"enabled": False},
                          "connection_wait": "500ms",
                          # The holder's backend waits on it the longest allowed.
                          "backend_hold_time": "5s"},
            listener_options={"client_identity": "none"})
        lb = Smtplb(self.workdir, text + configs.table("[spool]", {"retry_initial": "1h",
                                                                    "retry_max": "2h"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        go = threading.Event()
        holder = Client(port, 1, go)  # holds the only connection mid-transaction
        holder.start()
        wait_until(lambda: holder.rcpt is not None, what="the holder's RCPT reply")
        code, reply = send(port, "capped")
        self.assertEqual(code, 250, reply)  # spooled: no connection to be had
        # The spool tries it, finds the cap again, and defers it (by an
        # hour, were it not for the cap's end).
        wait_until(lambda: any(r.get("result") == "deferred" for r in lb.tracking_records()),
                   timeout=20, what="the spooled message deferred at the cap")
        go.set()
        holder.join(60)
        self.assertEqual((holder.error, holder.data), (None, 250))
        try:
            wait_until(lambda: not queued_files(self.workdir), timeout=20,
                       what="the deferred message delivered once the connection was free")
        except AssertionError:
            print("\n".join(lb.log_lines()), json.dumps(lb.tracking_records(), indent=1))
            raise
        self.assertTrue(lb.log_lines("cause=slot_freed"), "\n".join(lb.log_lines()))
        self.assertEqual(hub.most, 1)


if __name__ == "__main__":
    main()
