"""AUTH= on MAIL (issue 25, RFC 4954 §5) through a submission listener, to
real Postfix backends: one with Dovecot SASL (it announces AUTH, and logs
the parameter as sasl_sender=), one without (it takes AUTH= and ignores it;
smtplb leaves it out, as RFC 4954 asks for a server that does not announce
AUTH). Compared with the same client talking to the SASL
Postfix directly."""
import re

import configs
from harness import (starttls_client, Dovecot, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, postfix_available, start_sasl_postfix, wait_until)


class AuthParameterTest(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.ca = make_ca(self.workdir)
        self.lb_cert = make_certificate(self.workdir, self.ca, "lb.test", dns=("lb.test",))
        self.dovecot = Dovecot(self.workdir, {"alice@example.org": "correct horse"})
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)

    def start_postfix(self, name, sasl):
        return start_sasl_postfix(self, self.ca, self.dovecot, name, sasl=sasl)

    def start_lb(self, backends, auth=None):
        port = free_port()
        listener = {"role": "submission", "accepted_domains": [],
                    "tls": {"mode": "starttls", "cert": self.lb_cert[0], "key": self.lb_cert[1]}}
        if auth:
            listener["auth"] = auth
        pool = {"tls": {"mode": "required", "ca_file": self.ca[0]},
                "health": {"enabled": False}}
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(n, p, {"tls_name": f"{n}.test"}) for n, p in backends],
            listener_options=listener, pool_options=pool), name=f"lb{port}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def session(self, port):
        return starttls_client(port, self.ca[0])

    def send(self, port, auth_param, login=True):
        s = self.session(port)
        if login:
            s.login("alice@example.org", "correct horse")
        code, text = s.mail("alice@example.org", [f"AUTH={auth_param}"])
        if code != 250:
            s.close()
            return code, text.decode()
        self.assertEqual(s.rcpt("friend@elsewhere.example")[0], 250)
        code, text = s.data(b"Subject: auth param\r\n\r\nhello\r\n")
        s.quit()
        return code, text.decode()

    @staticmethod
    def client_lines(pf):
        return [l for l in pf.log_lines() if re.search(r"client=\S+\[127\.0\.0\.2\]", l)]

    def test_passed_on_to_a_sasl_backend_as_directly(self):
        hub = self.start_postfix("hub", sasl=True)
        # Directly: the client's own AUTH= is Postfix's sasl_sender.
        self.assertEqual(self.send(hub.port, "alice@example.org")[0], 250)
        wait_until(lambda: self.client_lines(hub), what="Postfix logging the direct message")
        direct = self.client_lines(hub)[-1]
        self.assertIn("sasl_username=alice@example.org", direct)
        self.assertIn("sasl_sender=alice@example.org", direct)

        lb, port = self.start_lb([("hub", hub.port)], auth={"verifier": "dovecot",
                                                            "dovecot_socket": self.dovecot.socket})
        # Through smtplb: the same login and sasl_sender, although the client
        # claimed nobody (<>): the authenticated login wins.
        self.assertEqual(self.send(port, "<>")[0], 250)
        wait_until(lambda: len(self.client_lines(hub)) == 2, what="the relayed message's line")
        through = self.client_lines(hub)[-1]
        self.assertIn("sasl_username=alice@example.org", through)
        self.assertIn("sasl_sender=alice@example.org", through)
        # A malformed value is refused by smtplb itself.
        self.assertEqual(self.send(port, "not+an+xtext")[0], 501)

    def test_left_out_for_a_backend_without_auth(self):
        plain = self.start_postfix("plain", sasl=False)
        # Directly, Postfix without SASL takes the parameter (and ignores it).
        code, text = self.send_unauthenticated(plain.port)
        self.assertEqual(code, 250, text)
        lb, port = self.start_lb([("plain", plain.port)], auth={
            "verifier": "dovecot", "dovecot_socket": self.dovecot.socket})
        code, text = self.send(port, "alice@example.org")
        self.assertEqual(code, 250, text)
        wait_until(lambda: self.client_lines(plain), what="Postfix logging the message")
        self.assertNotIn("sasl_sender", self.client_lines(plain)[-1])

    def send_unauthenticated(self, port):
        s = self.session(port)
        code, text = s.mail("alice@example.org", ["AUTH=alice@example.org"])
        s.close()
        return code, text.decode()


if __name__ == "__main__":
    main()
