"""smtplb audit against real Postfix: one that relays for the balancer's
address (the harness's default: mynetworks = 127.0.0.0/8) is reported as an
open relay; one that does not is clean; a backend without XCLIENT is
reported as losing the client's identity; configuration mistakes too."""
import os
import subprocess

import configs
import harness
from harness import Postfix, Sink, WorkdirTestCase, free_port, main, postfix_available
from loopback import wait_until


class Audit(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def audit(self, text, *extra):
        path = os.path.join(self.workdir, "audit.toml")
        with open(path, "w") as f:
            f.write(text.replace("@TRACKING@", "").replace("@STATE@", self.workdir))
        return subprocess.run([harness.SMTPLB, "audit", "--config", path, *extra],
                              capture_output=True, text=True, timeout=120)

    def test_open_relay_backend_is_reported_and_a_correct_one_is_clean(self):
        relay = Postfix(self.workdir, "relay")  # permit_mynetworks, 127.0.0.0/8
        strict = Postfix(self.workdir, "strict", extra_main="mynetworks = 127.0.0.2/32\n")
        for pf in (relay, strict):
            pf.start()
            self.addCleanup(pf.stop)
        r = self.audit(configs.balancer(free_port(), [("relay", relay.port)]))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("PROBLEM: pool hubs, backend relay", r.stdout)
        self.assertIn("accepts mail for any domain", r.stdout)
        r = self.audit(configs.balancer(free_port(), [("strict", strict.port),
                                                     ("strict2", strict.port)]))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 problems, 0 warnings", r.stdout)
        # The strict one refused the probe's relay attempt in its own log.
        # Postfix writes its log through postlogd: the line may come a little later.
        wait_until(lambda: any("Relay access denied" in line for line in strict.log_lines()),
                   what="Relay access denied in strict's log")

    def test_identity_loss_and_configuration_mistakes(self):
        sink = Sink(self.workdir, "noxclient", extra=["--no-xclient"])
        sink.start()
        self.addCleanup(sink.stop)
        text = configs.balancer(free_port(), [("noxclient", sink.port, {"weight": 8})],
                                pool_options={"health": {"depth": "ehlo"},
                                              "persistence": "source_ip"})
        r = self.audit(text)
        # The sink accepts any recipient: an open relay too, as far as it goes.
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("does not announce XCLIENT", r.stdout)
        self.assertIn("probes stop before MAIL FROM", r.stdout)
        self.assertIn("source_ip persistence", r.stdout)
        self.assertIn("a single backend", r.stdout)
        offline = self.audit(text, "--offline")
        self.assertEqual(offline.returncode, 0, offline.stdout)
        self.assertNotIn("XCLIENT", offline.stdout)
        self.assertIn("(configuration only)", offline.stdout)

    def test_proxy_listeners_are_audited_with_a_proxy_header(self):
        proxied = Postfix(self.workdir, "proxied",
                          smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy")
        # Relays for everyone, whatever the header says.
        open_relay = Postfix(self.workdir, "openrelay",
                             smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy",
                             extra_main="mynetworks = 0.0.0.0/0\n")
        plain = Postfix(self.workdir, "plain")
        for pf in (proxied, open_relay, plain):
            pf.start()
            self.addCleanup(pf.stop)
        listener = {"client_identity": "proxy-v2"}
        r = self.audit(configs.balancer(free_port(), [("a", proxied.port), ("b", proxied.port)],
                                        listener_options=listener))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("0 problems, 0 warnings", r.stdout)
        # Postfix judged the outside client the header named, not the balancer.
        wait_until(lambda: any("192.0.2.1" in line and "Relay access denied" in line
                               for line in proxied.log_lines()),
                   what="the header's client refused in proxied's log")
        r = self.audit(configs.balancer(free_port(), [("a", open_relay.port)],
                                        listener_options=listener))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("outside client named in the PROXY header", r.stdout)
        r = self.audit(configs.balancer(free_port(), [("a", plain.port)],
                                        listener_options={"client_identity": "proxy-v1"}))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("does not take the PROXY header", r.stdout)

    def test_relay_battery_finds_an_address_trick(self):
        # A scripted server with an old relay check: it refuses the plain
        # outside recipient but lets the percent hack through.
        import socket
        import threading
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(30)
        self.addCleanup(server.close)
        seen = []

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    f = conn.makefile("rb")
                    conn.sendall(b"220 old.test ESMTP\r\n")
                    for line in f:
                        verb = line[:4].upper()
                        if verb == b"EHLO":
                            conn.sendall(b"250 old.test\r\n")
                        elif verb == b"RCPT":
                            seen.append(line.strip().decode())
                            ok = b"%" in line
                            conn.sendall(b"250 2.1.5 Ok\r\n" if ok else
                                         b"554 5.7.1 Relay access denied\r\n")
                        elif verb == b"QUIT":
                            conn.sendall(b"221 Bye\r\n")
                            break
                        else:
                            conn.sendall(b"250 Ok\r\n")

        threading.Thread(target=serve, daemon=True).start()
        port = server.getsockname()[1]
        r = self.audit(configs.balancer(free_port(), [("old", port)],
                                        listener_options={"client_identity": "none"}))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("relays through an address trick: RCPT TO:<relay-test%audit.invalid@[127.0.0.1]>",
                      r.stdout)
        self.assertNotIn("accepts mail for any domain", r.stdout)
        # Every form of the battery was tried, the plain one first.
        self.assertEqual(seen[0], "RCPT TO:<relay-test@audit.invalid>")
        self.assertIn('RCPT TO:<"relay-test@audit.invalid">', seen)
        self.assertIn("RCPT TO:<@[127.0.0.1]:relay-test@audit.invalid>", seen)

    def test_mx_records_are_checked_against_a_real_dns_server(self):
        soa = "@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.9\n"
        zones = {
            # Primary elsewhere, backup at the balancer (127.0.0.1).
            "example.net": "$ORIGIN example.net.\n$TTL 300\n" + soa +
                           "@ IN MX 10 mx1\n@ IN MX 20 backup\nmx1 IN A 127.0.0.5\n"
                           "backup IN A 127.0.0.1\n",
            # One MX, and it is the balancer; plus an MX host without an address.
            "single.example": "$ORIGIN single.example.\n$TTL 300\n" + soa +
                              "@ IN MX 10 lb\nlb IN A 127.0.0.1\n"
                              "other IN MX 10 nowhere\n",
            "nomx.example": "$ORIGIN nomx.example.\n$TTL 300\n" + soa + "@ IN A 127.0.0.1\n",
        }
        dns = harness.Nsd(self.workdir, zones)
        dns.start()
        self.addCleanup(dns.stop)
        sink = Sink(self.workdir, "hub")
        sink.start()
        self.addCleanup(sink.stop)

        def audit(pool_options=None):
            text = configs.balancer(free_port(), [("hub", sink.port)], pool_options=pool_options)
            return self.audit(text, "--dns", f"127.0.0.1:{dns.port}", "--domain", "example.net",
                              "--domain", "single.example", "--domain", "other.single.example",
                              "--domain", "nomx.example", "--domain", "missing.example.net")

        r = audit()
        out = r.stdout
        self.assertIn("PROBLEM: domain example.net: backup MX backup.example.net (preference 20) "
                      "is this balancer, but no pool spools", out)
        self.assertIn("warning: domain single.example: a single MX, and it is this balancer", out)
        self.assertIn("PROBLEM: domain other.single.example: MX nowhere.single.example has no A "
                      "or AAAA record", out)
        self.assertIn("warning: domain nomx.example: has no MX records", out)
        self.assertIn("PROBLEM: domain missing.example.net: does not exist in the DNS", out)
        # A backup MX that queues is fine.
        r = audit({"on_unavailable": "spool"})
        self.assertNotIn("no pool spools", r.stdout)
        self.assertIn("a single MX, and it is this balancer", r.stdout)


if __name__ == "__main__":
    main()
