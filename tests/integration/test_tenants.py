"""Tenants (issue 27): routes on the session send each customer's mail to its
own pool. Three real Postfix instances stand for the default pool and two
tenants' pools; swaks is the client. A route by SASL login (AUTH checked by
Dovecot), one by client network through a listener behind a PROXY-protocol
proxy (keyed on the real client, not the proxy), and one by listener; mail
that matches none goes to the listener's pool. Each Postfix's log shows
which recipients it accepted."""
import re
import subprocess

from harness import (Dovecot, Postfix, Smtplb, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, postfix_available, starttls_client, wait_for_port,
                     wait_until)

USERS = {"acme": "acme secret", "jo@acme.example": "jo secret", "globex": "globex secret",
         "carol": "carol secret"}


class TenantsTest(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.ca = make_ca(self.workdir)
        cert, key = make_certificate(self.workdir, self.ca, "lb.test", dns=("lb.test",))
        self.dovecot = Dovecot(self.workdir, USERS)
        self.dovecot.start()
        self.addCleanup(self.dovecot.stop)
        self.postfix = {}
        for name in ("hubs", "acme", "globex"):
            # Globex's servers take smaller messages than the others.
            pf = Postfix(self.workdir, name, extra_main="message_size_limit = 100000\n"
                         if name == "globex" else "")
            pf.start()
            self.addCleanup(pf.stop)
            self.postfix[name] = pf
        self.ports = {name: free_port() for name in ("submission", "internet", "proxied",
                                                     "partners")}
        pools = "".join(f"""
[[pool]]
name = "{name}"
[[pool.backend]]
name = "{name}1"
address = "127.0.0.1:{pf.port}"
""" for name, pf in self.postfix.items())
        config = f"""
[server]
hostname = "lb.test"
state_dir = "@STATE@"
tracking_log = "@TRACKING@"
admin = "127.0.0.1:0"

[[listener]]
name = "submission"
bind = "127.0.0.1:{self.ports['submission']}"
role = "submission"
pool = "hubs"
resolve_client_names = false
tls = {{ mode = "starttls", cert = "{cert}", key = "{key}" }}
auth = {{ verifier = "dovecot", dovecot_socket = "{self.dovecot.socket}" }}

[[listener]]
name = "internet"
bind = "127.0.0.1:{self.ports['internet']}"
accepted_domains = ["example.net"]
pool = "hubs"
resolve_client_names = false

[[listener]]
name = "proxied"
bind = "127.0.0.1:{self.ports['proxied']}"
accepted_domains = ["example.net"]
pool = "hubs"
resolve_client_names = false
proxy_protocol = "v2"
proxy_trusted_networks = ["127.0.0.1/32"]

[[listener]]
name = "partners"
bind = "127.0.0.1:{self.ports['partners']}"
accepted_domains = ["example.net"]
pool = "hubs"
resolve_client_names = false
{pools}
[[route]]
recipient = "postmaster@example[.]net"
pool = "hubs"

[[route]]
auth_user = ["acme", "@ACME.example"]
pool = "acme"

[[route]]
auth_user = ["globex"]
listener = "submission"
pool = "globex"

[[route]]
client_network = ["10.1.0.0/16", "2001:db8:1::/48"]
pool = "acme"

[[route]]
listener = "partners"
pool = "globex"
"""
        self.lb = Smtplb(self.workdir, config)
        self.lb.start(self.ports["submission"])
        self.addCleanup(self.lb.stop)
        for port in self.ports.values():
            wait_for_port(port)

    def swaks(self, listener, to, *extra):
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.ports[listener]}",
                            "--helo", "client.example", "--from", "sender@client.example",
                            "--to", to, "--header", f"Subject: to {to}", *extra],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"<.  250 2\.0\.0 Ok: queued as ")
        return r.stdout

    def authenticated(self, listener, to, user):
        return self.swaks(listener, to, "--tls", "--auth", "PLAIN", "--auth-user", user,
                          "--auth-password", USERS[user])

    def proxied_from(self, client, to):
        return self.swaks("proxied", to, "--proxy-version", "2", "--proxy-family", "AF_INET",
                          "--proxy-source", client, "--proxy-source-port", "40001",
                          "--proxy-dest", "127.0.0.1", "--proxy-dest-port", "25")

    def accepted_by(self):
        """{recipient: Postfix instance} from each instance's log."""
        where = {}
        for name, pf in self.postfix.items():
            for line in pf.log_lines():
                m = re.search(r"to=<([^>]+)>.*status=sent", line)
                if m:
                    where.setdefault(m.group(1), []).append(name)
        return where

    def test_each_tenant_reaches_its_own_pool(self):
        expected = {
            # By login, on the submission listener.
            "by-acme@example.net": "acme",
            "by-jo@example.net": "acme",  # by the login's domain
            "by-globex@example.net": "globex",
            "by-carol@example.net": "hubs",  # a login no route names
            # No login: the listener's pool.
            "anonymous@example.net": "hubs",
            # By the real client's network behind the proxy (the proxy is 127.0.0.1).
            "from-acme-apps@example.net": "acme",
            "from-elsewhere@example.net": "hubs",
            # By listener.
            "via-partners@example.net": "globex",
        }
        self.authenticated("submission", "by-acme@example.net", "acme")
        self.authenticated("submission", "by-jo@example.net", "jo@acme.example")
        self.authenticated("submission", "by-globex@example.net", "globex")
        self.authenticated("submission", "by-carol@example.net", "carol")
        self.swaks("internet", "anonymous@example.net")
        self.proxied_from("10.1.2.3", "from-acme-apps@example.net")
        self.proxied_from("192.0.2.9", "from-elsewhere@example.net")
        self.swaks("partners", "via-partners@example.net")
        wait_until(lambda: len(self.accepted_by()) == len(expected),
                   what="every message accepted by a Postfix")
        self.assertEqual(self.accepted_by(), {rcpt: [pool] for rcpt, pool in expected.items()})
        # The tenants' Postfixes judged the real clients: the login and the
        # proxied client's address came with the mail (XCLIENT).
        acme_log = "\n".join(self.postfix["acme"].log_lines())
        self.assertRegex(acme_log, r"client=\S+\[127\.0\.0\.1\].*sasl_username=acme")
        self.assertRegex(acme_log, r"client=\S+\[10\.1\.2\.3\]")

    def test_a_recipient_route_before_the_tenants_wins_for_its_recipients(self):
        # postmaster@example.net is the hubs', whoever writes: a tenant's
        # transaction takes its other recipients, and that one comes back
        # alone (452 4.5.3, RFC 5321 §4.5.3.1.10); first, it decides.
        def send(rcpts):
            s = starttls_client(self.ports["submission"], self.ca[0], source="127.0.0.1")
            s.login("acme", USERS["acme"])
            self.assertEqual(s.mail("billing@acme.example")[0], 250)
            replies = [s.rcpt(r) for r in rcpts]
            self.assertEqual(s.data(b"Subject: mixed\r\n\r\nhello\r\n")[0], 250)
            s.quit()
            return [code for code, _ in replies]

        self.assertEqual(send(["one@example.net", "postmaster@example.net"]), [250, 452])
        self.assertEqual(send(["postmaster@example.net", "two@example.net"]), [250, 452])
        wait_until(lambda: len(self.accepted_by()) == 2, what="two recipients accepted")
        self.assertEqual(self.accepted_by(), {"one@example.net": ["acme"],
                                              "postmaster@example.net": ["hubs"]})


    def test_a_listener_offers_what_the_pools_it_feeds_take(self):
        # EHLO's SIZE is the smallest of the pools a listener's mail may go
        # to. Globex's pool (100 000 bytes) is fed by the submission
        # listener (globex's login) and by "partners", not by "internet".
        self.lb.wait_for_capabilities()

        def size_offered(listener):
            r = subprocess.run(["swaks", "--server", f"127.0.0.1:{self.ports[listener]}",
                                "--quit-after", "EHLO"], capture_output=True, text=True,
                               timeout=60)
            return re.search(r"<-  250.SIZE (\d+)", r.stdout).group(1)

        self.assertEqual(size_offered("partners"), "100000")
        self.assertEqual(size_offered("submission"), "100000")
        self.assertEqual(size_offered("internet"), "10240000")


if __name__ == "__main__":
    main()
