"""Reload without loss: SIGHUP or POST /api/v1/reload validates first, keeps
the listening socket, lets sessions in progress go on with the old
configuration, carries backend states over, and refuses a bad file with its
reasons while the old configuration keeps running."""
import json
import signal
import smtplib
import subprocess
import threading
import time
import urllib.error
import urllib.request

import configs
import harness
from harness import SmtpClient, Smtplb, WorkdirTestCase, free_port, main, wait_until

# The admin API takes state changes as JSON only (docs/admin.md).
JSON = {"Content-Type": "application/json"}


def send_one(port, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("a@outside.example", ["u@example.net"], f"Subject: {subject}\r\n\r\nx\r\n")


def subjects(sink):
    return [m["body"].split("\r\n")[0][len("Subject: "):] for m in sink.messages()]


class Reload(WorkdirTestCase):
    def config(self, backends):
        return configs.balancer(self.port, backends, server_options={"admin": "127.0.0.1:0"},
                                pool_options={"health": {"interval": "200ms"}})

    def write(self, text):
        with open(self.lb.config, "w") as f:
            f.write(harness.with_test_threads(text).replace("@TRACKING@", self.lb.tracking)
                    .replace("@STATE@", self.workdir))

    def reload_api(self):
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin}/api/v1/reload",
                                         data=b"{}", headers=JSON, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def test_reload_keeps_mail_flowing_and_refuses_bad_files(self):
        a, b = self.start_sinks("a", "b")
        self.port = free_port()
        self.lb = Smtplb(self.workdir, self.config([("a", a.port)]))
        self.lb.start(self.port)
        self.addCleanup(self.lb.stop)
        self.admin = self.lb.admin_port()
        send_one(self.port, "v1")

        open_tx = SmtpClient(self.port)
        self.assertEqual(open_tx.code(), 220)
        open_tx.command("EHLO busy.test")
        self.assertEqual(open_tx.command("MAIL FROM:<a@outside.example>")[-1][:3], "250")
        self.assertEqual(open_tx.command("RCPT TO:<u@example.net>")[-1][:3], "250")
        idle = SmtpClient(self.port)
        self.assertEqual(idle.code(), 220)
        idle.command("EHLO idle.test")

        # v2: the pool's only backend is now b.
        self.write(self.config([("b", b.port)]))
        self.lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.lb.log_lines("event=reloaded "), what="reloaded")
        # Sessions in progress go on, on the old configuration: the open
        # transaction finishes on a, and so does the next one of each.
        self.assertEqual(open_tx.command("DATA")[-1][:3], "354")
        open_tx.send("Subject: inflight\r\n\r\nx\r\n.\r\n")
        self.assertTrue(open_tx.read_reply()[-1].startswith("250"))
        for client, subject in ((open_tx, "old-session-1"), (idle, "old-session-2")):
            self.assertEqual(client.command("MAIL FROM:<a@outside.example>")[-1][:3], "250")
            self.assertEqual(client.command("RCPT TO:<u@example.net>")[-1][:3], "250")
            self.assertEqual(client.command("DATA")[-1][:3], "354")
            client.send(f"Subject: {subject}\r\n\r\nx\r\n.\r\n")
            self.assertTrue(client.read_reply()[-1].startswith("250"))
        send_one(self.port, "v2")  # a new session: same port, new configuration
        wait_until(lambda: "v2" in subjects(b), what="v2 at b")
        self.assertEqual(sorted(subjects(a)), ["inflight", "old-session-1", "old-session-2", "v1"])
        # When its last session ends, the old configuration is let go.
        for client in (open_tx, idle):
            self.assertTrue(client.command("QUIT")[-1].startswith("221"))
        wait_until(lambda: self.lb.log_lines("event=generation_released generation=1 "),
                   what="the old configuration released", timeout=20)

        # A bad file: refused with its reasons; v2 keeps running.
        self.write(self.config([("b", b.port)]).replace('name = "hubs"', 'name = "hubs"\nbogus = 1'))
        self.lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.lb.log_lines("event=reload_refused "), what="reload refused")
        self.assertTrue(self.lb.log_lines("pool[0].bogus"))
        status, body = self.reload_api()
        self.assertEqual(status, 422)
        self.assertFalse(body["reloaded"])
        self.assertIn("unknown key", body["message"])
        cli = subprocess.run([harness.SMTPLB, "reload", "--admin", f"127.0.0.1:{self.admin}"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(cli.returncode, 1)
        self.assertIn("pool[0].bogus", cli.stderr)
        send_one(self.port, "still-v2")
        wait_until(lambda: "still-v2" in subjects(b), what="still-v2 at b")

        # Admin state survives a reload for a backend that stays.
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}/api/v1/backends/hubs/b/drain", data=b"{}",
            headers=JSON, method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        self.write(self.config([("a", a.port), ("b", b.port)]))
        status, body = self.reload_api()
        self.assertEqual(status, 200, body)
        self.assertTrue(body["reloaded"])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/api/v1/status",
                                    timeout=10) as r:
            backends = {x["name"]: x for x in json.load(r)["pools"][0]["backends"]}
        self.assertEqual(backends["b"]["admin"], "drain")
        self.assertEqual(backends["b"]["counters"]["delivered"], 2)  # counters carried over
        for i in range(4):
            send_one(self.port, f"v4-{i}")
        wait_until(lambda: sum(x.startswith("v4-") for x in subjects(a)) == 4, what="v4 at a")
        self.assertFalse(any(x.startswith("v4-") for x in subjects(b)))
        # Every tracking line of every generation is whole (flushed each second).
        wait_until(lambda: len(self.lb.tracking_records()) >= 10, what="10 tracking records")
        self.assertEqual(len(self.lb.tracking_records()), 10)

    def test_reloads_under_load_lose_nothing(self):
        sinks = self.start_sinks(*("a", "b", "c"))
        self.port = free_port()
        backends = [(s.name, s.port) for s in sinks]
        self.lb = Smtplb(self.workdir, self.config(backends))
        self.lb.start(self.port)
        self.addCleanup(self.lb.stop)
        acked, errors = [], []

        def one_session(n):
            # 100 messages over one session, as an appliance sends: the
            # reloads must not show in it at all.
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
                    for i in range(100):
                        mid = f"c{n}-{i}"
                        s.sendmail("a@outside.example", ["u@example.net"],
                                   f"Subject: {mid}\r\n\r\nx\r\n")
                        acked.append(mid)
            except (smtplib.SMTPException, OSError) as e:
                errors.append(f"client {n}: {e!r}")

        def new_sessions(n):
            # 100 messages, a new session each.
            for i in range(100):
                mid = f"n{n}-{i}"
                try:
                    send_one(self.port, mid)
                    acked.append(mid)
                except (smtplib.SMTPException, OSError) as e:
                    errors.append(f"client {n} message {i}: {e!r}")

        threads = [threading.Thread(target=one_session, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=new_sessions, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for k in range(5):  # alternate between two backend sets while mail flows
            time.sleep(0.3)
            self.write(self.config(backends[: 2 + k % 2]))
            self.lb.process.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len(self.lb.log_lines("event=reloaded ")) >= k + 1,
                       what=f"reload {k + 1}")
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        self.assertEqual(len(acked), 500)
        delivered = [x for s in sinks for x in subjects(s)]
        self.assertEqual(sorted(set(acked) - set(delivered)), [], "acknowledged, not delivered")


if __name__ == "__main__":
    main()
