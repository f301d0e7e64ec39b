"""examples/split-internal-internet.toml, followed to the letter against a
real Postfix hub: the hub settings its comments give (the balancer's
addresses may send XCLIENT and have no relay rights; mynetworks names the
internal clients) let internal clients relay through the internal
listener, and `smtplb audit` finds no open relay. The advice it used to give
(trust the internal listener's source address) is an open relay by audit's
measure.

Addresses are mapped onto loopback: the balancer's source addresses
10.3.0.10 and 10.3.0.11 become 127.0.0.1 and 127.0.0.2, the internal
network 10.0.0.0/8 becomes 127.0.0.0/24; an outside client is 127.0.1.5."""
import os
import re
import smtplib
import subprocess

import harness
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                       "split-internal-internet.toml")
TO_LOOPBACK = [("10.3.0.10", "127.0.0.1"), ("10.3.0.11", "127.0.0.2"),
               ("10.0.0.0/8", "127.0.0.0/24")]


def hub_settings(text):
    """The Postfix lines the example's comments tell the hubs to use."""
    found = re.findall(r"(?m)^#\s+((?:smtpd_authorized_xclient_hosts|mynetworks) = .*)$", text)
    assert len(found) == 2, found
    out = "\n".join(found) + "\n"
    for old, new in TO_LOOPBACK:
        out = out.replace(old, new)
    return out


class SplitExample(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        with open(EXAMPLE) as f:
            self.example = f.read()

    def balancer_config(self, hub_port, internet_port, internal_port):
        text = self.example
        text = re.sub(r'(?m)^state_dir = ".*"$', 'state_dir = "@STATE@"', text)
        text = re.sub(r'(?m)^tracking_log = ".*"$', 'tracking_log = "@TRACKING@"', text)
        text = text.replace('"192.0.2.25:25"', f'"127.0.0.1:{internet_port}"')
        text = text.replace('"10.3.0.1:25"', f'"127.0.0.1:{internal_port}"')
        text = re.sub(r'"10\.3\.[12]\.2[12]:25"', f'"127.0.0.1:{hub_port}"', text)
        for old, new in TO_LOOPBACK:
            text = text.replace(f'"{old}"', f'"{new}"')
        # No DNS in tests; the admin API off (parallel tests).
        text = text.replace("[[listener]]\n", "[[listener]]\nresolve_client_names = false\n")
        text = text.replace("[server]\n", '[server]\nadmin = ""\n')
        self.assertNotIn("10.", re.sub(r"(?m)#.*$", "", text))
        return text

    def audit(self, config_path):
        return subprocess.run([harness.SMTPLB, "audit", "--config", config_path],
                              capture_output=True, text=True, timeout=300)

    def test_following_the_example_is_safe_and_audit_is_clean(self):
        hub = Postfix(self.workdir, "hub", extra_main=hub_settings(self.example))
        hub.start()
        self.addCleanup(hub.stop)
        internet, internal = free_port(), free_port()
        lb = Smtplb(self.workdir, self.balancer_config(hub.port, internet, internal))
        lb.start(internet)
        self.addCleanup(lb.stop)
        r = self.audit(lb.config)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 problems, 0 warnings, 0 notes", r.stdout)
        # An internal client relays anywhere: the hub judges its address
        # (from XCLIENT), which is in mynetworks.
        with smtplib.SMTP("127.0.0.1", internal, source_address=("127.0.0.5", 0),
                          timeout=30) as s:
            s.ehlo("app.internal.test")
            self.assertEqual(s.mail("app@example.org")[0], 250)
            code, text = s.rcpt("someone@elsewhere.example")
            self.assertEqual(code, 250, text)
            self.assertEqual(s.data("Subject: internal\r\n\r\nrelayed\r\n")[0], 250)
        # An outside client gets nothing but the local domains.
        with smtplib.SMTP("127.0.0.1", internet, source_address=("127.0.1.5", 0),
                          timeout=30) as s:
            s.ehlo("outside.test")
            self.assertEqual(s.mail("someone@outside.test")[0], 250)
            self.assertNotEqual(s.rcpt("someone@elsewhere.example")[0], 250)
            self.assertEqual(s.rcpt("user@example.net")[0], 250)
        # What the hub saw: the real clients, through XCLIENT.
        log = "\n".join(hub.log_lines())
        self.assertIn("client=unknown[127.0.0.5]", log)
        self.assertIn("Relay access denied", log)  # audit's probes from the balancer

    def test_the_old_advice_trusting_the_source_address_is_an_open_relay(self):
        hub = Postfix(self.workdir, "hub", extra_main=hub_settings(self.example) +
                      "mynetworks = 127.0.0.2/32\n")  # the internal listener's source address
        hub.start()
        self.addCleanup(hub.stop)
        path = os.path.join(self.workdir, "split.toml")
        with open(path, "w") as f:
            f.write(self.balancer_config(hub.port, free_port(), free_port())
                    .replace("@STATE@", self.workdir).replace("@TRACKING@", ""))
        r = self.audit(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"PROBLEM: pool hubs, backend hub1 \(127\.0\.0\.1:\d+\) from "
                                   r"127\.0\.0\.2: accepts mail for any domain")
        self.assertNotIn("from 127.0.0.1: accepts", r.stdout)


if __name__ == "__main__":
    main()
