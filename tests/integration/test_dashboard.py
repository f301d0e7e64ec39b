"""The dashboard at / on the admin listener, in headless Chromium through
Playwright (tests/e2e/dashboard.mjs), with live traffic to three backends."""
import os
import shutil
import smtplib
import subprocess
import threading

import configs
from harness import Smtplb, WorkdirTestCase, free_port, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Dashboard(WorkdirTestCase):
    def test_page_shows_traffic_and_drains_a_backend(self):
        # Needed, not optional: scripts/bootstrap.sh installs them.
        self.assertIsNotNone(shutil.which("node"), "node is missing")
        self.assertTrue(os.path.exists(os.path.join(ROOT, "web/node_modules/playwright-core")),
                        "run npm ci --prefix web")
        sinks = self.start_sinks(*("a", "b", "c"))
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [(s.name, s.port) for s in sinks],
                                                   server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
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
        try:
            r = subprocess.run(["node", os.path.join(ROOT, "tests/e2e/dashboard.mjs"),
                                f"http://127.0.0.1:{lb.admin_port()}/", "b"],
                               capture_output=True, text=True, timeout=120)
        finally:
            stop.set()
            sender.join(timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("dashboard: ok", r.stdout)


if __name__ == "__main__":
    main()
