"""Authenticated submission balanced per message: AUTH (inside TLS only) is
verified by a real Postfix backend with Dovecot SASL, or by Dovecot itself;
each message then goes to any backend with XCLIENT LOGIN, visible in
Postfix's log. Wrong passwords, relaying without AUTH and guessing are
refused."""
import re
import smtplib

import configs
from harness import (starttls_client, Dovecot, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, postfix_available, start_sasl_postfix, wait_until)


class SubmissionTest(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.ca = make_ca(self.workdir)
        self.lb_cert = make_certificate(self.workdir, self.ca, "lb.test", dns=("lb.test",))
        self.dovecot = Dovecot(self.workdir, {"alice": "correct horse", "bob": "battery staple"})
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)

    def start_postfix(self, name):
        return start_sasl_postfix(self, self.ca, self.dovecot, name)

    def start_lb(self, backends, auth=None):
        port = free_port()
        listener = {"role": "submission", "accepted_domains": [],
                    "tls": {"mode": "starttls", "cert": self.lb_cert[0], "key": self.lb_cert[1]}}
        if auth:
            listener["auth"] = auth
        pool = {"tls": {"mode": "required", "ca_file": self.ca[0]}}
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(n, p, {"tls_name": f"{n}.test"}) for n, p in backends],
            listener_options=listener, pool_options=pool))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def connect(self, port):
        return starttls_client(port, self.ca[0])

    def test_login_verified_by_a_backend_and_messages_spread_with_xclient_login(self):
        hub1, hub2 = self.start_postfix("hub1"), self.start_postfix("hub2")
        lb, port = self.start_lb([("hub1", hub1.port), ("hub2", hub2.port)])
        # No AUTH before TLS, and no mail without AUTH.
        plain = smtplib.SMTP("127.0.0.1", port, timeout=30)
        plain.ehlo("laptop.example")
        self.assertNotIn("auth", plain.esmtp_features)
        self.assertEqual(plain.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=")[0], 538)
        plain.quit()
        s = self.connect(port)
        self.assertEqual(s.esmtp_features["auth"].split(), ["PLAIN", "LOGIN"])
        code, _ = s.mail("alice@example.org")
        self.assertEqual(code, 530)
        s.rset()
        with self.assertRaises(smtplib.SMTPAuthenticationError) as wrong:
            s.login("alice", "wrong horse")
        self.assertEqual(wrong.exception.smtp_code, 535)
        self.assertEqual(s.login("alice", "correct horse")[0], 235)
        for i in range(6):
            refused = s.sendmail("alice@example.org", [f"friend{i}@elsewhere.example"],
                                 f"Subject: message {i}\r\n\r\nhello\r\n".encode())
            self.assertEqual(refused, {})
        s.quit()

        def logins(pf):
            return [l for l in pf.log_lines() if re.search(r"client=\S+\[127\.0\.0\.2\].*"
                                                            r"sasl_username=alice", l)]
        wait_until(lambda: len(logins(hub1)) + len(logins(hub2)) == 6,
                   what="six messages logged with the login by the two Postfixes")
        self.assertGreater(len(logins(hub1)), 0)
        self.assertGreater(len(logins(hub2)), 0)
        wait_until(lambda: len(lb.tracking_records()) >= 6, what="tracking records")
        self.assertTrue(all(r["login"] == "alice" for r in lb.tracking_records()[-6:]))
        auth_lines = " ".join(lb.log_lines("event=auth "))
        self.assertIn("login=alice mechanism=PLAIN result=failed", auth_lines)
        self.assertIn("login=alice mechanism=PLAIN result=ok", auth_lines)
        # Passwords appear nowhere: not in our log, not in the tracking log.
        for path in (lb.stderr, lb.tracking):
            with open(path) as f:
                text = f.read()
            self.assertNotIn("horse", text)

    def test_dovecot_verifier_and_throttling(self):
        hub1 = self.start_postfix("hub1")
        lb, port = self.start_lb([("hub1", hub1.port)],
                                 auth={"verifier": "dovecot", "dovecot_socket": self.dovecot.socket,
                                       "max_failures": 2, "failure_window": "1h"})
        s = self.connect(port)
        # AUTH LOGIN, the other mechanism.
        s.user, s.password = "bob", "battery staple"
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        self.assertEqual(code, 235)
        try:
            refused = s.sendmail("bob@example.org", ["x@elsewhere.example"], b"\r\nhi\r\n")
        except smtplib.SMTPRecipientsRefused as e:
            # Seen once in CI under load (451 4.4.1): keep what explains it.
            self.fail(f"{e.recipients}; smtplb said: {lb.log_lines()[-20:]}; "
                      f"tracking: {lb.tracking_records()[-2:]}; "
                      f"Postfix said: {hub1.log_lines()[-20:]}")
        self.assertEqual(refused, {})
        s.quit()
        wait_until(lambda: any("sasl_username=bob" in l for l in hub1.log_lines()),
                   what="Postfix logging bob's login")
        s = self.connect(port)
        for _ in range(2):
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.login("alice", "guess")
        # Now even the right password is refused for a while, without asking.
        with self.assertRaises(smtplib.SMTPAuthenticationError) as throttled:
            s.login("alice", "correct horse")
        self.assertEqual(throttled.exception.smtp_code, 454)
        s.close()
        self.assertIn("result=throttled", " ".join(lb.log_lines("event=auth ")))


if __name__ == "__main__":
    main()
