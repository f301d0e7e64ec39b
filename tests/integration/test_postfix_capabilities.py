"""What a pool offers is what its backends offer (issue 25: SIZE, SMTPUTF8,
REQUIRETLS), against real Postfix backends, compared with the same client
talking to the same Postfix directly (docs/esmtp.md)."""
import smtplib
import subprocess

import configs
import harness
from harness import (Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available,
                     wait_until)

# The 7-bit, 10 MB backend of the issue.
PLAIN = ("smtputf8_enable = no\nmessage_size_limit = 10240000\n"
         "smtpd_discard_ehlo_keywords = 8bitmime, dsn, chunking")
UTF8_RCPT = "jörg@example.net"
UTF8_MESSAGE = ("From: <zoë@example.org>\r\nTo: <jörg@example.net>\r\nSubject: grüße\r\n"
                "\r\nSchöne Grüße\r\n").encode()


def ehlo_keywords(port):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
        s.ehlo()
        return s.esmtp_features


def mail_reply(port, params):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
        s.ehlo()
        code, text = s.docmd("MAIL", " ".join(["FROM:<zoe@example.org>"] + params))
        return code, text.decode().split(" ", 1)[0]


def send_utf8(port):
    """An SMTPUTF8 message to a UTF-8 recipient: (code, enhanced code) at
    the first refusal, or 250."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
        s.ehlo()
        s.command_encoding = "utf-8"
        # smtplib's mail() refuses SMTPUTF8 the server does not offer: sent raw.
        code, text = s.docmd("MAIL", "FROM:<zoë@example.org> SMTPUTF8")
        if code != 250:
            return code, text.decode().split(" ", 1)[0]
        code, text = s.docmd("RCPT", f"TO:<{UTF8_RCPT}>")
        if code != 250:
            return code, text.decode().split(" ", 1)[0]
        code, text = s.data(UTF8_MESSAGE)
        return 250 if code == 250 else (code, text.decode().split(" ", 1)[0])


def delivered_to(postfix, recipient):
    return [line for line in postfix.log_lines()
            if f"to=<{recipient}>" in line and "status=sent" in line]


class PostfixCapabilities(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def postfix(self, name, extra_main=""):
        pf = Postfix(self.workdir, name, extra_main=extra_main)
        pf.start()
        self.addCleanup(pf.stop)
        return pf

    def balancer(self, backends, threads=1, spool=False):
        port = free_port()
        pool = {"health": {"depth": "ehlo", "interval": "1s"}}
        if spool:
            pool["on_unavailable"] = "spool"
        lb = Smtplb(self.workdir, configs.balancer(
            port, backends, pool_options=pool,
            server_options={"admin": "127.0.0.1:0", "threads": threads}), name=f"lb{threads}")
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.wait_for_capabilities()
        return port, lb

    def test_a_pool_without_smtputf8_offers_its_size_and_refuses_utf8_at_once(self):
        plain = self.postfix("plain", PLAIN)
        port, lb = self.balancer([("plain", plain.port)], spool=True)
        keywords = ehlo_keywords(port)
        self.assertEqual(keywords.get("size"), "10240000")
        self.assertNotIn("smtputf8", keywords)
        self.assertEqual(ehlo_keywords(plain.port).get("size"), "10240000")
        # SMTPUTF8: 553 5.6.7 at MAIL, never 451, never the spool. Postfix
        # itself refuses the parameter as unknown (555 5.5.4): permanent too,
        # but 5.6.7 says why (RFC 6531 §3.6.1; docs/esmtp.md, SMTPUTF8).
        self.assertEqual(send_utf8(port), (553, "5.6.7"))
        self.assertEqual(mail_reply(plain.port, ["SMTPUTF8"]), (555, "5.5.4"))
        # SIZE= above the pool's limit: as Postfix says it.
        self.assertEqual(mail_reply(port, ["SIZE=20000000"]), (552, "5.3.4"))
        self.assertEqual(mail_reply(plain.port, ["SIZE=20000000"]), (552, "5.3.4"))
        self.assertEqual(mail_reply(port, ["SIZE=10240000"]), (250, "2.1.0"))
        self.assertNotIn("spooled", [r.get("result") for r in lb.tracking_records()])
        status = lb.status()["pools"][0]
        self.assertEqual(status["capabilities"]["size"], 10240000)
        self.assertEqual(status["capabilities"]["smtputf8"], 0)
        backend = status["backends"][0]["capabilities"]
        self.assertFalse(backend["smtputf8"])
        self.assertFalse(backend["8bitmime"])
        text = subprocess.run([harness.SMTPLB, "status", "--admin", f"127.0.0.1:{lb.admin_port()}"],
                              capture_output=True, text=True, timeout=30).stdout
        self.assertIn("SIZE 10240000 SMTPUTF8 0/1 8BITMIME 0/1", text)
        self.assertRegex(text, r"plain +SIZE 10240000\n")  # the backend: nothing else

    def test_a_full_featured_pool_offers_smtputf8_and_the_message_arrives(self):
        full = self.postfix("full")
        port, lb = self.balancer([("full", full.port)])
        self.assertIn("smtputf8", ehlo_keywords(port))
        self.assertEqual(send_utf8(port), 250)
        self.assertEqual(send_utf8(full.port), 250)  # the same, directly
        wait_until(lambda: len(delivered_to(full, UTF8_RCPT)) == 2, what="both deliveries")

    def test_a_mixed_pool_takes_smtputf8_only_to_the_capable_backend(self):
        for threads in (1, 2):
            with self.subTest(threads=threads):
                plain = self.postfix(f"plain{threads}", PLAIN)
                full = self.postfix(f"full{threads}")
                port, lb = self.balancer([("plain", plain.port), ("full", full.port)],
                                         threads=threads)
                self.assertIn("smtputf8", ehlo_keywords(port))
                # The smallest backend limit is the pool's.
                self.assertEqual(ehlo_keywords(port).get("size"), "10240000")
                for _ in range(8):
                    self.assertEqual(send_utf8(port), 250)
                wait_until(lambda: len(delivered_to(full, UTF8_RCPT)) == 8,
                           what="eight deliveries to the capable backend")
                self.assertEqual(delivered_to(plain, UTF8_RCPT), [])
                # Plain ASCII mail still goes to both.
                for i in range(8):
                    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                                      timeout=30) as s:
                        s.sendmail("a@example.org", [f"ascii{i}@example.net"],
                                   b"Subject: x\r\n\r\nx\r\n")
                wait_until(lambda: sum(1 for i in range(8)
                                       for pf in (plain, full)
                                       if delivered_to(pf, f"ascii{i}@example.net")) == 8,
                           what="the ASCII messages")
                self.assertTrue(any(delivered_to(plain, f"ascii{i}@example.net") for i in range(8)))

    def test_a_routed_pool_without_smtputf8_refuses_at_the_first_recipient(self):
        full = self.postfix("full")
        plain = self.postfix("plain", PLAIN)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("full", full.port)], pool_options={"health": {"depth": "ehlo", "interval": "1s"}},
            extra_pools=[("legacy", [("plain", plain.port)])],
            routes=[{"recipient": "^legacy-.*@example\\.net$", "pool": "legacy"}],
            server_options={"admin": "127.0.0.1:0"}))
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.wait_for_capabilities()
        # One reachable pool cannot take SMTPUTF8: the listener does not offer it.
        keywords = ehlo_keywords(port)
        self.assertNotIn("smtputf8", keywords)
        self.assertEqual(keywords.get("size"), "10240000")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
            s.ehlo()
            s.command_encoding = "utf-8"
            self.assertEqual(s.docmd("MAIL", "FROM:<zoë@example.org> SMTPUTF8")[0], 250)
            code, text = s.docmd("RCPT", "TO:<legacy-jörg@example.net>")
            self.assertEqual((code, text.decode().split(" ", 1)[0]), (553, "5.6.7"))
            s.rset()
            # The listener's own pool takes it.
            self.assertEqual(send_utf8(port), 250)
        wait_until(lambda: delivered_to(full, UTF8_RCPT), what="the delivery")
        self.assertFalse([line for line in plain.log_lines() if "legacy-" in line])


if __name__ == "__main__":
    main()
