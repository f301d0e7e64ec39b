"""Watching limits: swaks sends one sender over `messages = "10/1h",
burst = 5`; the admin API (GET /api/v1/limits, with the read-only token),
/metrics, `smtplb status`, `smtplb limits` and the dashboard's Limits panel
(headless Chromium, tests/e2e/limits.mjs) must each say so."""
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "limits-admin-token-0123456789abcdef"
READONLY = "limits-readonly-token-0123456789ab"
SENDER = "alice@outside.example"
KEY = "sender=" + SENDER


class LimitsApi(WorkdirTestCase):
    def get(self, path, token=READONLY):
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}",
                                         headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get_json(self, path):
        status, body = self.get(path)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def cli(self, *args):
        return subprocess.run([harness.SMTPLB, *args, "--admin", f"127.0.0.1:{self.admin}",
                               "--token-file", self.readonly_file],
                              capture_output=True, text=True, timeout=30)

    def swaks(self, port, sender):
        return subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{port}", "--from", sender, "--to",
             "u@example.net", "--helo", "client.example", "--timeout", "20"],
            capture_output=True, text=True, timeout=60)

    def start_balancer(self):
        (sink,) = self.start_sinks("a")
        files = {}
        for name, token in (("admin", TOKEN), ("readonly", READONLY)):
            files[name] = os.path.join(self.workdir, name + ".token")
            with open(files[name], "w") as f:
                f.write(token + "\n")
        self.readonly_file = files["readonly"]
        self.admin_file = files["admin"]
        port = free_port()
        text = configs.balancer(port, [("a", sink.port)],
                                pool_options={"health": {"enabled": False}},
                                server_options={"admin": "127.0.0.1:0",
                                                "admin_token_file": files["admin"],
                                                "admin_readonly_token_file": files["readonly"]})
        text += configs.table("[[limit]]", {"name": "per-sender", "key": "sender",
                                            "messages": "10/1h", "burst": 5})
        text += configs.table("[[limit]]", {"name": "conns", "key": "client_ip",
                                            "concurrent_connections": 50})
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        self.lb = lb
        self.admin = lb.admin_port()
        return port

    def test_a_sender_over_its_limit_shows_everywhere(self):
        port = self.start_balancer()
        for i in range(5):
            r = self.swaks(port, SENDER)
            self.assertEqual(r.returncode, 0, f"message {i + 1}: " + r.stdout + r.stderr)
        r = self.swaks(port, SENDER)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"<\*\* +451 4\.7\.1 .*per-sender")
        self.assertEqual(self.swaks(port, "bob@outside.example").returncode, 0)

        # The listing: hits, keys, the sender at its limit first.
        doc = self.get_json("/api/v1/limits?limit=per-sender")
        (limit,) = doc["limits"]
        self.assertEqual(limit["hits"], {"tempfail": 1, "delay": 0})
        self.assertEqual(limit["tracked_keys"], 2)
        self.assertEqual(limit["summary"], "messages 10/1h burst 5 per sender, tempfail")
        self.assertEqual(limit["nearest"][0]["key"], KEY)
        self.assertEqual(limit["nearest"][0]["remaining"], 0)
        self.assertEqual(limit["nearest"][1]["key"], "sender=bob@outside.example")

        # One key, written as a person would: another case, URL-encoded.
        query = urllib.parse.urlencode({"key": "sender=Alice@Outside.EXAMPLE"})
        doc = self.get_json("/api/v1/limits?" + query)
        (state,) = doc["limits"]
        self.assertEqual((state["limit"], state["key"], state["remaining"], state["at_limit"]),
                         ("per-sender", KEY, 0, True))
        self.assertGreater(state["reset_after_ms"], 0)
        status, body = self.get("/api/v1/limits?key=helo%3Dx")
        self.assertEqual(status, 400, body)
        self.assertIn('"helo" is not a key part', json.loads(body)["error"])
        status, body = self.get("/api/v1/limits?key=sender_domain%3Dx.example")
        self.assertEqual(status, 404, body)
        status, body = self.get("/api/v1/limits", token="wrong-token-0123456789abcdef")
        self.assertEqual(status, 401, body)

        _, metrics = self.get("/metrics")
        self.assertIn('smtplb_limit_hits_total{limit="per-sender",action="tempfail"} 1\n', metrics)
        self.assertIn('smtplb_limit_keys{limit="per-sender"} 2\n', metrics)
        self.assertIn('smtplb_limit_evictions_total{limit="per-sender"} 0\n', metrics)

        status = self.cli("status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"\nper-sender +1 +0 +2 +0  messages 10/1h burst 5")
        self.assertIn(f"    {KEY}  0 of 5 left, all back in ", status.stdout)
        one = self.cli("limits", "--key", "sender=ALICE@outside.example")
        self.assertEqual(one.returncode, 0, one.stderr)
        self.assertRegex(one.stdout, rf"per-sender +{re.escape(KEY)} +0 of 5 left.*\(at the limit\)")
        none = self.cli("limits", "--key", "sender_domain=outside.example")
        self.assertEqual(none.returncode, 1, none.stdout)
        self.assertIn("no limit is keyed by sender_domain", none.stderr)
        self.assertEqual(self.cli("limits", "--top", "0").returncode, 64)
        listing = self.cli("limits", "--top", "1", "--json")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertEqual([len(l["nearest"]) for l in json.loads(listing.stdout)["limits"]],
                         [1, 0])

        self.assertIsNotNone(shutil.which("node"), "node is missing")
        browser = subprocess.run(
            ["node", os.path.join(ROOT, "tests/e2e/limits.mjs"), f"http://127.0.0.1:{self.admin}/",
             "per-sender", KEY, "1"], capture_output=True, text=True, timeout=200,
            env={**os.environ, "SMTPLB_TOKEN": READONLY})
        self.assertEqual(browser.returncode, 0, browser.stdout + browser.stderr)
        self.assertIn("limits panel: ok", browser.stdout)

        # A reload that changes the rate: the keys start afresh, the counters go on.
        with open(self.lb.config) as f:
            text = f.read()
        with open(self.lb.config, "w") as f:
            f.write(text.replace("burst = 5", "burst = 6"))
        reload = subprocess.run([harness.SMTPLB, "reload", "--admin", f"127.0.0.1:{self.admin}",
                                 "--token-file", self.admin_file],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(reload.returncode, 0, reload.stdout + reload.stderr)
        _, metrics = self.get("/metrics")
        self.assertIn('smtplb_limit_hits_total{limit="per-sender",action="tempfail"} 1\n', metrics)
        self.assertIn('smtplb_limit_keys{limit="per-sender"} 0\n', metrics)
        (limit,) = self.get_json("/api/v1/limits?limit=per-sender")["limits"]
        self.assertEqual((limit["burst"], limit["hits"]["tempfail"]), (6, 1))


if __name__ == "__main__":
    main()
