"""Graceful stop: on SIGTERM idle sessions hear 421 4.3.2 at once, a
transaction in progress finishes (its 250 is a real backend's), then that
session hears 421 too, and the daemon exits cleanly."""
import signal
import smtplib
import socket
import threading

import configs
from harness import SmtpClient, Smtplb, WorkdirTestCase, free_port, main, wait_until


class Shutdown(WorkdirTestCase):
    def test_sigterm_lets_the_open_transaction_finish(self):
        (sink,) = self.start_sinks("hub")
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub", sink.port)],
                                                   server_options={"shutdown_grace": "20s"}))
        lb.start(port)
        self.addCleanup(lb.stop)

        idle = SmtpClient(port)
        self.assertEqual(idle.code(), 220)
        self.assertEqual(idle.command("EHLO idle.test")[-1][:3], "250")
        busy = SmtpClient(port)
        self.assertEqual(busy.code(), 220)
        self.assertEqual(busy.command("EHLO busy.test")[-1][:3], "250")
        self.assertEqual(busy.command("MAIL FROM:<a@outside.example>")[-1][:3], "250")
        self.assertEqual(busy.command("RCPT TO:<u@example.net>")[-1][:3], "250")

        lb.process.proc.send_signal(signal.SIGTERM)
        # The idle session is told at once, without sending anything.
        self.assertTrue(idle.read_reply()[-1].startswith("421 4.3.2"))
        # No new connections.
        wait_until(lambda: not self.accepts(port), what="the listener closed")
        # The transaction in progress completes on the backend.
        self.assertEqual(busy.command("DATA")[-1][:3], "354")
        busy.send("Subject: during shutdown\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(busy.read_reply()[-1].startswith("250"))
        # Then its session ends too.
        self.assertTrue(busy.command("NOOP")[-1].startswith("421 4.3.2"))
        self.assertEqual(lb.process.proc.wait(timeout=15), 0)
        wait_until(lambda: len(sink.messages()) == 1, what="the message at the backend")
        self.assertIn("during shutdown", sink.messages()[0]["body"])

    def test_sigterm_under_load_loses_nothing_acknowledged(self):
        sinks = self.start_sinks(*("a", "b", "c"))
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [(s.name, s.port) for s in sinks],
                                                   server_options={"shutdown_grace": "5s"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        acked, refused, unexpected = [], [], []

        def client(n):
            # Sessions of 20 messages, until the balancer is gone (bounded).
            i = 0
            while i < 2000:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                        for _ in range(20):
                            mid = f"c{n}-{i}"
                            i += 1
                            s.sendmail("a@outside.example", ["u@example.net"],
                                       f"Subject: {mid}\r\n\r\nx\r\n")
                            acked.append(mid)
                except (smtplib.SMTPServerDisconnected, ConnectionError, OSError) as e:
                    refused.append(repr(e))
                    if not self.accepts(port):
                        return
                except smtplib.SMTPResponseException as e:
                    (refused if e.smtp_code == 421 else unexpected).append(f"{e.smtp_code} {e}")
                    if not self.accepts(port):
                        return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 200, what="traffic")
        lb.process.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(lb.process.proc.wait(timeout=30), 0)
        self.assertEqual(unexpected, [])  # only 421 or a closed connection
        self.assertGreater(len(refused), 0)
        delivered = set()
        for s in sinks:
            for m in s.messages():
                delivered.add(m["body"].split("\r\n")[0][len("Subject: "):])
        self.assertEqual(sorted(set(acked) - delivered), [], "acknowledged, not delivered")

    @staticmethod
    def accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False


if __name__ == "__main__":
    main()
