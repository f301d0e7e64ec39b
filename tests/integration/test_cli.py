"""The command line contract: check, demo, sink argument errors."""
import os
import subprocess

from harness import WorkdirTestCase, main
import harness

GOOD = """
[server]
hostname = "mx.example.net"
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubs"
[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
"""

BAD = """
[server]
hostname = "mx.example.net"
[[listener]]
name = "internet"
bind = "127.0.0.1:2525"
accepted_domains = ["example.net"]
pool = "hubz"
max_recipients = -4
[[pool]]
name = "hubs"
algorithm = "fastest"
[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
"""


class Cli(WorkdirTestCase):
    def run_smtplb(self, *args, timeout=60):
        return subprocess.run([harness.SMTPLB, *args], capture_output=True, text=True, timeout=timeout)

    def write(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_prints_effective_configuration(self):
        # `check` also checks the state directory `run` needs: this one.
        good = GOOD.replace("[server]\n", f'[server]\nstate_dir = "{self.workdir}"\n')
        r = self.run_smtplb("check", "--config", self.write("good.toml", good))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('max_recipients = 100', r.stdout)
        self.assertIn('algorithm = "round_robin"', r.stdout)

    def test_check_reports_every_error_with_path_and_line(self):
        path = self.write("bad.toml", BAD)
        r = self.run_smtplb("check", "--config", path)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{path}:9: error: listener[0].max_recipients: must be between 1", r.stderr)
        self.assertIn(f"{path}:12: error: pool[0].algorithm: must be one of", r.stderr)
        self.assertIn(f'{path}:8: error: listener[0].pool: no [[pool]] is named "hubz"', r.stderr)

    def test_run_refuses_invalid_configuration(self):
        r = self.run_smtplb("run", "--config", self.write("bad.toml", BAD), timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not starting", r.stderr)

    def test_demo_spreads_one_connection_over_three_backends(self):
        r = self.run_smtplb("demo", "--messages", "90", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("accepted 90, refused 0, received by backends 90", r.stdout)
        for name in ("hub1", "hub2", "hub3"):
            line = next(l for l in r.stdout.splitlines() if l.startswith(name + " "))
            self.assertIn(" 30 ", line)
            self.assertIn("127.0.0.1 (XCLIENT)", line)

    def test_run_refuses_an_unusable_state_dir(self):
        import configs
        from harness import free_port
        port = free_port()
        text = configs.balancer(port, [("hub", free_port())]).replace(
            "@STATE@", os.path.join(self.workdir, "missing")).replace("@TRACKING@", "")
        r = self.run_smtplb("run", "--config", self.write("nostate.toml", text), timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("server.state_dir", r.stderr)
        self.assertIn("cannot hold temporary files", r.stderr)

    def test_sighup_reloads_and_keeps_serving(self):
        import signal
        import smtplib
        import configs
        from harness import Smtplb, free_port
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub", free_port())]))
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.process.proc.send_signal(signal.SIGHUP)
        # A session open during the reload would be told 421 (see
        # test_reload.py); one opened after it is served by the new one.
        harness.wait_until(lambda: lb.log_lines("event=reloaded "), what="reloaded")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            self.assertEqual(s.noop()[0], 250)
        self.assertIsNone(lb.process.proc.poll())

    def test_sink_rejects_bad_fault(self):
        r = self.run_smtplb("sink", "--listen", "127.0.0.1:0", "--fault", "mail=999")
        self.assertEqual(r.returncode, 2)
        self.assertIn("fault action", r.stderr)


if __name__ == "__main__":
    main()
