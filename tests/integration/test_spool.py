"""The durable spool (pools with on_unavailable = "spool"): with every
backend down, mail is acknowledged only once it is on disk, survives SIGKILL
of the daemon at any moment, and is delivered when a backend returns; per
recipient outcomes, DSNs that a real Postfix accepts, expiry, the spool's
limits, and `smtplb queue` on a running and a stopped daemon."""
import json
import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time

import configs
import harness
from harness import (Postfix, Sink, Smtplb, SmtpClient, WorkdirTestCase, free_port, main,
                     postfix_available, wait_for_port, wait_until)

FAST_HEALTH = {"interval": "1s", "down_interval": "1s", "rise": 1, "fall": 1, "timeout": "2s"}


def spool_config(port, backend_port, spool_options=None, pool_options=None, server_options=None,
                 listener_options=None):
    pool = {"on_unavailable": "spool", "health": FAST_HEALTH, "connect_timeout": "1s"}
    pool.update(pool_options or {})
    text = configs.balancer(port, [("hub", backend_port)], pool_options=pool,
                            server_options=server_options, listener_options=listener_options)
    spool = {"retry_initial": "1s", "retry_max": "2s"}
    spool.update(spool_options or {})
    return text + configs.table("[spool]", spool)


def queued_files(workdir, area="queue"):
    path = os.path.join(workdir, "spool", area)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def recipient_states(path):
    """{address: 'R' (pending) | 'D' (delivered) | 'X' (bounced)} from a spool file."""
    with open(path, "rb") as f:
        data = f.read()
    states, at = {}, len(b"SMTPLB-SPOOL 1\n")
    while at + 5 <= len(data):
        kind, length = chr(data[at]), int.from_bytes(data[at + 1:at + 5], "big")
        if kind in "RDX":
            states[data[at + 5:at + 5 + length].decode()] = kind
        at += 5 + length
    return states


def subject_of(body):
    """The Subject: of a delivered message (spooled ones start with smtplb's Received:)."""
    m = re.search(r"^Subject: (.*?)\r?$", body, re.M)
    return m.group(1) if m else None


def send(port, subject, rcpts=("bob@example.net",), sender="alice@example.org"):
    """One message; returns the final reply (code, text) or raises."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        msg = f"Subject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n\r\n{subject}\r\n"
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            if code >= 400:
                return code, text.decode()
        code, text = s.data(msg)
        return code, text.decode()


class Spool(WorkdirTestCase):
    def queue_cli(self, lb, *args):
        return subprocess.run([harness.SMTPLB, "queue", "--config", lb.config, *args],
                              capture_output=True, text=True, timeout=30)

    def test_sigkill_at_random_moments_never_loses_an_acknowledged_message(self):
        backend_port = free_port()
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, backend_port))
        lb.start(port)
        self.addCleanup(lb.stop)
        acknowledged, lock = [], threading.Lock()
        total, clients = 400, 4
        counter = iter(range(total))

        def client():
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                subject = f"chaos-{n}"
                time.sleep(random.uniform(0, 0.02))  # paced, so the kills fall mid-run
                for _ in range(50):  # a real client retries later
                    try:
                        code, text = send(port, subject)
                        if code == 250:
                            with lock:
                                acknowledged.append(subject)
                            break
                    except (OSError, smtplib.SMTPException):
                        pass
                    time.sleep(0.1)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        rng = random.Random(20261123)
        kills = 0
        while any(t.is_alive() for t in threads) and kills < 4:
            time.sleep(rng.uniform(0.05, 0.4))
            lb.process.proc.kill()  # SIGKILL: no chance to flush or fsync anything
            lb.process.proc.wait()
            kills += 1
            lb.process.start()
            wait_for_port(port, proc=lb.process.proc)
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(kills, 4, "the daemon was not killed as often as planned")
        self.assertEqual(len(acknowledged), total, "every message is eventually acknowledged")

        # Now the backend comes up: the spool drains into it.
        sink = Sink(self.workdir, "hub", port=backend_port)
        sink.start()
        self.addCleanup(sink.stop)
        wait_until(lambda: not queued_files(self.workdir), timeout=90,
                   what="the spool to drain")
        received = [subject_of(m["body"]) for m in sink.messages()]
        missing = sorted(set(acknowledged) - set(received))
        self.assertEqual(missing, [], "acknowledged but never delivered")
        duplicates = len(received) - len(set(received))
        print(f"\nchaos: {total} acknowledged, {kills} SIGKILLs, {len(received)} delivered, "
              f"{duplicates} duplicates, {len(queued_files(self.workdir, 'corrupt'))} "
              "unacknowledged files quarantined")
        # The delivered copies came with the client's identity (XCLIENT).
        self.assertTrue(all(m["client"] == "127.0.0.1" and m["client_helo"] == "client.test"
                            for m in sink.messages()))

    def test_partial_failure_and_expiry_bounce_to_the_sender_through_real_postfix(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        checks = os.path.join(self.workdir, "header_checks")
        with open(checks, "w") as f:
            f.write("/^Content-Type: multipart\\/report; report-type=delivery-status/ WARN dsn-report\n")
        os.chmod(checks, 0o644)
        postfix = Postfix(self.workdir, "hub", extra_main=(
            "smtpd_recipient_restrictions = check_recipient_access "
            "inline:{ {nobody@example.net=550 5.1.1 No such user}, "
            "{late@example.net=451 4.2.0 Try later} }, permit_mynetworks, "
            "reject_unauth_destination\n"
            f"header_checks = regexp:{checks}\n"))
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, postfix.port,
                                               spool_options={"max_queue_lifetime": "10s"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        # Postfix is not running yet: both messages go to the spool.
        code, text = send(port, "partial", rcpts=("bob@example.net", "nobody@example.net"))
        self.assertEqual(code, 250, text)
        self.assertIn("queued as", text)
        code, text = send(port, "expiring", rcpts=("late@example.net",))
        self.assertEqual(code, 250, text)
        self.assertEqual(len(queued_files(self.workdir)), 2)
        # A null sender's message that fails goes to dead/: nobody to tell.
        code, text = send(port, "nullsender", rcpts=("nobody@example.net",), sender="")
        self.assertEqual(code, 250, text)

        postfix.start()
        self.addCleanup(postfix.stop)
        wait_until(lambda: not queued_files(self.workdir), timeout=60,
                   what="delivery, bounces and expiry")
        wait_until(lambda: any(r["result"] == "bounced" and "4.4.7" in r["reply"]
                               for r in lb.tracking_records()),
                   what="the expired message's record in the tracking log")
        records = lb.tracking_records()
        results = [(r.get("sender"), r["result"]) for r in records if "spool_id" in r]
        self.assertIn(("alice@example.org", "bounced"), results)  # partial: bob got it
        self.assertIn(("", "delivered"), results)  # the DSNs
        self.assertIn(("", "dead"), results)
        partial = [r for r in records if r.get("result") == "bounced" and r["recipients"] == 1]
        self.assertTrue(partial, "bob was delivered and nobody bounced in one attempt")
        # The expiring one was retried, then bounced with 4.4.7.
        expired = [r for r in records if "4.4.7" in r["reply"]][0]
        self.assertIn("late@example.net>: Recipient address rejected: Try later", expired["reply"])
        self.assertEqual(len(queued_files(self.workdir, "dead")), 1)
        log = "\n".join(postfix.log_lines())
        self.assertIn("to=<bob@example.net>", log)
        # Postfix received the reports: null sender, to alice, multipart/report.
        wait_until(lambda: "\n".join(postfix.log_lines()).count("dsn-report") >= 2, timeout=20,
                   what="Postfix to log both DSNs")
        log = "\n".join(postfix.log_lines())
        self.assertRegex(log, r"from=<>.*\n(.*\n)*.*to=<alice@example.org>")
        status = lb.log_lines("event=spool_bounce")
        self.assertEqual(len(status), 2, "\n".join(lb.log_lines()))

    def test_a_partial_delivery_survives_sigkill_without_sending_twice(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        postfix = Postfix(self.workdir, "hub", extra_main=(
            "smtpd_recipient_restrictions = check_recipient_access "
            "inline:{ {late@example.net=451 4.2.0 Try later} }, permit_mynetworks, "
            "reject_unauth_destination\n"))
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, postfix.port))
        lb.start(port)
        self.addCleanup(lb.stop)
        code, text = send(port, "split", rcpts=("bob@example.net", "late@example.net"))
        self.assertEqual(code, 250, text)
        (queue_id,) = queued_files(self.workdir)
        postfix.start()
        self.addCleanup(postfix.stop)
        # bob is delivered and marked in the file; late is deferred.
        path = os.path.join(self.workdir, "spool", "queue", queue_id)
        wait_until(lambda: recipient_states(path).get("bob@example.net") == "D",
                   timeout=30, what="bob marked delivered in the spool file")
        self.assertEqual(recipient_states(path)["late@example.net"], "R")
        lb.process.proc.kill()
        lb.process.proc.wait()
        lb.process.start()
        wait_for_port(port, proc=lb.process.proc)
        # Retries after the restart go to late only.
        wait_until(lambda: "\n".join(postfix.log_lines()).count("<late@example.net>: Recipient "
                                                               "address rejected") >= 3,
                   timeout=30, what="more attempts for late@example.net")
        log = "\n".join(postfix.log_lines())
        self.assertEqual(log.count("to=<bob@example.net>"), 1, log)
        self.assertEqual(queued_files(self.workdir), [queue_id])
        # Live, the same: a 4xx about one recipient (not about the backend)
        # goes to the client, and the transaction stays on its backend.
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("client.test")
            s.mail("alice@example.org")
            self.assertEqual(s.rcpt("carol@example.net")[0], 250)
            code, text = s.rcpt("late@example.net")
            self.assertEqual((code, text.decode()[:5]), (451, "4.2.0"))
            self.assertEqual(s.data("Subject: live\r\n\r\nlive\r\n")[0], 250)
        wait_until(lambda: "to=<carol@example.net>" in "\n".join(postfix.log_lines()),
                   what="carol's delivery in Postfix's log")

    def test_queue_commands_on_a_running_and_on_a_stopped_daemon(self):
        backend_port = free_port()
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, backend_port,
                                               server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.admin_port()
        # The admin port is 0 in the file: the CLI needs the real one.
        with open(lb.config) as f:
            text = f.read()
        with open(lb.config, "w") as f:
            f.write(text.replace('admin = "127.0.0.1:0"', f'admin = "127.0.0.1:{lb.admin_port()}"'))
        for i in range(3):
            self.assertEqual(send(port, f"q{i}")[0], 250)
        ids = queued_files(self.workdir)
        self.assertEqual(len(ids), 3)
        listing = self.queue_cli(lb, "list", "--json")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        doc = json.loads(listing.stdout)
        self.assertEqual([e["id"] for e in doc["queue"]], ids)
        self.assertEqual(doc["messages"], 3)
        shown = self.queue_cli(lb, "show", ids[0])
        self.assertIn("alice@example.org", shown.stdout)
        self.assertIn("bob@example.net (pending)", shown.stdout)
        self.assertEqual(self.queue_cli(lb, "hold", ids[0]).returncode, 0)
        self.assertEqual(queued_files(self.workdir, "hold"), [ids[0]])
        self.assertEqual(self.queue_cli(lb, "delete", ids[1]).returncode, 0)
        flushed = self.queue_cli(lb, "flush")
        self.assertEqual(flushed.returncode, 0, flushed.stderr)
        self.assertIn("2 messages due now", flushed.stdout)
        self.assertTrue(lb.log_lines("event=spool_flush"))
        bad = self.queue_cli(lb, "delete", "0123456789ABCDEF")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no queued message", bad.stderr)
        self.assertIn("not a queue ID", self.queue_cli(lb, "show", "../../x").stderr)

        # Stopped: the same commands work on the files.
        lb.stop()
        listing = self.queue_cli(lb, "list")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("2 messages (1 held)", listing.stdout)
        self.assertEqual(self.queue_cli(lb, "release", ids[0]).returncode, 0)
        self.assertEqual(queued_files(self.workdir, "hold"), [])

        # Started again with the backend up: both are delivered (the deleted one not).
        sink = Sink(self.workdir, "hub", port=backend_port)
        sink.start()
        self.addCleanup(sink.stop)
        lb2 = Smtplb(self.workdir, spool_config(port, backend_port), name="again")
        lb2.start(port)
        self.addCleanup(lb2.stop)
        wait_until(lambda: len(sink.messages()) == 2, timeout=30, what="delivery after restart")
        subjects = sorted(subject_of(m["body"]) for m in sink.messages())
        self.assertEqual(subjects, ["q0", "q2"])
        wait_until(lambda: not queued_files(self.workdir), what="the spool to be empty")

    def test_a_full_spool_answers_452_and_a_down_pool_without_spool_451(self):
        backend_port = free_port()
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, backend_port,
                                               spool_options={"max_messages": 2}))
        lb.start(port)
        self.addCleanup(lb.stop)
        self.assertEqual(send(port, "one")[0], 250)
        self.assertEqual(send(port, "two")[0], 250)
        code, text = send(port, "three")
        self.assertEqual((code, text[:5]), (452, "4.3.1"))
        self.assertEqual(len(queued_files(self.workdir)), 2)
        wait_until(lambda: [r["result"] for r in lb.tracking_records()].count("spooled") == 2,
                   what="two spooled messages in the tracking log")

    def test_unknown_users_are_refused_at_rcpt_from_the_recipients_file(self):
        known = os.path.join(self.workdir, "recipients")
        with open(known, "w") as f:
            f.write("# the users of example.net\nbob@example.net\n")
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, free_port(),
                                               listener_options={"recipients_file": known}))
        lb.start(port)
        self.addCleanup(lb.stop)
        client = SmtpClient(port)
        self.assertEqual(client.code(), 220)
        client.command("EHLO client.test")
        self.assertEqual(client.command("MAIL FROM:<alice@example.org>")[-1][:3], "250")
        self.assertTrue(client.command("RCPT TO:<nobody@example.net>")[-1].startswith("550 5.1.1"))
        self.assertEqual(client.command("RCPT TO:<bob@example.net>")[-1][:3], "250")
        self.assertTrue(client.command("RCPT TO:<carol@example.net>")[-1].startswith("550 5.1.1"))
        self.assertEqual(client.command("DATA")[-1][:3], "354")
        client.send("Subject: known\r\n\r\nhi\r\n.\r\n")
        self.assertIn("queued as", client.read_reply()[-1])
        client.close()

    def test_reload_keeps_the_spool_and_a_second_daemon_is_refused(self):
        backend_port = free_port()
        port = free_port()
        lb = Smtplb(self.workdir, spool_config(port, backend_port))
        lb.start(port)
        self.addCleanup(lb.stop)
        self.assertEqual(send(port, "before-reload")[0], 250)
        # Another daemon on the same state_dir would deliver the same files.
        other_port = free_port()
        other = Smtplb(self.workdir, spool_config(other_port, backend_port), name="other")
        with self.assertRaises(RuntimeError) as refused:
            other.start(other_port)
        self.assertIn("in use by another smtplb", str(refused.exception))
        with open(lb.config, "a") as f:
            f.write("concurrency = 5\n")  # into [spool], the last table
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("event=reloaded"), what="the reload")
        self.assertEqual(send(port, "after-reload")[0], 250)
        self.assertEqual(len(lb.log_lines("event=spool_recovered")), 1)  # opened once
        sink = Sink(self.workdir, "hub", port=backend_port)
        sink.start()
        self.addCleanup(sink.stop)
        wait_until(lambda: len(sink.messages()) == 2, timeout=30,
                   what="both messages delivered by the new configuration")

    def test_a_deferred_message_keeps_its_backoff_across_a_restart(self):
        (sink,) = [Sink(self.workdir, "hub", faults=["rcpt=451"])]
        sink.start()
        self.addCleanup(sink.stop)
        port, down_port = free_port(), free_port()
        text = spool_config(port, down_port, spool_options={"retry_initial": "1h",
                                                             "retry_max": "2h"})
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        self.assertEqual(send(port, "deferred")[0], 250)  # spooled: the backend is down
        # The backend comes up and defers the recipient: next try in about an hour.
        with open(lb.config) as f:
            text = f.read()
        with open(lb.config, "w") as f:
            f.write(text.replace(f"127.0.0.1:{down_port}", f"127.0.0.1:{sink.port}"))
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(r["result"] == "deferred" for r in lb.tracking_records()),
                   timeout=20, what="a deferred attempt")
        lb.stop()
        listing = self.queue_cli(lb, "list", "--json")
        (entry,) = json.loads(listing.stdout)["queue"]
        # 1 h ± 20% jitter, kept in the file's mtime; not due at once.
        self.assertGreater(entry["next_attempt_in_s"], 2800)

    def test_a_full_disk_answers_452_and_leaves_no_partial_file(self):
        # A real ENOSPC: the state directory on a 512 KiB tmpfs of the test's own.
        state = os.path.join(self.workdir, "small")
        os.makedirs(state)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", state],
                                 capture_output=True, text=True)
        self.assertEqual(mounted.returncode, 0, "mounting a tmpfs needs root: " + mounted.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", state])
        backend_port = free_port()
        port = free_port()
        text = spool_config(port, backend_port).replace(f'state_dir = "@STATE@"',
                                                         f'state_dir = "{state}"')
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        body = "x" * 76 + "\r\n"
        replies = []
        for i in range(12):  # 12 x 60 KiB > 512 KiB
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
                s.ehlo("client.test")
                s.mail("alice@example.org")
                s.rcpt("bob@example.net")
                code, reply = s.data(f"Subject: big-{i}\r\n\r\n" + body * 780)
                replies.append((code, reply.decode()))
        codes = [c for c, _ in replies]
        self.assertIn(250, codes)
        self.assertIn(452, codes)
        self.assertTrue(all(r.startswith("4.3.1") for c, r in replies if c == 452), replies)
        self.assertTrue(lb.log_lines("event=spool_commit_failed"))
        spool = os.path.join(state, "spool")
        self.assertEqual(os.listdir(os.path.join(spool, "tmp")), [])
        self.assertEqual(len(os.listdir(os.path.join(spool, "queue"))), codes.count(250))
        # What was acknowledged is delivered once the backend is up.
        sink = Sink(self.workdir, "hub", port=backend_port)
        sink.start()
        self.addCleanup(sink.stop)
        wait_until(lambda: len(sink.messages()) == codes.count(250), timeout=30,
                   what="the acknowledged messages to be delivered")


if __name__ == "__main__":
    main()
