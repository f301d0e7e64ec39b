"""`smtplb check` validates what `run` needs, not only the file: the state
and tracking-log directories, ports that would collide, certificates that
load and do not expire soon. Every finding has its key path and line; any
error exits 1, warnings alone exit 0; -q prints the findings only. Also:
every file in examples/ passes `check` and `audit --offline` without a
single finding."""
import os
import re
import shutil
import subprocess

import harness
from harness import WorkdirTestCase, main

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")

BASE = """[server]
hostname = "mx.example.net"
state_dir = "{state}"
tracking_log = "{tracking}"
admin = "{admin}"

[[listener]]
name = "internet"
bind = "{bind}"
accepted_domains = ["example.net"]
pool = "hubs"
{listener_extra}
[[pool]]
name = "hubs"
health = {{ depth = "mail", interval = "5m" }}

[[pool.backend]]
name = "hub1"
address = "127.0.0.1:2601"
"""


class Check(WorkdirTestCase):
    def config(self, name="smtplb.toml", state=None, tracking=None, admin="",
               bind="127.0.0.1:2525", listener_extra="", extra=""):
        """Writes a configuration; returns its path and the text's lines."""
        text = BASE.format(
            state=self.workdir if state is None else state,
            tracking=os.path.join(self.workdir, "tracking.jsonl") if tracking is None else tracking,
            admin=admin, bind=bind, listener_extra=listener_extra) + extra
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path, text.splitlines()

    def check(self, path, *args):
        return subprocess.run([harness.SMTPLB, "check", "--config", path, *args],
                              capture_output=True, text=True, timeout=60)

    def line_of(self, lines, prefix, start=0):
        """1-based line of the first line from `start` that starts with prefix."""
        return next(i + 1 for i, l in enumerate(lines) if i >= start and l.startswith(prefix))

    def test_a_good_file_passes_and_prints_durations_and_sizes_as_written(self):
        path, _ = self.config(listener_extra='max_message_size = "10MiB"\n'
                                             'command_timeout = "5m"\n')
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('max_message_size = "10MiB"', r.stdout)
        self.assertIn('command_timeout = "5m"', r.stdout)
        self.assertIn('interval = "5m"', r.stdout)
        self.assertNotIn("300000", r.stdout)
        q = self.check(path, "-q")
        self.assertEqual((q.returncode, q.stdout, q.stderr), (0, "", ""))

    def test_a_missing_state_dir_is_an_error_with_its_line(self):
        missing = os.path.join(self.workdir, "missing")
        path, lines = self.config(state=missing)
        r = self.check(path, "-q")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        line = self.line_of(lines, "state_dir")
        self.assertIn(f'{path}:{line}: error: server.state_dir: "{missing}" does not exist',
                      r.stderr)
        # -q: the findings and nothing else.
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # What `run` says about the same file.
        os.makedirs(missing)
        self.assertEqual(self.check(path).returncode, 0)

    def test_a_missing_tracking_log_directory_is_an_error_with_its_line(self):
        tracking = os.path.join(self.workdir, "logs", "tracking.jsonl")
        path, lines = self.config(tracking=tracking)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        line = self.line_of(lines, "tracking_log")
        self.assertIn(f"{path}:{line}: error: server.tracking_log: the log's directory", r.stderr)
        self.assertIn("does not exist", r.stderr)
        self.assertIn("configuration is not valid", r.stderr)
        self.assertEqual(r.stdout, "")
        # stdout and "-" need no directory.
        path, _ = self.config(tracking="-")
        self.assertEqual(self.check(path).returncode, 0)

    def test_directories_are_checked_as_the_user_the_service_runs_as(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to compare with another user")
        # The work directory is 0700 root: root may write there, nobody may not.
        path, lines = self.config()
        self.assertEqual(self.check(path, "-q").returncode, 0)
        r = self.check(path, "-q", "--user", "nobody")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"{path}:{self.line_of(lines, 'state_dir')}: error: server.state_dir: "
                      f"\"{self.workdir}\" is not writable by user nobody", r.stderr)
        self.assertIn(f"server.tracking_log: the log's directory \"{self.workdir}\" is not "
                      "writable by user nobody", r.stderr)
        r = self.check(path, "--user", "no-such-user-here")
        self.assertEqual(r.returncode, 1)
        self.assertIn('no user named "no-such-user-here"', r.stderr)
        # A directory nobody owns, under a searchable one: it passes.
        shared = os.path.join(self.workdir, "shared")
        os.makedirs(os.path.join(shared, "state"))
        shutil.chown(os.path.join(shared, "state"), "nobody")
        path, _ = self.config(state=os.path.join(shared, "state"), tracking="-")
        os.chmod(self.workdir, 0o700)
        r = self.check(path, "-q", "--user", "nobody")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"user nobody cannot reach \"{shared}/state\": \"{self.workdir}\" is not "
                      "searchable by it", r.stderr)
        os.chmod(self.workdir, 0o711)
        r = self.check(path, "-q", "--user", "nobody")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # A spool an earlier run as root left behind: nobody could not use it.
        os.makedirs(os.path.join(shared, "state", "spool"))
        r = self.check(path, "-q", "--user", "nobody")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f'server.state_dir: the spool "{shared}/state/spool" is not writable by '
                      "user nobody", r.stderr)

    def test_admin_on_a_listeners_address_is_an_error(self):
        for admin, bind in (("127.0.0.1:2525", "127.0.0.1:2525"),
                            ("127.0.0.1:2525", "0.0.0.0:2525")):
            with self.subTest(admin=admin, bind=bind):
                path, lines = self.config(admin=admin, bind=bind)
                r = self.check(path, "-q")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(f"{path}:{self.line_of(lines, 'admin')}: error: server.admin: "
                              f"{admin} collides with listener \"internet\" on {bind} "
                              f"(line {self.line_of(lines, 'bind')})", r.stderr)
        # Another port is fine.
        path, _ = self.config(admin="127.0.0.1:2526", bind="0.0.0.0:2525")
        self.assertEqual(self.check(path, "-q").returncode, 0)

    def test_colliding_listeners_are_an_error(self):
        cases = [("127.0.0.1:2525", "127.0.0.1:2525"),  # the same address
                 ("0.0.0.0:2525", "127.0.0.1:2525"),    # the wildcard covers it
                 ("[::]:2525", "127.0.0.1:2525")]       # dual-stack: so does [::]
        for first, second in cases:
            with self.subTest(first=first, second=second):
                extra = ('\n[[listener]]\nname = "second"\nbind = "%s"\nrole = "relay"\n'
                         'trusted_networks = ["10.0.0.0/8"]\npool = "hubs"\n' % second)
                path, lines = self.config(bind=first, extra=extra)
                r = self.check(path, "-q")
                self.assertEqual(r.returncode, 1, r.stderr)
                second_bind = self.line_of(lines, "bind", self.line_of(lines, 'name = "second"'))
                self.assertIn(f"{path}:{second_bind}: error: listener[1].bind: {second} collides "
                              f"with listener \"internet\" on {first}", r.stderr)
        # Different ports, or two specific addresses, do not collide.
        for first, second in (("0.0.0.0:2525", "127.0.0.1:2526"),
                              ("127.0.0.1:2525", "127.0.0.2:2525"),
                              ("0.0.0.0:2525", "[::1]:2525")):
            extra = ('\n[[listener]]\nname = "second"\nbind = "%s"\nrole = "relay"\n'
                     'trusted_networks = ["10.0.0.0/8"]\npool = "hubs"\n' % second)
            path, _ = self.config(bind=first, extra=extra)
            r = self.check(path, "-q")
            self.assertEqual(r.returncode, 0, f"{first} {second}: {r.stderr}")

    def certificate(self, name, days):
        key, cert = (os.path.join(self.workdir, f"{name}.{x}") for x in ("key", "crt"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", str(days), "-subj", "/CN=mx.example.net"],
                       check=True, capture_output=True)
        return cert, key

    def test_a_certificate_expiring_within_14_days_is_a_warning(self):
        cert, key = self.certificate("soon", 10)
        tls = f'tls = {{ mode = "starttls", cert = "{cert}", key = "{key}" }}\n'
        path, lines = self.config(listener_extra=tls)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)  # a warning alone
        self.assertRegex(r.stderr, rf"{re.escape(path)}:{self.line_of(lines, 'tls')}: warning: "
                                   rf"listener\[0\]\.tls\.cert: the certificate in "
                                   rf"\"{re.escape(cert)}\" expires in (9|10) days")
        self.assertIn("[[listener]]", r.stdout)
        q = self.check(path, "-q")
        self.assertEqual((q.returncode, q.stdout), (0, ""))
        self.assertEqual(len(q.stderr.strip().splitlines()), 1, q.stderr)
        # Valid for a year: nothing to say.
        cert, key = self.certificate("later", 365)
        path, _ = self.config(
            listener_extra=f'tls = {{ mode = "starttls", cert = "{cert}", key = "{key}" }}\n')
        q = self.check(path, "-q")
        self.assertEqual((q.returncode, q.stderr), (0, ""))
        # A key that belongs to another certificate is an error, on the same line.
        other_cert, other_key = self.certificate("other", 365)
        path, lines = self.config(
            listener_extra=f'tls = {{ mode = "starttls", cert = "{cert}", key = "{other_key}" }}\n')
        q = self.check(path, "-q")
        self.assertEqual(q.returncode, 1, q.stderr)
        self.assertIn(f"{path}:{self.line_of(lines, 'tls')}: error: listener[0].tls.cert: ",
                      q.stderr)
        self.assertIn("key values mismatch", q.stderr)

    def test_a_token_file_every_local_user_can_read_is_a_warning(self):
        token = os.path.join(self.workdir, "admin.token")
        with open(token, "w") as f:
            f.write("0123456789abcdef0123456789\n")
        os.chmod(token, 0o644)
        path, _ = self.config(admin="127.0.0.1:18025")
        text = open(path).read().replace('admin = "127.0.0.1:18025"\n',
                                         f'admin = "127.0.0.1:18025"\nadmin_token_file = "{token}"\n')
        with open(path, "w") as f:
            f.write(text)
        lines = text.splitlines()
        r = self.check(path, "-q")
        self.assertEqual(r.returncode, 0, r.stderr)  # a warning, not an error
        line = self.line_of(lines, "admin_token_file")
        self.assertIn(f"{path}:{line}: warning: server.admin_token_file:", r.stderr)
        self.assertIn("readable by every local user (mode 644)", r.stderr)
        os.chmod(token, 0o640)
        self.assertEqual(self.check(path, "-q").stderr, "")

    def test_bounds_are_printed_in_natural_units(self):
        path, lines = self.config(listener_extra='command_timeout = "2h"\n'
                                                 'max_message_size = "8GiB"\n')
        r = self.check(path, "-q")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{path}:{self.line_of(lines, 'command_timeout')}: error: "
                      "listener[0].command_timeout: must be between 1s and 1h, not 2h", r.stderr)
        self.assertIn("listener[0].max_message_size: must be between 1KiB and 4GiB, not 8GiB",
                      r.stderr)

    def test_every_example_passes_check_and_the_offline_audit_without_a_finding(self):
        files = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".toml"))
        self.assertGreaterEqual(len(files), 3)
        for name in files:
            with self.subTest(example=name):
                with open(os.path.join(EXAMPLES, name)) as f:
                    text = f.read()
                # The examples name the packaged directories; here they are
                # the test's own (the only change made to them).
                text, n = re.subn(r'(?m)^state_dir = ".*"$', f'state_dir = "{self.workdir}"',
                                  text)
                self.assertEqual(n, 1, name)
                os.makedirs(os.path.join(self.workdir, "log"), exist_ok=True)
                text = re.sub(r'(?m)^tracking_log = ".*"$',
                              f'tracking_log = "{self.workdir}/log/tracking.jsonl"', text)
                path = os.path.join(self.workdir, name)
                with open(path, "w") as f:
                    f.write(text)
                r = self.check(path, "-q")
                self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), name)
                a = subprocess.run([harness.SMTPLB, "audit", "--offline", "--config", path],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(a.returncode, 0, a.stdout + a.stderr)
                self.assertEqual(a.stdout.strip(),
                                 "0 problems, 0 warnings, 0 notes (configuration only)",
                                 name + ":\n" + a.stdout)


if __name__ == "__main__":
    main()
