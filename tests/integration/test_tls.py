"""TLS on both sides of smtplb: STARTTLS and implicit TLS from clients (swaks,
Python's smtplib), STARTTLS to a real Postfix that requires it, certificate
verification, both STARTTLS injection rules, and certificate reload."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading

import configs
from harness import (Postfix, SmtpClient, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, postfix_available, wait_until, SMTPLB)
import harness


def client_context(ca_cert):
    ctx = ssl.create_default_context(cafile=ca_cert)
    ctx.check_hostname = False  # the listener's certificate names lb.test
    return ctx


class TlsTest(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.ca = make_ca(self.workdir)
        self.lb_cert = make_certificate(self.workdir, self.ca, "lb.test", dns=("lb.test",))

    def server_tls(self, mode, **extra):
        values = {"mode": mode, "cert": self.lb_cert[0], "key": self.lb_cert[1]}
        values.update(extra)
        return values

    def start_postfix_requiring_tls(self, name="hub1"):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        cert = make_certificate(self.workdir, self.ca, name, dns=(f"{name}.test",))
        pf = Postfix(self.workdir, name, extra_main=f"""\
smtpd_tls_security_level = encrypt
smtpd_tls_cert_file = {cert[0]}
smtpd_tls_key_file = {cert[1]}
smtpd_tls_loglevel = 1
""")
        pf.start()
        self.addCleanup(pf.stop)
        return pf

    def start_lb(self, backends, listener_tls=None, pool_options=None, extra_listeners=()):
        port = free_port()
        listener = {"tls": listener_tls} if listener_tls else {}
        lb = Smtplb(self.workdir, configs.balancer(port, backends, pool_options=pool_options,
                                                   listener_options=listener,
                                                   extra_listeners=extra_listeners))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def test_starttls_and_implicit_tls_through_to_postfix_requiring_tls(self):
        pf = self.start_postfix_requiring_tls()
        smtps = free_port()
        lb, port = self.start_lb(
            [("hub1", pf.port, {"tls_name": "hub1.test"})],
            listener_tls=self.server_tls("starttls"),
            pool_options={"tls": {"mode": "required", "ca_file": self.ca[0]}},
            extra_listeners=[{"name": "smtps", "bind": f"127.0.0.1:{smtps}", "role": "inbound",
                              "accepted_domains": ["example.net"], "pool": "hubs",
                              "tls": self.server_tls("implicit")}])
        swaks = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{port}", "--tls", "--local-interface", "127.0.0.2",
             "--from", "alice@example.org", "--to", "bob@example.net"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(swaks.returncode, 0, swaks.stdout + swaks.stderr)
        self.assertIn("TLS started", swaks.stdout)
        first = re.search(r"queued as (\w+)", swaks.stdout).group(1)

        with smtplib.SMTP_SSL("127.0.0.1", smtps, context=client_context(self.ca[0]),
                              timeout=30) as s:
            s.ehlo("implicit.example")
            self.assertNotIn("starttls", s.esmtp_features)
            refused = s.sendmail("carol@example.org", ["dave@example.net"],
                                 b"Subject: over SMTPS\r\n\r\nhello\r\n")
            self.assertEqual(refused, {})
        wait_until(lambda: len(lb.tracking_records()) >= 2, what="two tracking records")
        records = lb.tracking_records()
        for rec in records:
            self.assertEqual(rec["result"], "relayed", rec)
            self.assertTrue(rec["tls"].startswith("TLSv1."), rec)
            # The backend hop's TLS is logged with its attempt.
            self.assertTrue(rec["attempts"][-1]["tls"].startswith("TLSv1."), rec)
        self.assertEqual(records[0]["queue_id"], first)
        # Postfix refuses mail without TLS (security level encrypt), so its
        # queue IDs prove the hop was encrypted; its log says so too, and
        # names the real client (XCLIENT sent inside TLS).
        wait_until(lambda: any(re.search(r"TLS connection established from \S+\[127\.0\.0\.1\]"
                                         r": TLSv1\.[23]", l) for l in pf.log_lines()),
                   what="Postfix logging the TLS connection from smtplb")
        wait_until(lambda: any(f"{first}: client=unknown[127.0.0.2]" in l for l in pf.log_lines()),
                   what="Postfix logging the real client")

    def test_backend_certificate_that_does_not_verify_refuses_delivery(self):
        pf = self.start_postfix_requiring_tls()
        other_ca = make_ca(self.workdir, "other-ca")
        cases = [
            ({"mode": "required", "ca_file": other_ca[0]}, "hub1.test"),  # wrong CA
            ({"mode": "required", "ca_file": self.ca[0]}, "elsewhere.test"),  # wrong name
        ]
        for pool_tls, name in cases:
            with self.subTest(name=name):
                lb, port = self.start_lb([("hub1", pf.port, {"tls_name": name})],
                                         pool_options={"tls": pool_tls, "max_attempts": 1})
                c = SmtpClient(port)
                c.read_reply()
                c.command("EHLO client.example")
                self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0][:3], "250")
                reply = c.command("RCPT TO:<b@example.net>")
                self.assertEqual(reply[-1][:1], "4", reply)  # never plaintext instead
                c.close()
                wait_until(lambda: lb.tracking_records(), what="tracking record")
                rec = lb.tracking_records()[-1]
                self.assertIn("certificate verification failed", rec["attempts"][0]["reply"], rec)
                lb.stop()
        self.assertFalse(any("client=" in l for l in pf.log_lines()))

    def test_starttls_injection_gets_exactly_one_reply(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)], listener_tls=self.server_tls("starttls"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = raw.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        raw.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        raw.sendall(b"STARTTLS\r\nRSET\r\n")  # one segment
        self.assertEqual(f.readline(), b"220 2.0.0 Ready to start TLS\r\n")
        tls = client_context(self.ca[0]).wrap_socket(raw, server_hostname="lb.test")
        tls.sendall(b"EHLO x\r\n")
        got = b""
        while not re.search(rb"(^|\n)250 [^\r]*\r\n$", got):
            got += tls.recv(4096)
        # The first reply inside TLS answers EHLO: RSET was never run.
        self.assertTrue(got.startswith(b"250-lb.test\r\n"), got)
        self.assertNotIn(b"2.0.0 Ok", got)
        tls.close()

    def test_required_tls_refuses_mail_in_plaintext(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)], listener_tls=self.server_tls("required"))
        c = SmtpClient(port)
        c.read_reply()
        self.assertIn("STARTTLS", [line[4:] for line in c.command("EHLO x")])
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0],
                         "530 5.7.0 Must issue a STARTTLS command first")
        self.assertEqual(c.command("STARTTLS extra")[0][:3], "501")
        c.close()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.starttls(context=client_context(self.ca[0]))
            s.ehlo("x")
            self.assertNotIn("starttls", s.esmtp_features)
            code, _ = s.docmd("STARTTLS")
            self.assertEqual(code, 503)
            self.assertEqual(s.sendmail("a@example.org", ["b@example.net"], b"\r\nhi\r\n"), {})
        self.assertEqual(len(sink.messages()), 1)

    def test_backend_reply_injected_after_starttls_aborts_the_connection(self):
        backend = socket.socket()
        backend.bind(("127.0.0.1", 0))
        backend.listen(4)
        backend.settimeout(20)
        self.addCleanup(backend.close)
        seen = []

        def serve():
            try:
                conn, _ = backend.accept()
            except OSError:
                return
            with conn:
                f = conn.makefile("rb")
                conn.sendall(b"220 evil.test ESMTP\r\n")
                f.readline()
                conn.sendall(b"250-evil.test\r\n250 STARTTLS\r\n")
                line = f.readline()
                seen.append(line)
                if line.startswith(b"STARTTLS"):
                    conn.sendall(b"220 go ahead\r\n250 injected\r\n")
                conn.recv(4096)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        lb, port = self.start_lb([("evil", backend.getsockname()[1])],
                                 pool_options={"tls": {"mode": "opportunistic"},
                                               "max_attempts": 1, "health": {"enabled": False}})
        c = SmtpClient(port)
        c.read_reply()
        c.command("EHLO client.example")
        c.command("MAIL FROM:<a@example.org>")
        reply = c.command("RCPT TO:<b@example.net>")
        self.assertEqual(reply[-1][:1], "4", reply)
        c.close()
        thread.join(10)
        self.assertEqual(seen, [b"STARTTLS\r\n"])
        wait_until(lambda: lb.tracking_records(), what="tracking record")
        self.assertIn("injected", lb.tracking_records()[-1]["attempts"][0]["reply"])

    def test_probes_check_tls_and_warn_of_certificate_expiry(self):
        pf = self.start_postfix_requiring_tls()  # its certificate is valid for two days
        probe = subprocess.run([harness.SMTPLB, "probe", f"127.0.0.1:{pf.port}", "--depth",
                                "starttls"], capture_output=True, text=True, timeout=60)
        self.assertEqual(probe.returncode, 0, probe.stdout + probe.stderr)
        self.assertIn("C: STARTTLS", probe.stdout)
        self.assertIn("result: healthy at starttls", probe.stdout)
        self.assertIn("warning: certificate expires in 1 days", probe.stdout)

        # Health checks use the pool's TLS: verified against the right CA the
        # backend is up (with the warning logged), against another it is down.
        other_ca = make_ca(self.workdir, "other-ca")
        for ca, expected in ((self.ca[0], "up"), (other_ca[0], "down")):
            with self.subTest(expected=expected):
                health = {"depth": "mail", "interval": "200ms", "down_interval": "200ms",
                          "rise": 1, "fall": 1}
                lb, port = self.start_lb(
                    [("hub1", pf.port, {"tls_name": "hub1.test"})],
                    pool_options={"tls": {"mode": "required", "ca_file": ca}, "health": health})
                if expected == "up":
                    wait_until(lambda: lb.log_lines("event=backend_warning pool=hubs backend=hub1 "
                                                    'warning="certificate expires in 1 days"'),
                               what="the expiry warning")
                    self.assertEqual(lb.log_lines("to=down"), [])
                else:
                    wait_until(lambda: lb.log_lines("backend=hub1 from=up to=down source=probe"),
                               what="the backend going down")
                    self.assertIn("certificate verification failed",
                                  lb.log_lines("to=down")[0])
                lb.stop()

    def test_certificates_are_reloaded_on_sighup_and_bad_ones_refused(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)], listener_tls=self.server_tls("implicit"))

        def served_certificate():
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as tls:
                    return tls.getpeercert(binary_form=True)

        def der(path):
            with open(path) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        self.assertEqual(served_certificate(), der(self.lb_cert[0]))
        renewed = make_certificate(self.workdir, self.ca, "renewed", dns=("lb.test",))
        os.replace(renewed[0], self.lb_cert[0])
        os.replace(renewed[1], self.lb_cert[1])
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: served_certificate() == der(self.lb_cert[0]),
                   what="the renewed certificate being served")
        # A key that does not match: `check` says so, and a reload keeps the old one.
        other = make_certificate(self.workdir, self.ca, "other")
        os.replace(other[1], self.lb_cert[1])
        check = subprocess.run([harness.SMTPLB, "check", "--config", lb.config],
                               capture_output=True, text=True, timeout=30)
        self.assertNotEqual(check.returncode, 0)
        self.assertIn("key values mismatch", check.stderr)
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("key values mismatch"),
                   what="the refused reload in the log")
        self.assertEqual(served_certificate(), der(self.lb_cert[0]))


if __name__ == "__main__":
    main()
