"""Configuration generations are owned, not timed: a session of the old
generation that is still waiting on a slow backend when a reload comes
finishes, delivers and gets its 250, and only after that session has ended
is the old generation released (event=generation_released). On SIGTERM a
transaction a slow backend holds finishes too, within shutdown_grace; one
the grace cannot wait for is cut without an answer, and the daemon still
exits cleanly and releases every generation."""
import select
import signal
import time

import configs
import harness
from harness import Sink, SmtpClient, Smtplb, WorkdirTestCase, free_port, main, wait_until

# The slow backend holds each end of data this long before its 250.
SLOW = 3


def open_transaction(port, subject):
    """A session with a whole message sent, its final reply not read yet."""
    client = SmtpClient(port, timeout=60)
    assert client.code() == 220
    client.command("EHLO slow.test")
    for line, code in (("MAIL FROM:<a@outside.example>", "250"),
                       ("RCPT TO:<u@example.net>", "250"), ("DATA", "354")):
        reply = client.command(line)[-1]
        assert reply.startswith(code), f"{line}: {reply}"
    client.send(f"Subject: {subject}\r\n\r\nbody\r\n.\r\n")
    return client


def nothing_to_read(client):
    """No reply has come yet (the transaction is still in progress)."""
    if client.buf:
        return False
    readable, _, _ = select.select([client.sock], [], [], 0)
    return not readable


def subjects(sink):
    return [m["body"].split("\r\n")[0][len("Subject: "):] for m in sink.messages()]


class Generations(WorkdirTestCase):
    def start_slow_sink(self, delay=SLOW):
        sink = Sink(self.workdir, "slow", faults=[f"message=delay:{delay}s"]).start()
        self.addCleanup(sink.stop)
        return sink

    def start_lb(self, text):
        port = free_port()
        lb = Smtplb(self.workdir, text(port))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def reload_during_slow_transaction(self, listener_options):
        slow = self.start_slow_sink()
        (fast,) = self.start_sinks("fast")
        lb, port = self.start_lb(lambda p: configs.balancer(
            p, [("slow", slow.port)], listener_options=listener_options))
        busy = open_transaction(port, "in-flight")

        # v2 sends everything to the fast backend.
        with open(lb.config, "w") as f:
            f.write(harness.with_test_threads(configs.balancer(
                port, [("fast", fast.port)], listener_options=listener_options))
                .replace("@TRACKING@", lb.tracking).replace("@STATE@", self.workdir))
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any(" generation=2 " in x for x in lb.log_lines("event=reloaded ")),
                   what="the reload to generation 2")
        # The reload came while the slow backend still held the message.
        self.assertTrue(nothing_to_read(busy), "answered before the reload")
        self.assertEqual(lb.log_lines("event=generation_released"), [])

        # The old generation's session finishes its transaction on its own
        # backend, and lives on: the generation is not released under it.
        self.assertTrue(busy.read_reply()[-1].startswith("250"))
        self.assertEqual(subjects(slow), ["in-flight"])
        self.assertEqual(lb.log_lines("event=generation_released"), [])
        # New connections get the new generation.
        fresh = SmtpClient(port, timeout=30)
        self.assertEqual(fresh.code(), 220)
        fresh.command("EHLO fresh.test")
        self.assertTrue(fresh.command("MAIL FROM:<a@outside.example>")[-1].startswith("250"))
        self.assertTrue(fresh.command("RCPT TO:<u@example.net>")[-1].startswith("250"))
        self.assertTrue(fresh.command("DATA")[-1].startswith("354"))
        fresh.send("Subject: new\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(fresh.read_reply()[-1].startswith("250"))
        fresh.command("QUIT")
        fresh.close()
        self.assertEqual(subjects(fast), ["new"])
        self.assertEqual(lb.log_lines("event=generation_released"), [])

        # Once its last session ends, the old generation is released.
        self.assertTrue(busy.command("QUIT")[-1].startswith("221"))
        busy.close()  # a tcp-mode session ends when both sides have closed
        wait_until(lambda: lb.log_lines("event=generation_released generation=1 "),
                   what="generation 1 released", timeout=30)
        released = lb.log_lines("event=generation_released")
        self.assertEqual(len(released), 1, released)
        self.assertIn("reason=replaced", released[0])
        # The old session's tracking record is there too, whole (flushed
        # when its generation was released at the latest).
        def old_record():
            return [r for r in lb.tracking_records()
                    if r["size"] > 0 and [a["backend"] for a in r["attempts"]] == ["slow"]]
        wait_until(old_record, what="the old session's tracking record")

    def test_reload_lets_a_slow_transaction_finish_then_releases_the_old_generation(self):
        self.reload_during_slow_transaction(None)

    def test_same_in_tcp_mode_where_the_session_outlives_its_coroutine(self):
        self.reload_during_slow_transaction({"mode": "tcp"})

    def test_sigterm_lets_a_transaction_held_by_a_slow_backend_finish(self):
        slow = self.start_slow_sink()
        lb, port = self.start_lb(lambda p: configs.balancer(
            p, [("slow", slow.port)], server_options={"shutdown_grace": "30s"}))
        idle = SmtpClient(port)
        self.assertEqual(idle.code(), 220)
        busy = open_transaction(port, "during shutdown")
        lb.process.proc.send_signal(signal.SIGTERM)
        self.assertTrue(idle.read_reply()[-1].startswith("421 4.3.2"))
        self.assertTrue(nothing_to_read(busy), "answered before the stop")
        # The backend's 250, after its delay; then the session is told 421.
        self.assertTrue(busy.read_reply()[-1].startswith("250"))
        self.assertEqual(subjects(slow), ["during shutdown"])
        self.assertTrue(busy.command("NOOP")[-1].startswith("421 4.3.2"))
        self.assertEqual(lb.process.proc.wait(timeout=30), 0)
        released = lb.log_lines("event=generation_released")
        self.assertEqual(len(released), 1, released)
        self.assertIn("generation=1 reason=stopping", released[0])
        self.assertEqual(lb.log_lines("event=generation_abandoned"), [])

    def test_sigterm_cuts_what_the_grace_cannot_wait_for_and_still_releases(self):
        slow = self.start_slow_sink(delay=60)
        lb, port = self.start_lb(lambda p: configs.balancer(
            p, [("slow", slow.port)], server_options={"shutdown_grace": "1s"}))
        busy = open_transaction(port, "too slow")
        started = time.monotonic()
        lb.process.proc.send_signal(signal.SIGTERM)
        # Cut without an answer: nothing unanswered counts as accepted.
        with self.assertRaises(ConnectionError):
            busy.read_reply()
        self.assertEqual(lb.process.proc.wait(timeout=30), 0)
        # Well before the backend would have answered.
        self.assertLess(time.monotonic() - started, 30)
        released = lb.log_lines("event=generation_released")
        self.assertEqual(len(released), 1, released)
        self.assertEqual(lb.log_lines("event=generation_abandoned"), [])


if __name__ == "__main__":
    main()
