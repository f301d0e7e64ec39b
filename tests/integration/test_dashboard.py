"""The dashboard at / on the admin listener, in headless Chromium through
Playwright (tests/e2e/dashboard.mjs): one browser for the token login and
two states of the daemon, (a) all up with live traffic, (b) one backend
drained, one down and a message in the spool; the captions and tables must
say which."""
import json
import os
import shutil
import smtplib
import subprocess
import threading
import urllib.request

import configs
from harness import Smtplb, WorkdirTestCase, free_port, main, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "dashboard-token-0123456789abcdef"
HEALTH = {"depth": "ehlo", "interval": "500ms", "down_interval": "500ms", "timeout": "2s",
          "rise": 1, "fall": 1}


class Dashboard(WorkdirTestCase):
    def status(self, admin_port):
        request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/api/v1/status",
                                         headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)

    def test_login_and_two_states(self):
        # Needed, not optional: scripts/bootstrap.sh installs them.
        self.assertIsNotNone(shutil.which("node"), "node is missing")
        self.assertTrue(os.path.exists(os.path.join(ROOT, "web/node_modules/playwright-core")),
                        "run npm ci --prefix web")
        hubs = self.start_sinks("a", "b", "c")
        (spool_backend,) = self.start_sinks("d")
        token_file = os.path.join(self.workdir, "admin.token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        port = free_port()
        text = configs.balancer(
            port, [(s.name, s.port) for s in hubs],
            pool_options={"health": HEALTH},
            listener_options={"accepted_domains": ["example.net", "spool.example"]},
            server_options={"admin": "127.0.0.1:0", "admin_token_file": token_file},
            routes=[{"recipient_domain": "spool.example", "pool": "spooled"}])
        text += configs.table("[[pool]]", {"name": "spooled", "on_unavailable": "spool",
                                           "health": HEALTH})
        text += configs.table("[[pool.backend]]", {"name": "d",
                                                   "address": f"127.0.0.1:{spool_backend.port}"})
        text += configs.table("[spool]", {"retry_initial": "1h", "retry_max": "1h"})
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        admin = lb.admin_port()
        stop = threading.Event()

        def traffic():  # bounded: at most 2000 messages, until the check ends
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                for i in range(2000):
                    if stop.is_set():
                        break
                    s.sendmail("a@outside.example", ["u@example.net"], f"Subject: {i}\r\n\r\nx\r\n")
                    stop.wait(0.02)

        sender = threading.Thread(target=traffic)
        sender.start()
        browser = subprocess.Popen(
            ["node", os.path.join(ROOT, "tests/e2e/dashboard.mjs"), f"http://127.0.0.1:{admin}/",
             "b", "d"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "SMTPLB_TOKEN": TOKEN})
        killer = threading.Timer(240, browser.kill)
        killer.start()
        try:
            first = browser.stdout.readline()
            if first.strip() == "state A: ok":
                # State B: d stops (its pool spools), a message goes to the spool.
                spool_backend.stop()
                wait_until(lambda: self.backend(admin, "d")["health"] == "down",
                           what="d down")
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                    s.sendmail("a@outside.example", ["u@spool.example"], "Subject: s\r\n\r\nx\r\n")
                self.assertGreaterEqual(self.status(admin)["spool"]["messages"], 1)
                browser.stdin.write("go\n")
                browser.stdin.flush()
            out, err = browser.communicate(timeout=200)
            out = first + out
        finally:
            killer.cancel()
            stop.set()
            sender.join(timeout=60)
        self.assertEqual(browser.returncode, 0, out + err)
        self.assertIn("dashboard: ok", out)
        print(out.strip())

    def backend(self, admin_port, name):
        for pool in self.status(admin_port)["pools"]:
            for b in pool["backends"]:
                if b["name"] == name:
                    return b
        raise KeyError(name)


if __name__ == "__main__":
    main()
