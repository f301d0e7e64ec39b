"""The tracking log an operator can rely on: every line whole (one write per
line, O_APPEND), written before the client's 250, so a rotation by rename and
SIGUSR1 under load loses or splits nothing and kill -9 right after the last
250 loses nothing; `smtplb reopen-logs`; signals that logrotate or an operator
sends do not kill the daemon; mode 0640; the lines for refused relay attempts,
a real Postfix refusing at RCPT and queue actions (API and CLI); and every
line produced here validates against docs/tracking-schema.json."""
import json
import os
import pathlib
import shutil
import signal
import smtplib
import stat
import subprocess
import threading
import urllib.request

import configs
import harness
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available, wait_until

SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tracking-schema.json"
DIST_LOGROTATE = pathlib.Path(__file__).resolve().parents[2] / "dist" / "smtplb.logrotate"


def read_lines(path):
    """Every line of a tracking file, parsed; a line without its newline or
    that is not JSON fails the test (a split or torn line)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise AssertionError(f"{path} ends inside a line: {data[-200:]!r}")
    return [json.loads(line) for line in data.decode().splitlines()]


def message(subject):
    return (f"From: a@client.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@client.test>\r\n\r\nbody of {subject}\r\n")


def send_many(port, subjects, errors, stop=None, sent=None):
    """One reused session sending the subjects in turn (until `stop` is set,
    if given); failures go to `errors`, what got its 250 to `sent`."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            for subject in subjects:
                if stop is not None and stop.is_set():
                    break
                s.sendmail("alice@example.org", ["bob@example.net"], message(subject))
                if sent is not None:
                    sent.append(subject)
    except Exception as e:  # reported by the test
        errors.append(repr(e))


def admin_post(port, path):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.load(r)


class TrackingLog(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.validated = 0

    def validate(self, records):
        """Every record against the published schema (python3-jsonschema)."""
        import jsonschema
        with open(SCHEMA) as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for r in records:
            errors = sorted(validator.iter_errors(r), key=str)
            self.assertFalse(errors, f"{r}\n" + "\n".join(e.message for e in errors))
        self.validated += len(records)

    def start_balancer(self, backends, server_options=None, name="smtplb", **options):
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, backends, server_options=server_options,
                                                   **options), name=name)
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def test_rotation_under_load_loses_and_splits_nothing(self):
        (sink,) = self.start_sinks("hub")
        lb, port = self.start_balancer([("hub", sink.port)], server_options={"threads": 2})
        clients, at_most = 6, 400  # bounded: each client stops at 400 messages
        errors, sent, stop = [], [], threading.Event()
        threads = [threading.Thread(target=send_many, args=(
            port, [f"c{c}m{i}" for i in range(at_most)], errors, stop, sent))
            for c in range(clients)]
        for t in threads:
            t.start()
        try:
            # Rotated while the clients send: after 100 lines, and the
            # clients go on until the new file has 100 more.
            wait_until(lambda: len(sent) >= 100, timeout=60,
                       what="100 messages")
            rotated = lb.tracking + ".1"
            os.rename(lb.tracking, rotated)
            os.kill(lb.process.proc.pid, signal.SIGUSR1)
            wait_until(lambda: os.path.exists(lb.tracking) and
                       os.path.getsize(lb.tracking) > 0 and len(sent) >= 300,
                       timeout=60, what="lines in the new file")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        self.assertEqual(errors, [])
        old, new = read_lines(rotated), read_lines(lb.tracking)
        self.assertTrue(old and new, (len(old), len(new)))
        ids = sorted(r["message_id"] for r in old + new)
        # Each message that got its 250 exactly once, across the two files.
        self.assertEqual(ids, sorted(f"<{s}@client.test>" for s in sent))
        self.assertTrue(all(r["result"] == "relayed" for r in old + new))
        self.assertTrue(lb.log_lines("event=logs_reopened"))
        for path in (rotated, lb.tracking):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640, path)
        self.validate(old + new)

    def test_kill_9_after_the_last_250_leaves_every_line(self):
        (sink,) = self.start_sinks("hub")
        lb, port = self.start_balancer([("hub", sink.port)])
        count = 25
        errors = []
        send_many(port, [f"k{i}" for i in range(count)], errors)
        self.assertEqual(errors, [])
        lb.process.proc.kill()  # SIGKILL, right after the last 250
        lb.process.proc.wait()
        lb.process.proc = None  # killed on purpose: not a crash for stop()
        records = read_lines(lb.tracking)
        self.assertEqual(sorted(r["message_id"] for r in records),
                         sorted(f"<k{i}@client.test>" for i in range(count)))
        self.validate(records)

    def test_reopen_logs_command_and_harmless_signals(self):
        (sink,) = self.start_sinks("hub")
        lb, port = self.start_balancer([("hub", sink.port)],
                                       server_options={"admin": "127.0.0.1:0"})
        admin = f"127.0.0.1:{lb.admin_port()}"
        errors = []
        send_many(port, ["before"], errors)
        os.rename(lb.tracking, lb.tracking + ".1")
        r = subprocess.run([harness.SMTPLB, "reopen-logs", "--admin", admin],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("reopened", r.stdout)
        send_many(port, ["after"], errors)
        # Signals logrotate or an operator sends: none may kill the daemon.
        pid = lb.process.proc.pid
        for signo in (signal.SIGUSR2, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1):
            os.kill(pid, signo)
        wait_until(lambda: lb.log_lines("event=signal_ignored"), what="SIGUSR2's log line")
        # The SIGUSR1 above handled first: a second one still pending would
        # merge with it (signals of one kind do not queue).
        wait_until(lambda: len(lb.log_lines("event=logs_reopened")) >= 2,
                   what="the reopen by SIGUSR1")
        os.rename(lb.tracking, lb.tracking + ".2")
        r = subprocess.run([harness.SMTPLB, "reopen-logs", "--pid", str(pid)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: len(lb.log_lines("event=logs_reopened")) >= 3,
                   what="the reopen by --pid")
        send_many(port, ["last"], errors)
        self.assertEqual(errors, [])
        self.assertIsNone(lb.process.proc.poll())
        self.assertEqual([r["message_id"] for r in read_lines(lb.tracking + ".1")],
                         ["<before@client.test>"])
        self.assertEqual([r["message_id"] for r in read_lines(lb.tracking + ".2")],
                         ["<after@client.test>"])
        self.assertEqual([r["message_id"] for r in read_lines(lb.tracking)],
                         ["<last@client.test>"])
        # No daemon there: exit 1 and why.
        closed = free_port()
        r = subprocess.run([harness.SMTPLB, "reopen-logs", "--admin", f"127.0.0.1:{closed}"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("reopen-logs", r.stderr)
        r = subprocess.run([harness.SMTPLB, "reopen-logs", "--pid", "1"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot signal", r.stderr)

    def test_refused_relay_attempt_names_sender_recipient_and_helo(self):
        (sink,) = self.start_sinks("hub")
        lb, port = self.start_balancer([("hub", sink.port)])
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.ehlo("relay-probe.test")
            s.mail("spammer@example.org")
            code, _ = s.rcpt("victim@elsewhere.example")
            self.assertEqual(code // 100, 5)
        wait_until(lambda: read_lines(lb.tracking), what="the refusal's line")
        (r,) = read_lines(lb.tracking)
        self.assertEqual(r["result"], "rejected")
        self.assertEqual((r["sender"], r["helo"]), ("spammer@example.org", "relay-probe.test"))
        self.assertEqual(r["recipients"], 0)
        (rcpt,) = r["recipient_list"]
        self.assertEqual(rcpt["address"], "victim@elsewhere.example")
        self.assertEqual(rcpt["reply"], "550 5.7.1 Relay access denied")
        self.assertEqual(r["identity"], "")  # no backend was reached
        self.validate([r])

    def test_postfix_refusing_at_rcpt_is_named_in_the_attempts(self):
        if not postfix_available():
            self.skipTest("Postfix is not installed")
        access = os.path.join(self.workdir, "rcpt_access")
        with open(access, "w") as f:
            f.write("nobody@example.net REJECT no such user here\n")
        pf = Postfix(self.workdir, "pf", extra_main=(
            f"smtpd_recipient_restrictions = check_recipient_access texthash:{access}"))
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_balancer([("pf", pf.port)],
                                       pool_options={"health": {"enabled": False}})
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            refused = s.sendmail("alice@example.org", ["good@example.net", "nobody@example.net"],
                                 message("postfix-rcpt"))
        self.assertEqual(list(refused), ["nobody@example.net"])
        wait_until(lambda: read_lines(lb.tracking), what="the line")
        (r,) = read_lines(lb.tracking)
        self.assertEqual(r["result"], "relayed")
        self.assertEqual(r["message_id"], "<postfix-rcpt@client.test>")
        self.assertEqual(r["recipients"], 1)
        replies = {x["address"]: x["reply"] for x in r["recipient_list"]}
        self.assertTrue(replies["good@example.net"].startswith("250"), replies)
        self.assertIn("no such user here", replies["nobody@example.net"])
        rcpt_attempts = [a for a in r["attempts"] if a["stage"] == "rcpt"]
        self.assertEqual(len(rcpt_attempts), 1, r["attempts"])
        self.assertEqual(rcpt_attempts[0]["backend"], "pf")
        self.assertIn("no such user here", rcpt_attempts[0]["reply"])
        # A transaction whose only recipient Postfix refuses: the backend too.
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("alice@example.org")
            self.assertEqual(s.rcpt("nobody@example.net")[0], 554)
        wait_until(lambda: len(read_lines(lb.tracking)) == 2, what="the refusal's line")
        r = read_lines(lb.tracking)[1]
        self.assertEqual(r["result"], "rejected")
        self.assertEqual([a["backend"] for a in r["attempts"] if a["stage"] == "rcpt"], ["pf"])
        self.validate(read_lines(lb.tracking))

    def test_queue_actions_by_api_and_cli(self):
        backend_port = free_port()  # nothing listens: mail goes to the spool
        fast = {"interval": "1s", "down_interval": "1s", "rise": 1, "fall": 1, "timeout": "2s"}
        lb, port = self.start_balancer(
            [("hub", backend_port)], server_options={"admin": "127.0.0.1:0"},
            pool_options={"on_unavailable": "spool", "health": fast, "connect_timeout": "1s"})
        admin_port = lb.admin_port()
        with open(lb.config) as f:
            text = f.read()
        with open(lb.config, "w") as f:  # the CLI reads the admin address from the file
            f.write(text.replace('admin = "127.0.0.1:0"', f'admin = "127.0.0.1:{admin_port}"'))
        errors = []
        send_many(port, ["q0", "q1", "q2"], errors)
        self.assertEqual(errors, [])
        spooled = [r for r in read_lines(lb.tracking) if r["result"] == "spooled"]
        ids = [r["spool_id"] for r in spooled]
        self.assertEqual(len(ids), 3)

        def cli(*args):
            r = subprocess.run([harness.SMTPLB, "queue", "--config", lb.config, *args],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)

        self.assertEqual(admin_post(admin_port, f"/api/v1/queue/{ids[0]}/hold")[0], 200)
        cli("hold", ids[1])
        cli("release", ids[1])
        self.assertEqual(admin_post(admin_port, f"/api/v1/queue/{ids[2]}/delete")[0], 200)
        lb.stop()
        cli("delete", ids[0])  # a stopped daemon: the CLI writes the line itself
        actions = [(r["result"], r["spool_id"], r["by"]) for r in read_lines(lb.tracking)
                   if r["result"] in ("held", "released", "deleted")]
        self.assertEqual(actions, [("held", ids[0], "api"), ("held", ids[1], "cli"),
                                   ("released", ids[1], "cli"), ("deleted", ids[2], "api"),
                                   ("deleted", ids[0], "cli")])
        deleted = [r for r in read_lines(lb.tracking) if r["result"] == "deleted"][0]
        self.assertEqual((deleted["pool"], deleted["client"]), ("hubs", "127.0.0.1"))
        self.validate(read_lines(lb.tracking))

    def test_spool_delivery_and_tcp_mode_lines_follow_the_schema(self):
        backend_port = free_port()  # down at first: the message is spooled
        fast = {"interval": "1s", "down_interval": "1s", "rise": 1, "fall": 1, "timeout": "2s"}
        lb, port = self.start_balancer(
            [("hub", backend_port)],
            pool_options={"on_unavailable": "spool", "health": fast, "connect_timeout": "1s"},
            listener_options={"client_identity": "none"})
        errors = []
        send_many(port, ["spooled"], errors)
        self.assertEqual(errors, [])
        sink = harness.Sink(self.workdir, "hub", port=backend_port).start()
        self.addCleanup(sink.stop)
        wait_until(lambda: any(r["result"] == "delivered" for r in read_lines(lb.tracking)),
                   timeout=60, what="the delivery from the spool")
        delivered = [r for r in read_lines(lb.tracking) if r["result"] == "delivered"][0]
        (rcpt,) = delivered["recipient_list"]
        self.assertEqual(rcpt["address"], "bob@example.net")
        self.assertTrue(rcpt["reply"].startswith("250"), rcpt)
        tcp_state = os.path.join(self.workdir, "tcp-state")  # not the spool's directory
        os.makedirs(tcp_state)
        tcp, tcp_port = self.start_balancer([("hub", backend_port)], name="tcp",
                                            server_options={"state_dir": tcp_state},
                                            listener_options={"mode": "tcp",
                                                              "client_identity": "none"})
        send_many(tcp_port, ["through-tcp"], errors)
        self.assertEqual(errors, [])
        wait_until(lambda: read_lines(tcp.tracking), what="the tcp-mode line")
        self.assertEqual(read_lines(tcp.tracking)[0]["result"], "spliced")
        self.validate(read_lines(lb.tracking) + read_lines(tcp.tracking))

    def test_the_shipped_logrotate_file_rotates_a_running_daemon(self):
        self.rotate_with_the_shipped_file(admin=True)

    def test_the_shipped_logrotate_file_signals_a_daemon_without_admin_api(self):
        self.rotate_with_the_shipped_file(admin=False)

    def rotate_with_the_shipped_file(self, admin):
        self.assertTrue(shutil.which("logrotate"), "logrotate must be installed")
        (sink,) = self.start_sinks("hub")
        lb, port = self.start_balancer([("hub", sink.port)],
                                       server_options={"admin": "127.0.0.1:0" if admin else ""})
        if admin:
            admin_port = lb.admin_port()
            with open(lb.config) as f:
                text = f.read()
            with open(lb.config, "w") as f:  # reopen-logs reads the admin address from the file
                f.write(text.replace('admin = "127.0.0.1:0"', f'admin = "127.0.0.1:{admin_port}"'))
        errors = []
        send_many(port, ["before-rotation"], errors)
        with open(DIST_LOGROTATE) as f:
            conf = f.read()
        # The shipped file, pointed at this daemon: its log, its
        # configuration, this build; the systemd branch is for a real unit.
        conf = (conf.replace("/var/log/smtplb/tracking.jsonl", lb.tracking)
                .replace("/etc/smtplb/smtplb.toml", lb.config)
                .replace("smtplb reopen-logs", f"{harness.SMTPLB} reopen-logs")
                # The fallback's signal, to this test's daemon only.
                .replace("'^(/usr/bin/)?smtplb run'", f"'^{harness.SMTPLB} run --config {lb.config}'")
                .replace("[ -d /run/systemd/system ]", "false"))
        if subprocess.run(["getent", "passwd", "smtplb"], capture_output=True).returncode:
            conf = conf.replace("create 0640 smtplb smtplb", "create 0640 root root")
        path = os.path.join(self.workdir, "logrotate.conf")
        with open(path, "w") as f:
            f.write(conf)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.workdir, "state"), path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        wait_until(lambda: lb.log_lines("event=logs_reopened"), what="the reopen")
        send_many(port, ["after-rotation"], errors)
        self.assertEqual(errors, [])
        self.assertEqual([x["message_id"] for x in read_lines(lb.tracking + ".1")],
                         ["<before-rotation@client.test>"])
        self.assertEqual([x["message_id"] for x in read_lines(lb.tracking)],
                         ["<after-rotation@client.test>"])
        self.assertEqual(stat.S_IMODE(os.stat(lb.tracking).st_mode), 0o640)


if __name__ == "__main__":
    main()
