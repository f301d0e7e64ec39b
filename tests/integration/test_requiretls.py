"""REQUIRETLS (RFC 8689) through smtplb: offered on a TLS listener only when
its pool's backends offer it and are reached over verified TLS; a message
carrying it never leaves smtplb in plaintext (docs/esmtp.md, REQUIRETLS).
Postfix 3.7 does not offer REQUIRETLS: the honoured path runs against a
small TLS backend here, the refused path against a plaintext Postfix."""
import smtplib
import ssl

import configs
from harness import (Postfix, ScriptedBackend, Smtplb, WorkdirTestCase, free_port, main,
                     make_ca, make_certificate, plain_answers, postfix_available)


class ImplicitTlsBackend(ScriptedBackend):
    """A ScriptedBackend spoken to over implicit TLS, announcing REQUIRETLS."""

    def __init__(self, cert, requiretls=True):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*cert)
        lines = ["250-tls.test", "250-PIPELINING", "250-8BITMIME"]
        lines += ["250-REQUIRETLS"] if requiretls else []
        super().__init__(plain_answers, ehlo_lines=lines + ["250 ENHANCEDSTATUSCODES"])

    def _serve(self, conn):
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        super()._serve(tls)


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def send_requiretls(port, tls=True):
    """(EHLO keywords in TLS, the MAIL reply, the final reply or None)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
        s.ehlo()
        if tls:
            s.starttls(context=client_context())
            s.ehlo()
        keywords = dict(s.esmtp_features)
        code, text = s.mail("a@example.org", ["REQUIRETLS"])
        mail = (code, text.decode().split(" ", 1)[0])
        if code != 250:
            return keywords, mail, None
        s.rcpt("b@example.net")
        code, _ = s.data(b"Subject: secret\r\n\r\nfor TLS only\r\n")
        return keywords, mail, code


class RequireTls(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.ca = make_ca(self.workdir)
        self.lb_cert = make_certificate(self.workdir, self.ca, "lb.test", dns=("lb.test",))

    def start_lb(self, backends, pool_tls=None):
        port = free_port()
        pool = {"health": {"depth": "ehlo", "interval": "1s"}}
        if pool_tls:
            pool["tls"] = pool_tls
        listener = {"tls": {"mode": "starttls", "cert": self.lb_cert[0], "key": self.lb_cert[1]}}
        lb = Smtplb(self.workdir, configs.balancer(
            port, backends, pool_options=pool, listener_options=listener,
            server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.wait_for_capabilities()
        return lb, port

    def test_honoured_through_a_pool_reached_over_verified_tls(self):
        backend = ImplicitTlsBackend(make_certificate(self.workdir, self.ca, "backend"))
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("tls1", backend.port)],
                                 pool_tls={"mode": "implicit", "ca_file": self.ca[0]})
        keywords, mail, final = send_requiretls(port)
        self.assertIn("requiretls", keywords)
        self.assertEqual(mail, (250, "2.1.0"))
        self.assertEqual(final, 250)
        # Passed on to the backend, inside TLS (the backend speaks nothing else).
        self.assertTrue([l for l in backend.lines if l.startswith("MAIL") and "REQUIRETLS" in l],
                        backend.lines)
        # Outside TLS it is neither offered nor accepted.
        keywords, mail, _ = send_requiretls(port, tls=False)
        self.assertNotIn("requiretls", keywords)
        self.assertEqual(mail, (555, "5.5.4"))

    def test_refused_for_a_plaintext_pool(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        pf = Postfix(self.workdir, "plain")
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb([("plain", pf.port)])
        keywords, mail, final = send_requiretls(port)
        self.assertNotIn("requiretls", keywords)
        self.assertEqual(mail, (550, "5.7.30"))
        self.assertIsNone(final)
        self.assertFalse([l for l in pf.log_lines() if "a@example.org" in l])

    def test_a_tls_backend_without_requiretls_is_refused_too(self):
        backend = ImplicitTlsBackend(make_certificate(self.workdir, self.ca, "backend"),
                                     requiretls=False)
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("tls1", backend.port)],
                                 pool_tls={"mode": "implicit", "ca_file": self.ca[0]})
        keywords, mail, final = send_requiretls(port)
        self.assertNotIn("requiretls", keywords)
        self.assertEqual(mail, (550, "5.7.30"))
        self.assertFalse([l for l in backend.lines if l.startswith("MAIL")])


if __name__ == "__main__":
    main()
