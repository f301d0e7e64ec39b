"""Transactions through smtplb against real Postfix, compared with the same
client talking to that Postfix directly (DESIGN.md: transparency)."""
import json
import smtplib
import urllib.request

import configs
from harness import (Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available,
                     wait_until)


def send_three(port, source):
    """One session: a message Postfix refuses at end of data, then two it
    accepts. Returns what the client was answered for each."""
    outcomes = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                      source_address=(source, 0), timeout=30) as s:
        for sender in ("refused@example.org", "ok@example.org", "ok@example.org"):
            try:
                s.sendmail(sender, ["bob@example.net"], "Subject: t\r\n\r\nhi\r\n")
                outcomes.append(250)
            except smtplib.SMTPDataError as e:
                outcomes.append((e.smtp_code, e.smtp_error.decode().split(" ", 1)[0]))
    return outcomes


class PostfixTransaction(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def test_a_refusal_at_end_of_data_leaves_the_next_message_unharmed(self):
        # Postfix keeps the transaction open after smtpd_end_of_data_restrictions
        # refuse: the next MAIL on that connection would get "503 nested MAIL".
        access = f"{self.workdir}/eod_access"
        with open(access, "w") as f:
            f.write("refused@example.org REJECT not this one\n")
        pf = Postfix(self.workdir, "eod", extra_main=(
            f"smtpd_end_of_data_restrictions = check_sender_access texthash:{access}"))
        pf.start()
        self.addCleanup(pf.stop)
        direct = send_three(pf.port, "127.0.0.2")
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("eod", pf.port)], pool_options={"health": {"enabled": False}}))
        lb.start(port)
        self.addCleanup(lb.stop)
        through = send_three(port, "127.0.0.2")
        self.assertEqual(direct, [(554, "5.7.1"), 250, 250])
        self.assertEqual(through, direct)
        # And a second client, whose transaction may take the same backend
        # connection or a new one: served, the backend still in service.
        self.assertEqual(send_three(port, "127.0.0.3"), direct)
        self.assertFalse(lb.log_lines("to=misconfigured"))
        self.assertFalse(lb.log_lines("to=down"))


    def start_pair(self, name, extra_main):
        """A Postfix, and smtplb in front of it alone (probes off: only the
        test's own traffic judges the backend)."""
        pf = Postfix(self.workdir, name, extra_main=extra_main)
        pf.start()
        self.addCleanup(pf.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(name, pf.port)], pool_options={"health": {"enabled": False}},
            server_options={"admin": "127.0.0.1:0"}), name=f"lb-{name}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return pf, port, lb

    def assert_backend_up(self, lb):
        with urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/api/v1/status",
                                    timeout=10) as r:
            backend = json.load(r)["pools"][0]["backends"][0]
        self.assertEqual(backend["health"], "up", backend)

    def test_a_refusal_at_mail_reaches_every_recipient(self):
        access = f"{self.workdir}/senders"
        with open(access, "w") as f:
            f.write("bad@example.org REJECT Sender not welcome here\n")
        pf, port, lb = self.start_pair("mailref", (
            "smtpd_delay_reject = no\n"
            f"smtpd_sender_restrictions = check_sender_access texthash:{access}"))
        rcpts = ["a@example.net", "b@example.net", "c@example.net"]

        def attempt(p):
            with smtplib.SMTP("127.0.0.1", p, local_hostname="client.example",
                              source_address=("127.0.0.2", 0), timeout=30) as s:
                s.ehlo()
                mail = s.mail("bad@example.org")
                return mail, [s.rcpt(r) for r in rcpts]

        (direct_mail, direct_rcpts) = attempt(pf.port)
        self.assertEqual(direct_mail[0], 554, direct_mail)
        self.assertTrue(all(code == 503 for code, _ in direct_rcpts), direct_rcpts)
        # Through smtplb the MAIL is smtplb's to accept; the backend's
        # refusal, word for word, then answers every recipient (never a
        # 451 that would have the client retry the others for days).
        (mail, replies) = attempt(port)
        self.assertEqual(mail[0], 250)
        self.assertEqual(replies, [direct_mail] * 3)
        self.assert_backend_up(lb)

    def test_one_recipients_temporary_lookup_failure_defers_only_that_recipient(self):
        # Postfix answers 451 4.3.0 for a recipient whose table lookup fails;
        # the access map stands in for that lookup.
        access = f"{self.workdir}/recipients"
        with open(access, "w") as f:
            f.write("tempfail@example.net 451 4.3.0 <tempfail@example.net>: "
                    "Recipient address rejected: Temporary lookup failure\n")
        pf, port, lb = self.start_pair("lookup", (
            f"smtpd_recipient_restrictions = check_recipient_access texthash:{access}, "
            "permit_mynetworks, reject_unauth_destination"))

        def attempt(p, order):
            with smtplib.SMTP("127.0.0.1", p, local_hostname="client.example",
                              source_address=("127.0.0.2", 0), timeout=30) as s:
                s.ehlo()
                s.mail("alice@example.org")
                replies = [s.rcpt(r) for r in order]
                code, text = s.data("Subject: t\r\n\r\nhi\r\n")
                return replies, code

        for order in (["one@example.net", "tempfail@example.net", "two@example.net"],
                      ["tempfail@example.net", "one@example.net", "two@example.net"]):
            direct = attempt(pf.port, order)
            self.assertEqual([c for c, _ in direct[0]], [451 if "tempfail" in r else 250
                                                         for r in order])
            self.assertEqual(direct[1], 250)
            self.assertEqual(attempt(port, order), direct, order)
        self.assert_backend_up(lb)
        self.assertFalse(lb.log_lines("to=busy"))
        # Four messages, each to one@ and two@ only.
        def delivered(rcpt):
            return sum(f"to=<{rcpt}>" in l and "status=sent" in l for l in pf.log_lines())
        wait_until(lambda: delivered("one@example.net") == 4 and delivered("two@example.net") == 4,
                   what="four deliveries each to one@ and two@")
        self.assertEqual(delivered("tempfail@example.net"), 0)


if __name__ == "__main__":
    main()
