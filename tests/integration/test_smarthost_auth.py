"""AUTH towards smarthosts (pool.backend.auth, issue 26): real Postfix
backends that relay only for authenticated clients
(smtpd_relay_restrictions = permit_sasl_authenticated, reject), with
Dovecot SASL offered inside TLS only. Through smtplb mail is accepted and
Postfix logs smtplb's account as sasl_username=, by PLAIN and by LOGIN, after
the XCLIENT that names the real client. A wrong password makes the backend
`misconfigured` (live and by probes) and clients never see a 5xx from it;
AUTH in plaintext is a configuration error unless allow_plaintext, which
works on loopback. The password appears in no log."""
import os
import re
import signal
import smtplib
import ssl
import subprocess

import configs
import harness
from harness import (Dovecot, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, postfix_available, start_sasl_postfix, wait_until)

USER = "relay@example.net"
PASSWORD = "s3cret pass word"
WRONG = "not-the-password"
RELAY_ONLY_AUTHENTICATED = "smtpd_relay_restrictions = permit_sasl_authenticated, reject\n"


class SmarthostAuthTest(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.ca = make_ca(self.workdir)
        self.dovecot = Dovecot(self.workdir, {USER: PASSWORD, "alice": "correct horse"})
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)

    def smarthost(self, name, tls=True):
        return start_sasl_postfix(self, self.ca, self.dovecot, name, tls=tls,
                                  extra_main=RELAY_ONLY_AUTHENTICATED)

    def password_file(self, name, password):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(password + "\n")
        os.chmod(path, 0o600)
        return path

    def balancer_config(self, port, backends, tls="required", health=None, listener=None):
        """backends: (name, port, auth table) for each."""
        pool = {"tls": {"mode": tls, "ca_file": self.ca[0]} if tls != "none" else {"mode": "none"},
                "health": health or {"enabled": False}}
        listener = listener or {"role": "relay", "accepted_domains": [],
                                "trusted_networks": ["127.0.0.0/8"]}
        return configs.balancer(
            port, [(n, p, {"tls_name": f"{n}.test", "auth": auth}) for n, p, auth in backends],
            listener_options=listener, pool_options=pool,
            server_options={"admin": "127.0.0.1:0"})

    def start_lb(self, *args, **kwargs):
        port = free_port()
        lb = Smtplb(self.workdir, self.balancer_config(port, *args, **kwargs), name=f"lb{port}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def send(self, port, n=0):
        """One message from 127.0.0.2 to a domain no backend is final for:
        relaying, which the smarthosts allow only to an authenticated client.
        Each n greets with its own name: another client to the backend."""
        with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0)) as s:
            s.ehlo(f"app{n}.example")
            s.mail(f"app{n}@example.net")
            code, text = s.rcpt("someone@example.org")
            if code != 250:
                return code, text
            code, text = s.data(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
            return code, text

    def send_many(self, port, count):
        """`count` messages in one client session; the last reply."""
        with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0)) as s:
            s.ehlo("app.example")
            for n in range(count):
                s.sendmail(f"app{n}@example.net", ["someone@example.org"],
                           f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())

    def disconnects(self, pf):
        return [line for line in pf.log_lines() if "disconnect from" in line and "auth=" in line]

    def client_lines(self, pf):
        return [line for line in pf.log_lines() if re.search(r"smtpd\[\d+\]: \w+: client=", line)]

    def assert_no_secret(self, lb):
        with open(lb.stderr, errors="replace") as f:
            text = f.read()
        if os.path.exists(lb.tracking):
            with open(lb.tracking, errors="replace") as f:
                text += f.read()
        for secret in (PASSWORD, WRONG):
            self.assertNotIn(secret, text)

    def test_plain_and_login_through_xclient_and_tls(self):
        plain, login = self.smarthost("plain"), self.smarthost("login")
        # The smarthosts relay for nobody unauthenticated: directly, refused.
        with smtplib.SMTP("127.0.0.1", plain.port, timeout=30) as s:
            s.ehlo("app.example")
            s.mail("app@example.net")
            code, _ = s.rcpt("someone@example.org")
            self.assertEqual(code, 554)
        secret = self.password_file("password", PASSWORD)
        lb, port = self.start_lb([
            ("plain", plain.port,
             {"username": USER, "password_file": secret, "mechanism": "plain"}),
            ("login", login.port,
             {"username": USER, "password_file": secret, "mechanism": "login"})])
        for n in range(4):
            code, text = self.send(port, n)
            self.assertEqual(code, 250, text)
        # One session's messages reuse its backend connections: one AUTH each.
        self.send_many(port, 4)
        # A client that says HELO: smtplb still greets with EHLO to AUTH.
        for n in range(2):
            with smtplib.SMTP("127.0.0.1", port, timeout=60,
                              source_address=("127.0.0.2", 0)) as s:
                s.helo(f"old{n}.example")
                s.sendmail("old@example.net", ["someone@example.org"], b"Subject: x\r\n\r\ny\r\n")
        for pf, method in ((plain, "PLAIN"), (login, "LOGIN")):
            wait_until(lambda: len(self.client_lines(pf)) >= 5, what=f"{method} deliveries")
            for line in self.client_lines(pf):
                # The client's own address (XCLIENT) and smtplb's account (AUTH).
                self.assertIn("[127.0.0.2]", line)
                self.assertIn(f"sasl_method={method}, sasl_username={USER}", line)
            wait_until(lambda: any(" auth=1 mail=2 " in d for d in self.disconnects(pf)),
                       what=f"one {method} connection carrying two messages")
        self.assert_no_secret(lb)

    def test_connections_shared_by_clients_authenticate_after_each_xclient(self):
        # Postfix authorises XCLIENT for the clients too: it goes on offering
        # XCLIENT after one, so a connection carries several clients' mail,
        # each after its own XCLIENT, which ends the SASL session.
        shared = self.smarthost("shared")
        with open(os.path.join(shared.conf, "main.cf"), "a") as f:
            f.write("smtpd_authorized_xclient_hosts = 127.0.0.0/8\n")
        shared.reload()
        secret = self.password_file("password", PASSWORD)
        lb, port = self.start_lb([
            ("shared", shared.port, {"username": USER, "password_file": secret})])
        for n in range(3):
            code, text = self.send(port, n)
            self.assertEqual(code, 250, text)
        wait_until(lambda: len(self.client_lines(shared)) >= 3, what="the deliveries")
        for line in self.client_lines(shared):
            self.assertIn(f"sasl_username={USER}", line)
        lb.stop()
        wait_until(lambda: self.disconnects(shared), what="the connections' ends")
        # Two clients' XCLIENTs on one connection, each followed by a
        # successful AUTH (Postfix counts a refused one as auth=1/2).
        def xclients_each_with_auth(line):
            m = re.search(r" xclient=0/(\d+) .* auth=(\d+) ", line)
            return m and int(m.group(1)) >= 2 and m.group(2) == m.group(1)
        self.assertTrue(any(xclients_each_with_auth(d) for d in self.disconnects(shared)),
                        self.disconnects(shared))

    def test_a_submission_clients_login_is_not_sent_as_xclient_login(self):
        # The client logs in to smtplb as alice; the smarthost must see
        # smtplb's account. XCLIENT LOGIN=alice would make Postfix take alice
        # as authenticated and answer smtplb's AUTH with 503.
        smarthost = self.smarthost("smarthost")
        secret = self.password_file("password", PASSWORD)
        cert = make_certificate(self.workdir, self.ca, "lb", dns=("lb.test",))
        listener = {"role": "submission", "accepted_domains": [],
                    "tls": {"mode": "starttls", "cert": cert[0], "key": cert[1]},
                    "auth": {"verifier": "dovecot", "dovecot_socket": self.dovecot.socket}}
        lb, port = self.start_lb([("smarthost", smarthost.port,
                                   {"username": USER, "password_file": secret})],
                                 listener=listener)
        with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0)) as s:
            s.starttls(context=ssl.create_default_context(cafile=self.ca[0]))
            s.ehlo("laptop.example")
            s.login("alice", "correct horse")
            s.sendmail("alice@example.net", ["someone@example.org"], b"Subject: a\r\n\r\nb\r\n")
        wait_until(lambda: self.client_lines(smarthost), what="the delivery")
        line = self.client_lines(smarthost)[0]
        self.assertIn(f"sasl_username={USER}", line)
        self.assertNotIn("alice", line)

    def test_wrong_password_is_misconfigured_and_clients_see_no_5xx(self):
        good, bad = self.smarthost("good"), self.smarthost("bad")
        wrong = self.password_file("wrong", WRONG)
        right = self.password_file("right", PASSWORD)
        lb, port = self.start_lb([
            ("bad", bad.port, {"username": USER, "password_file": wrong}),
            ("good", good.port, {"username": USER, "password_file": right})])
        # Live: every message is accepted (by good), and bad is misconfigured.
        for n in range(4):
            code, text = self.send(port, n)
            self.assertEqual(code, 250, text)
        changes = lb.health_changes("bad")
        self.assertTrue(any("to=misconfigured source=live" in c and "AUTH refused: 535" in c
                            for c in changes), changes)
        self.assertFalse(self.client_lines(bad))
        status = lb.status()
        states = {b["name"]: b["health"] for p in status["pools"] for b in p["backends"]}
        self.assertEqual(states["bad"], "misconfigured")
        self.assert_no_secret(lb)

    def test_probes_find_a_refused_auth_and_a_lone_backend_gives_4xx(self):
        bad = self.smarthost("bad")
        wrong = self.password_file("wrong", WRONG)
        lb, port = self.start_lb(
            [("bad", bad.port, {"username": USER, "password_file": wrong})],
            health={"interval": "1s", "down_interval": "1s", "rise": 1, "fall": 1})
        wait_until(lambda: any("to=misconfigured source=probe" in c
                               for c in lb.health_changes("bad")),
                   timeout=30, what="a probe's AUTH refused")
        line = [c for c in lb.health_changes("bad") if "to=misconfigured" in c][0]
        self.assertIn('reason="probe auth: AUTH refused: 535 5.7.8', line)
        code, text = self.send(port)
        self.assertEqual(code // 100, 4, text)  # never the backend's 5xx
        # A fixed password takes effect on reload.
        with open(wrong, "w") as f:
            f.write(PASSWORD + "\n")
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: any("to=up" in c for c in lb.health_changes("bad")), timeout=30,
                   what="the backend up again after the reload")
        code, text = self.send(port, 1)
        self.assertEqual(code, 250, text)
        self.assert_no_secret(lb)

    def test_plaintext_needs_allow_plaintext_and_then_works_on_loopback(self):
        secret = self.password_file("password", PASSWORD)
        auth = {"username": USER, "password_file": secret}
        config = os.path.join(self.workdir, "plain.toml")
        with open(config, "w") as f:
            f.write(self.balancer_config(free_port(), [("lab", 2525, auth)], tls="none")
                    .replace("@TRACKING@", "-").replace("@STATE@", self.workdir))
        r = subprocess.run([harness.SMTPLB, "check", "--config", config], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("allow_plaintext = true", r.stdout + r.stderr)
        # A password file every local user may read: a warning from check.
        os.chmod(secret, 0o644)
        with open(config, "w") as f:
            f.write(self.balancer_config(free_port(), [("lab", 2525, auth)])
                    .replace("@TRACKING@", "-").replace("@STATE@", self.workdir))
        r = subprocess.run([harness.SMTPLB, "check", "--config", config], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("pool[0].backend[0].auth.password_file", r.stdout + r.stderr)
        self.assertIn("readable by every local user", r.stdout + r.stderr)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)
        os.chmod(secret, 0o600)
        lab = self.smarthost("lab", tls=False)
        lb, port = self.start_lb([("lab", lab.port, dict(auth, allow_plaintext=True))], tls="none")
        code, text = self.send(port)
        self.assertEqual(code, 250, text)
        wait_until(lambda: self.client_lines(lab), what="the delivery")
        self.assertIn(f"sasl_username={USER}", self.client_lines(lab)[0])


if __name__ == "__main__":
    main()
