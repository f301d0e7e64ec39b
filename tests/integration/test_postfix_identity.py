"""smtplb in front of real Postfix smtpd: the backend must see the real client
(127.0.0.2, not the balancer's 127.0.0.1) in its own log, via XCLIENT and via
the PROXY protocol; swaks and smtp-source as clients."""
import json
import re
import smtplib
import subprocess
import urllib.request

import configs
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available, wait_until


class PostfixIdentity(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def test_xclient_real_client_address_in_postfix_log(self):
        # Postfix logs the Received: header it writes, which names the HELO
        # and address it believes the client had.
        checks = f"{self.workdir}/header_checks"
        with open(checks, "w") as f:
            f.write("/^Received: from / WARN\n")
        pf = Postfix(self.workdir, "hub1", extra_main=f"header_checks = regexp:{checks}")
        pf.start()
        self.addCleanup(pf.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub1", pf.port)]))
        lb.start(port)
        self.addCleanup(lb.stop)

        swaks = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", "127.0.0.2",
             "--helo", "client.example", "--from", "alice@example.org", "--to", "bob@example.net",
             "--header", "Subject: via smtplb"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(swaks.returncode, 0, swaks.stdout + swaks.stderr)
        queued = re.search(r"<-  250 2\.0\.0 Ok: queued as (\w+)", swaks.stdout)
        self.assertIsNotNone(queued, swaks.stdout)
        queue_id = queued.group(1)

        def logged():
            return any(f"{queue_id}: client=unknown[127.0.0.2]" in l for l in pf.log_lines())
        wait_until(logged, what="Postfix logging the real client")
        # The balancer's own address must not be what Postfix attributes the message to.
        self.assertFalse(any(f"{queue_id}: client=localhost[127.0.0.1]" in l for l in pf.log_lines()))
        # The helo Postfix saw is the client's, passed with XCLIENT HELO.
        wait_until(lambda: any(f"{queue_id}: warning: header Received: from client.example "
                               "(unknown [127.0.0.2])" in l for l in pf.log_lines()),
                   what="Received: header naming the client's HELO and address")

        wait_until(lambda: lb.tracking_records(), what="tracking log")
        rec = lb.tracking_records()[-1]
        self.assertEqual(rec["client"], "127.0.0.2")
        self.assertEqual(rec["result"], "relayed")
        self.assertEqual(rec["queue_id"], queue_id)
        self.assertEqual(rec["identity"], "xclient")
        self.assertEqual(rec["attempts"][0]["backend"], "hub1")

    def test_proxy_v1_and_v2_real_client_address_in_postfix_log(self):
        pf = Postfix(self.workdir, "hub2", smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy")
        pf.start()
        self.addCleanup(pf.stop)
        expected = 0
        for version in ("proxy-v1", "proxy-v2"):
            port = free_port()
            lb = Smtplb(self.workdir, configs.balancer(port, [("hub2", pf.port)],
                                                       listener_options={"client_identity": version}),
                        name=version)
            lb.start(port)
            self.addCleanup(lb.stop)
            with smtplib.SMTP("127.0.0.1", port, local_hostname="proxied.example",
                              source_address=("127.0.0.2", 0), timeout=30) as s:
                for i in range(3):
                    s.sendmail("alice@example.org", ["bob@example.net"], f"Subject: {i}\r\n\r\nhi\r\n")
            expected += 3
            wait_until(lambda: sum("client=localhost[127.0.0.2]" in l or "client=unknown[127.0.0.2]" in l
                                   for l in pf.log_lines()) >= expected,
                       what=f"{version}: messages attributed to 127.0.0.2")
            # One PROXY connection serves one client: never a bare 127.0.0.1 client.
            self.assertFalse(any("client=localhost[127.0.0.1]" in l for l in pf.log_lines()))

    def test_probes_of_a_proxy_pool_send_a_local_proxy_header(self):
        # A Postfix listening with the PROXY protocol refuses a connection
        # without a header: probes must send one (LOCAL), as traffic does.
        pf = Postfix(self.workdir, "hub4", smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy")
        pf.start()
        self.addCleanup(pf.stop)
        for version in ("proxy-v1", "proxy-v2"):
            port = free_port()
            lb = Smtplb(self.workdir, configs.balancer(
                port, [("hub4", pf.port)], listener_options={"client_identity": version},
                pool_options={"health": {"interval": "1s", "rise": 1, "fall": 1, "depth": "mail"}},
                server_options={"admin": "127.0.0.1:0"}), name=f"probe-{version}")
            lb.start(port)
            self.addCleanup(lb.stop)
            admin = lb.admin_port()

            def probed_up():
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/status",
                                            timeout=10) as r:
                    b = json.load(r)["pools"][0]["backends"][0]
                return b["health"] == "up" and b.get("last_probe")
            wait_until(lambda: lb.log_lines("event=health") or probed_up(), timeout=15,
                       what=f"{version}: a probe result")
            self.assertFalse(lb.log_lines("to=down"), lb.log_lines("event=health"))
            self.assertFalse(lb.log_lines("to=busy"), lb.log_lines("event=health"))
            with smtplib.SMTP("127.0.0.1", port, local_hostname="proxied.example",
                              source_address=("127.0.0.2", 0), timeout=30) as s:
                s.sendmail("alice@example.org", ["bob@example.net"], "Subject: p\r\n\r\nhi\r\n")

    def test_smtp_source_many_messages_one_session_reach_postfix(self):
        pf = Postfix(self.workdir, "hub3")
        pf.start()
        self.addCleanup(pf.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("hub3", pf.port)]))
        lb.start(port)
        self.addCleanup(lb.stop)
        r = subprocess.run(["smtp-source", "-d", "-s", "1", "-m", "20", "-l", "2000",
                            "-f", "load@example.org", "-t", "user@example.net", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: sum(": client=" in l for l in pf.log_lines()) >= 20, timeout=30,
                   what="20 messages in Postfix's log")
        wait_until(lambda: len(lb.tracking_records()) >= 20, what="20 tracking records")
        self.assertTrue(all(r["result"] == "relayed" for r in lb.tracking_records()))


if __name__ == "__main__":
    main()
