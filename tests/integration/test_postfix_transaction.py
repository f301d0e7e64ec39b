"""Transactions through smtplb against real Postfix, compared with the same
client talking to that Postfix directly (DESIGN.md: transparency)."""
import smtplib

import configs
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available


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


if __name__ == "__main__":
    main()
