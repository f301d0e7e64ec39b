"""`smtplb audit` for a transparent listener, run inside the namespace lab's
balancer (netns_lab.py) in front of a real Postfix in the backend namespace:
without the routing recipe it reports a problem for each family and says
the commands; those commands, run as printed, make a transparent
connection work and the audit clean; the netfilter form is recognised, and
a fwmark rule without the netfilter rule behind it is reported."""
import os
import re
import unittest

import harness
from harness import WorkdirTestCase, main, postfix_available
from netns_lab import Lab, lab_available, nft_available
from test_netns_lab import Listener, transparent_connect

HANGS = "transparent connections to these backends will hang"


@unittest.skipUnless(lab_available()[0], lab_available()[1])
@unittest.skipUnless(postfix_available(), "postfix is not installed (or not root)")
class AuditTransparent(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.lab = Lab(self.workdir, recipe=None).__enter__()
        self.addCleanup(self.lab.close)
        lab = self.lab
        # Refuses to relay for the balancer (mynetworks is loopback only).
        self.postfix = lab.postfix("backend", [lab.backend_addrs[0], lab.backend_addrs_v6[0]])
        self.postfix.start()
        self.addCleanup(self.postfix.stop)
        self.config = os.path.join(self.workdir, "audit.toml")
        with open(self.config, "w") as f:
            f.write(f"""[server]
admin = ""
state_dir = "{self.workdir}"
[[listener]]
name = "edge"
bind = "{lab.balancer_client_side_addr}:25"
accepted_domains = ["example.net"]
pool = "hubs"
client_identity = "transparent"
[[pool]]
name = "hubs"
[[pool.backend]]
name = "hub4"
address = "{lab.backend_addrs[0]}:25"
[[pool.backend]]
name = "hub6"
address = "[{lab.backend_addrs_v6[0]}]:25"
""")

    def audit(self):
        r = self.lab.run("balancer", [harness.SMTPLB, "audit", "--config", self.config],
                         capture_output=True, text=True, timeout=120)
        return r, r.stdout + r.stderr

    def routing_fixes(self, out):
        """The commands the transparent-routing findings say to run."""
        commands = []
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if HANGS in line and i + 1 < len(lines):
                fix = lines[i + 1].split("fix: ", 1)[1].split(" (", 1)[0]
                commands += [c.split() for c in fix.split(" && ")]
        return commands

    def test_missing_recipe_is_reported_and_the_printed_commands_fix_it(self):
        lab = self.lab
        r, out = self.audit()
        self.assertEqual(r.returncode, 1, out)
        self.assertIn("PROBLEM: listener edge, IPv4 backends via to-backend (hubs/hub4)", out)
        self.assertIn("PROBLEM: listener edge, IPv6 backends via to-backend (hubs/hub6)", out)
        commands = self.routing_fixes(out)
        self.assertEqual([" ".join(c) for c in commands], [
            "ip rule add iif to-backend lookup 100",
            "ip route add local 0.0.0.0/0 dev lo table 100",
            "ip -6 rule add iif to-backend lookup 100",
            "ip -6 route add local ::/0 dev lo table 100"])
        # Not to be trusted before the commands run: no transparent connect.
        listener = Listener(lab, lab.backend_addrs[1])
        try:
            with self.assertRaises(OSError):
                transparent_connect(lab, lab.client_addr, lab.backend_addrs[1], timeout=1.0)
        finally:
            listener.close()
        for c in commands:
            self.assertEqual(lab.run("balancer", c).returncode, 0, c)
        for source, target in ((lab.client_addr, lab.backend_addrs[1]),
                               (lab.client_addr_v6, lab.backend_addrs_v6[1])):
            listener = Listener(lab, target)
            try:
                self.assertEqual(transparent_connect(lab, source, target), b"hello\n")
            finally:
                listener.close()
        r, out = self.audit()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("0 problems, 0 warnings", out)
        self.assertEqual(out.count("routing recipe in place"), 2, out)
        self.assertIn(f"via {lab.balancer_backend_side_addr}", out)
        self.assertIn(f"via {lab.balancer_backend_side_addr_v6}", out)
        # Postfix refused the audit's relay attempt in its own log.
        self.assertTrue(any("Relay access denied" in line for line in self.postfix.log_lines()))

    @unittest.skipUnless(nft_available(), "nft (package nftables) is not installed")
    def test_netfilter_form_is_recognised_and_a_mark_without_its_rule_is_not(self):
        lab = self.lab
        lab.apply_nft_recipe()
        r, out = self.audit()
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(out.count("routing recipe in place"), 2, out)
        # The ip rules are left, the nft rule that sets the mark is gone.
        self.assertEqual(lab.run("balancer", ["nft", "delete", "table", "inet",
                                              "smtplb_transparent"]).returncode, 0)
        r, out = self.audit()
        self.assertEqual(r.returncode, 1, out)
        self.assertEqual(len(re.findall("no netfilter rule marks packets of transparent "
                                        "sockets with 1", out)), 2, out)
        self.assertIn("socket transparent 1 meta mark set 1 accept", out)


if __name__ == "__main__":
    main()
