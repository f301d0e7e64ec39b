"""Running as a service: the systemd notify protocol (readiness after the
listeners are bound, watchdog keep-alives, reload and stop), and the Debian
package built by CPack (files, dependencies, a default configuration that
validates, a unit file systemd accepts)."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main


class Service(WorkdirTestCase):
    def test_notify_protocol(self):
        path = os.path.join(self.workdir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(10)
        self.addCleanup(sock.close)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000")
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub", free_port())]), env=env)
        lb.process.start()
        self.addCleanup(lb.stop)

        def next_message():
            return sock.recv(4096).decode()

        first = next_message()
        self.assertIn("READY=1", first)
        # Ready means bound: the port accepts now, without waiting.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        watchdogs = sum("WATCHDOG=1" in next_message() for _ in range(3))
        self.assertGreaterEqual(watchdogs, 2)
        lb.process.proc.send_signal(signal.SIGHUP)
        seen = [next_message() for _ in range(6)]
        states = [m for m in seen if "WATCHDOG" not in m]
        self.assertIn("RELOADING=1", states[0])
        self.assertIn("READY=1", states[1])
        # Nobody reads for a while: the notify socket's queue (10 datagrams)
        # fills up, and the daemon must not block on it.
        time.sleep(1.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            self.assertTrue(c.recv(100).startswith(b"220"))
        # Read what queued up, so that STOPPING=1 finds room (a full queue
        # drops it, by design: the daemon never blocks on systemd).
        sock.setblocking(False)
        try:
            while sock.recv(4096):
                pass
        except BlockingIOError:
            pass
        sock.settimeout(10)
        lb.process.proc.send_signal(signal.SIGTERM)
        while True:
            m = next_message()
            if "STOPPING=1" in m:
                break
        self.assertEqual(lb.process.proc.wait(timeout=15), 0)

    def test_admin_api_with_a_bearer_token(self):
        token_file = os.path.join(self.workdir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret-token-0123456789\n")
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("hub", free_port())],
            server_options={"admin": "127.0.0.1:0", "admin_token_file": token_file}))
        lb.start(port)
        self.addCleanup(lb.stop)
        url = f"http://127.0.0.1:{lb.admin_port()}/api/v1/status"
        with self.assertRaises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=10)
        self.assertEqual(denied.exception.code, 401)
        request = urllib.request.Request(url, headers={"Authorization": "Bearer wrong"})
        with self.assertRaises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(denied.exception.code, 401)
        request = urllib.request.Request(
            url, headers={"Authorization": "Bearer s3cret-token-0123456789"})
        with urllib.request.urlopen(request, timeout=10) as r:
            self.assertEqual(r.status, 200)
        admin = f"127.0.0.1:{lb.admin_port()}"
        r = subprocess.run([harness.SMTPLB, "status", "--admin", admin, "--token-file",
                            token_file], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hub", r.stdout)
        r = subprocess.run([harness.SMTPLB, "status", "--admin", admin], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("401", r.stderr)

    def test_debian_package(self):
        build = pathlib.Path(harness.SMTPLB).parents[2]
        self.assertTrue((build / "CPackConfig.cmake").exists(), build)
        out = os.path.join(self.workdir, "pkg")
        r = subprocess.run(["cpack", "-G", "DEB", "-B", out], cwd=build, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        debs = list(pathlib.Path(out).glob("smtplb_*.deb"))
        self.assertEqual(len(debs), 1, r.stdout)
        deb = str(debs[0])
        files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                               check=True).stdout
        # The configuration reference as a man page, and the pages the README links to.
        self.assertIn("./usr/share/man/man5/smtplb.toml.5", files)
        self.assertIn("./usr/share/doc/smtplb/configuration.md", files)
        self.assertIn("./usr/share/doc/smtplb/operations.md", files)
        for f in ("./usr/bin/smtplb", "./usr/lib/systemd/system/smtplb.service",
                  "./etc/smtplb/smtplb.toml", "./usr/share/man/man1/smtplb.1",
                  "./usr/share/doc/smtplb/prometheus-alerts.yml",
                  "./usr/share/doc/smtplb/grafana-dashboard.json",
                  "./etc/logrotate.d/smtplb"):
            self.assertIn(f, files)
        depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True,
                                 text=True, check=True).stdout
        self.assertIn("libboost-json", depends)
        self.assertIn("adduser", depends)
        control = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True,
                                 check=True).stdout
        for script in ("postinst", "prerm", "postrm", "conffiles"):
            self.assertIn(script, control)
        root = os.path.join(self.workdir, "root")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        self.check_maintainer_scripts(deb)
        self.check_logrotate(os.path.join(root, "etc/logrotate.d/smtplb"))
        binary = os.path.join(root, "usr/bin/smtplb")
        conf = os.path.join(root, "etc/smtplb/smtplb.toml")
        # `check` also wants the directories postinst creates: here, the test's own.
        with open(conf) as f:
            packaged = f.read()
        checked = os.path.join(self.workdir, "checked.toml")
        with open(checked, "w") as f:
            f.write(packaged.replace("/var/lib/smtplb", self.workdir)
                    .replace("/var/log/smtplb", self.workdir))
        r = subprocess.run([binary, "check", "--config", checked], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The unit as systemd reads it, pointed at the extracted files.
        with open(os.path.join(root, "usr/lib/systemd/system/smtplb.service")) as f:
            unit = f.read().replace("/usr/bin/smtplb", binary).replace(
                "/etc/smtplb/smtplb.toml", conf)
        self.assertIn("Type=notify", unit)
        path = os.path.join(self.workdir, "smtplb.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), r.stdout)

    def check_maintainer_scripts(self, deb):
        """prerm/postrm stop and disable the service, idempotently, with and
        without systemd's tools (stubs record what they were asked)."""
        control = os.path.join(self.workdir, "control")
        subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertIn("/etc/logrotate.d/smtplb", f.read().split())
        stubs = os.path.join(self.workdir, "stubs")
        os.makedirs(stubs)
        calls = os.path.join(self.workdir, "calls")
        for tool in ("systemctl", "deb-systemd-helper"):
            with open(os.path.join(stubs, tool), "w") as f:
                f.write(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\n")
            os.chmod(os.path.join(stubs, tool), 0o755)
        empty = os.path.join(self.workdir, "empty")
        os.makedirs(empty)
        for path in (stubs, empty):
            for script, args in (("prerm", "remove"), ("prerm", "remove"), ("postrm", "remove"),
                                 ("postrm", "purge"), ("prerm", "upgrade")):
                r = subprocess.run(["/bin/sh", os.path.join(control, script), args],
                                   env={"PATH": path}, capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, (script, args, path, r.stderr))
        with open(calls) as f:
            recorded = f.read()
        self.assertIn("deb-systemd-helper disable smtplb.service", recorded)
        self.assertIn("deb-systemd-helper purge smtplb.service", recorded)
        if os.path.isdir("/run/systemd/system"):
            self.assertIn("systemctl stop smtplb.service", recorded)

    def check_logrotate(self, path):
        """The shipped logrotate file as logrotate reads it (debug mode: no
        change), pointed at a log in the work directory."""
        if not shutil.which("logrotate"):
            self.skipTest("logrotate is not installed")
        with open(path) as f:
            text = f.read()
        for word in ("compress", "delaycompress", "postrotate", "USR1", "reopen-logs"):
            self.assertIn(word, text)
        log = os.path.join(self.workdir, "tracking.jsonl")
        with open(log, "w") as f:
            f.write("{}\n")
        conf = os.path.join(self.workdir, "logrotate.conf")
        with open(conf, "w") as f:
            text = text.replace("/var/log/smtplb/tracking.jsonl", log)
            if subprocess.run(["getent", "passwd", "smtplb"], capture_output=True).returncode:
                # The package's postinst makes the user; not installed here.
                text = text.replace("create 0640 smtplb smtplb", "create 0640 root root")
            f.write(text)
        r = subprocess.run(["logrotate", "-d", "-s", os.path.join(self.workdir, "lr.state"), conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("error", (r.stdout + r.stderr).lower())


if __name__ == "__main__":
    main()
