"""The README's five-minute quick start, as written, against two real Postfix
hubs: smtplb's configuration and the hubs' main.cf settings are taken from
README.md itself, with only the addresses moved onto loopback.

    README                 here
    10.2.0.10 (smtplb)     127.0.0.2 (its listener and its source address)
    10.1.0.0/16 (apps)     127.0.0.3/32 (the application server)
    10.3.1.21/22:25        the two Postfix instances' ports on 127.0.0.1
    127.0.0.0/8 in the     127.0.0.1/32, so that the balancer's own 127.0.0.2
    hubs' mynetworks       stays outside it, as 10.2.0.10 does in the README

A client outside the application network is 127.0.0.4.
"""
import os
import re
import subprocess

from harness import (Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available,
                     wait_for_port, wait_until)
import harness

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
BALANCER, APPLICATION, OUTSIDER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def readme_block(marker):
    """The fenced block that follows `<!-- quick-start: MARKER` in the README."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- quick-start: %s\b[^>]*-->\s*```[a-z]*\n(.*?)```" % re.escape(marker),
                  text, re.S)
    if not m:
        raise AssertionError(f"README.md has no quick-start block {marker!r}")
    return m.group(1)


def moved(text, replacements):
    """`text` with each README value replaced; each must be there (else the
    README changed and this test would check something else)."""
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"the README's quick start no longer has {old!r}")
        text = text.replace(old, new)
    return text


class QuickStart(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        main_cf = moved(readme_block("main.cf"), [
            ("smtpd_authorized_xclient_hosts = 10.2.0.10",
             f"smtpd_authorized_xclient_hosts = {BALANCER}"),
            ("mynetworks = 127.0.0.0/8 10.1.0.0/16", f"mynetworks = 127.0.0.1/32 {APPLICATION}/32"),
        ])
        self.hubs = []
        for name in ("hub1", "hub2"):
            pf = Postfix(self.workdir, name, extra_main=main_cf)
            pf.start()
            self.addCleanup(pf.stop)
            self.hubs.append(pf)
        self.port = free_port()
        self.config = moved(readme_block("smtplb.toml"), [
            ('state_dir = "/var/lib/smtplb"', 'state_dir = "@STATE@"'),
            ('tracking_log = "/var/log/smtplb/tracking.jsonl"', 'tracking_log = "@TRACKING@"'),
            ('admin = "127.0.0.1:8025"', 'admin = "127.0.0.1:0"'),
            ('bind = "10.2.0.10:25"', f'bind = "{BALANCER}:{self.port}"'),
            ('source_address = "10.2.0.10"', f'source_address = "{BALANCER}"'),
            ('trusted_networks = ["10.1.0.0/16"]', f'trusted_networks = ["{APPLICATION}/32"]'),
            # Tests do not depend on the machine's resolver.
            ('client_identity = "xclient"',
             'client_identity = "xclient"\nresolve_client_names = false'),
            ('address = "10.3.1.21:25"', f'address = "127.0.0.1:{self.hubs[0].port}"'),
            ('address = "10.3.1.22:25"', f'address = "127.0.0.1:{self.hubs[1].port}"'),
        ])
        self.lb = Smtplb(self.workdir, self.config)
        self.lb.process.start()
        self.addCleanup(self.lb.stop)
        wait_for_port(self.port, host=BALANCER, proc=self.lb.process.proc)
        # Both hubs up by their probes (depth rcpt) before the first message.
        wait_until(lambda: all(b["health"] == "up" for p in self.lb.status()["pools"]
                               for b in p["backends"]), what="both hubs up")

    def swaks(self, source, to, *extra):
        return subprocess.run(
            ["swaks", "--server", f"{BALANCER}:{self.port}", "--local-interface", source,
             "--from", "app@example.net", "--to", to, *extra],
            capture_output=True, text=True, timeout=60)

    def test_applications_relay_through_both_hubs_as_themselves(self):
        queue_ids = []
        for _ in range(6):
            r = self.swaks(APPLICATION, "someone@example.org")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            queue_ids += re.findall(r"<-  250 2\.0\.0 Ok: queued as (\w+)", r.stdout)
        self.assertEqual(len(queue_ids), 6)

        def client_lines(pf):
            # The hub's own line for each message, as step 5 looks it up.
            return [l for l in pf.log_lines() for q in queue_ids if f"{q}: client=" in l]
        wait_until(lambda: sum(len(client_lines(pf)) for pf in self.hubs) == 6,
                   what="the six messages in the hubs' logs")
        for pf in self.hubs:
            lines = client_lines(pf)
            # Each hub took mail (round robin per message)...
            self.assertGreaterEqual(len(lines), 1, pf.log_lines()[-20:])
            # ...and judged the application server, never the balancer.
            for line in lines:
                self.assertIn(f"client=unknown[{APPLICATION}]", line)
        wait_until(lambda: len(self.lb.tracking_records()) >= 6, what="six tracking records")
        records = self.lb.tracking_records()
        self.assertEqual([r["result"] for r in records], ["relayed"] * 6, records)
        self.assertEqual({r["identity"] for r in records}, {"xclient"})

    def test_others_may_only_send_to_example_net(self):
        r = self.swaks(OUTSIDER, "someone@example.org", "--quit-after", "RCPT")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"<\*\* +550 5\.7\.1")
        r = self.swaks(OUTSIDER, "postmaster@example.net")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_audit_finds_the_hubs_safe(self):
        # What step 4 runs: the hubs must not relay for the balancer's own
        # address, and must offer it XCLIENT.
        path = self.lb.config
        r = subprocess.run([harness.SMTPLB, "audit", "--config", path], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 problems", r.stdout)
        r = subprocess.run([harness.SMTPLB, "check", "--config", path], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()
