"""The daemon's stderr log (the journal under systemd): every line logfmt
with ts= (RFC 3339, UTC, milliseconds) and level= first; listeners announced
with their address, also those a reload adds; a reload's changes in words,
in the log and from `smtplb reload`, which exits 1 when the file is refused;
event=stopped the last line, with how long the daemon ran and why."""
import datetime
import os
import re
import shlex
import signal
import subprocess

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main, wait_until

LINE = re.compile(r'^ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) level=(info|warn|error) event=[a-z_]+'
                  r'( [a-z_]+=([^ "=]+|"([^"\\]|\\.)*"))*$')


def fields(line):
    """The key=value pairs of one logfmt line, quotes removed."""
    return {m.group(1): (m.group(3) if m.group(3) is not None else m.group(2))
            for m in re.finditer(r'([a-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^ ]*))', line)}


class Logs(WorkdirTestCase):
    def config(self, port, backend_port, extra_listeners=(), weight=1):
        return configs.balancer(port, [("a", backend_port, {"weight": weight})],
                                server_options={"admin": "127.0.0.1:0"},
                                extra_listeners=extra_listeners)

    def write(self, lb, text):
        with open(lb.config, "w") as f:
            f.write(harness.with_test_threads(text).replace("@TRACKING@", lb.tracking)
                    .replace("@STATE@", self.workdir))

    def reload(self, lb, *args):
        return subprocess.run([harness.SMTPLB, "reload", *args], capture_output=True, text=True,
                              timeout=30)

    def test_every_line_is_logfmt_with_time_and_level_and_stopped_is_last(self):
        port = free_port()
        backend_port = free_port()
        lb = Smtplb(self.workdir, self.config(port, backend_port))
        started = datetime.datetime.now(datetime.timezone.utc)
        lb.start(port)
        self.addCleanup(lb.stop)
        admin = f"127.0.0.1:{lb.admin_port()}"
        # Listeners with their address, mode and role.
        listening = [fields(x) for x in lb.log_lines("event=listening ")]
        self.assertEqual([(x["listener"], x["address"], x["mode"], x["role"]) for x in listening],
                         [("internet", f"127.0.0.1:{port}", "smtp", "inbound")])

        # A reload that adds a listener and changes a weight: both said in
        # words, by `smtplb reload` and in the log; the new listener is
        # announced as at start.
        port2 = free_port()
        extra = [{"name": "second", "bind": f"127.0.0.1:{port2}", "role": "relay",
                  "trusted_networks": ["127.0.0.1"], "pool": "hubs"}]
        text = self.config(port, backend_port, extra, weight=2)
        self.write(lb, text)
        r = self.reload(lb, "--admin", admin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"added listener second on 127.0.0.1:{port2} (mode smtp, role relay, "
                      "pool hubs)", r.stdout)
        self.assertIn("weight of backend a in pool hubs: 1 -> 2", r.stdout)
        changes = [fields(x)["change"] for x in lb.log_lines("event=config_changed ")]
        self.assertIn(f"added listener second on 127.0.0.1:{port2} (mode smtp, role relay, "
                      "pool hubs)", changes)
        self.assertIn("weight of backend a in pool hubs: 1 -> 2", changes)
        reloaded = fields(lb.log_lines("event=reloaded ")[-1])
        self.assertEqual(reloaded["changes"], str(len(changes)))
        second = [fields(x) for x in lb.log_lines("event=listening listener=second ")]
        self.assertEqual([(x["address"], x["role"]) for x in second],
                         [(f"127.0.0.1:{port2}", "relay")])

        # A file that does not validate: exit status 1 and why, with --admin
        # (the daemon refuses it) and with --config (refused before asking).
        self.write(lb, text.replace('name = "hubs"', 'name = "hubs"\nbogus = 1'))
        for args in (["--admin", admin], ["--config", lb.config]):
            r = self.reload(lb, *args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn("pool[0].bogus", r.stderr, args)
            self.assertIn("refused", r.stderr, args)
        wait_until(lambda: lb.log_lines("event=reload_refused "), what="reload_refused")
        self.assertTrue(lb.log_lines("event=config_error "))

        lb.process.proc.send_signal(signal.SIGTERM)
        self.assertEqual(lb.process.proc.wait(timeout=30), 0)
        ended = datetime.datetime.now(datetime.timezone.utc)
        lines = lb.log_lines()
        self.assertGreater(len(lines), 8)
        for line in lines:
            m = LINE.match(line)
            self.assertTrue(m, f"not a logfmt line with ts= and level= first: {line!r}")
            ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z")
            self.assertTrue(started - datetime.timedelta(seconds=1) <= ts <= ended, line)
        levels = {fields(x)["event"]: fields(x)["level"] for x in lines}
        self.assertEqual(levels["listening"], "info")
        self.assertEqual(levels["reload_refused"], "warn")
        self.assertEqual(levels["config_error"], "error")
        last = fields(lines[-1])
        self.assertEqual(last["event"], "stopped", lines[-3:])
        self.assertEqual(last["reason"], "signal SIGTERM")
        self.assertEqual(last["exit_status"], "0")
        self.assertGreater(float(last["uptime_seconds"]), 0)

    def test_a_daemon_that_cannot_start_says_why_and_stopped_last(self):
        port = free_port()
        text = configs.balancer(port, [("a", free_port())]).replace(
            "@STATE@", os.path.join(self.workdir, "missing")).replace("@TRACKING@", "")
        path = os.path.join(self.workdir, "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([harness.SMTPLB, "run", "--config", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        lines = r.stderr.splitlines()
        for line in lines:
            self.assertRegex(line, LINE)
        self.assertIn("event=start_failed", r.stderr)
        last = fields(lines[-1])
        self.assertEqual((last["event"], last["level"], last["exit_status"]), ("stopped", "error", "1"))
        self.assertIn("cannot hold temporary files", last["reason"])

    def test_a_certificate_close_to_expiry_is_a_warning(self):
        ca = harness.make_ca(self.workdir)
        cert = harness.make_certificate(self.workdir, ca, "lb", days=5)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("a", free_port())],
            listener_options={"tls": {"mode": "starttls", "cert": cert[0], "key": cert[1]}}))
        lb.start(port)
        self.addCleanup(lb.stop)
        listening = fields(lb.log_lines("event=listening ")[0])
        self.assertEqual(listening["tls"], "starttls")
        days = listening["certificate_days_left"]
        self.assertIn(days, ("4", "5"))  # 5 days from when openssl signed it
        warning = [fields(x) for x in lb.log_lines("event=certificate_expiring ")]
        self.assertEqual([(x["level"], x["listener"], x["days_left"], x["certificate"])
                          for x in warning], [("warn", "internet", days, cert[0])])

    def exec_reload(self, lb):
        """The unit's ExecReload= as systemd runs it for `systemctl reload`."""
        unit = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dist",
                            "smtplb.service")
        with open(unit) as f:
            line = next(x for x in f if x.startswith("ExecReload="))
        argv = [lb.config if a == "/etc/smtplb/smtplb.toml" else a
                for a in shlex.split(line[len("ExecReload="):])]
        argv = [harness.SMTPLB if a == "/usr/bin/smtplb" else a for a in argv]
        argv = [str(lb.process.proc.pid) if a == "$MAINPID" else a for a in argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def test_systemctl_reload_fails_when_the_file_is_refused(self):
        for admin in (f"127.0.0.1:{free_port()}", ""):
            with self.subTest(admin=admin):
                port, backend_port = free_port(), free_port()
                text = configs.balancer(port, [("a", backend_port)],
                                        server_options={"admin": admin})
                lb = Smtplb(self.workdir, text, name=f"lb{len(admin)}")
                lb.start(port)
                self.addCleanup(lb.stop)
                self.write(lb, text.replace("[[pool]]", "[[pool]]\nmax_attempts = 2"))
                r = self.exec_reload(lb)
                self.assertEqual(r.returncode, 0, r.stderr)
                wait_until(lambda: lb.log_lines("event=config_changed "), what="the change")
                self.assertIn("max_attempts of pool hubs: 3 -> 2",
                              " ".join(lb.log_lines("event=config_changed ")))
                if admin:
                    self.assertIn("max_attempts of pool hubs: 3 -> 2", r.stdout)
                self.write(lb, text.replace("[[pool]]", "[[pool]]\nmax_attempts = 0"))
                r = self.exec_reload(lb)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn("pool[0].max_attempts", r.stderr)
                self.assertIsNone(lb.process.proc.poll())


if __name__ == "__main__":
    main()
