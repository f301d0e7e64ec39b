"""helo_to_backend = "client" (issue 26 item 5): a backend reached without
XCLIENT is greeted with the client's own HELO name, so a real Postfix whose
smtpd_helo_restrictions read it judges the client through smtplb as it
judges it directly; with the default smtplb greets with its own name.

A connection greeted so speaks for that HELO name only: it is reused by a
later client that says the same name, never by one that says another, and
a client that changes its EHLO mid-session gets a connection greeted with
the new name for its next message. Each message's HELO is read from the
Received: header Postfix writes (logged by a header_checks WARN)."""
import json
import smtplib
import subprocess

import configs
import fidelity
import harness
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available

BLOCKED = "blocked.example"


def rcpt_reply(port, source, helo):
    """(code, enhanced, text) of RCPT for a client that says EHLO helo."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, source_address=(source, 0),
                      timeout=60) as s:
        s.ehlo()
        s.mail("alice@example.org")
        code, text = s.rcpt("bob@example.net")
        return fidelity.reply_key([f"{code} {text.decode(errors='replace')}"])


def send(s, subject):
    """One message on an open session; its queue id at Postfix."""
    s.mail("alice@example.org")
    code, text = s.rcpt("bob@example.net")
    if code != 250:
        raise AssertionError(f"RCPT {code} {text!r}")
    code, text = s.data(f"Subject: {subject}\r\n\r\nhello\r\n")
    if code != 250:
        raise AssertionError(f"end of data {code} {text!r}")
    return fidelity.queue_id(text)


class HeloToBackend(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        access = f"{self.workdir}/helo_access"
        with open(access, "w") as f:
            f.write(f"{BLOCKED} REJECT helo blocked by test\n")
        self.pf = Postfix(self.workdir, "helos", extra_main=fidelity.header_checks(self.workdir) +
                          "smtpd_helo_required = yes\n"
                          f"smtpd_helo_restrictions = check_helo_access texthash:{access}\n")
        self.pf.start()
        self.addCleanup(self.pf.stop)

    def balancer(self, threads, helo_to_backend=None):
        pool = {"helo_to_backend": helo_to_backend} if helo_to_backend else {}
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("helos", self.pf.port)], pool_options=pool,
            listener_options={"client_identity": "none"},
            server_options={"threads": threads, "admin": "127.0.0.1:0"}),
            name=f"smtplb-{threads}-{helo_to_backend or 'default'}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def backend_health(self, lb):
        status = subprocess.run([harness.SMTPLB, "status", "--admin",
                                 f"127.0.0.1:{lb.admin_port()}", "--json"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stderr)
        return {b["name"]: b["health"] for b in json.loads(status.stdout)["pools"][0]["backends"]}

    def test_a_refused_helo_gets_postfixs_own_reply_through_smtplb(self):
        direct = rcpt_reply(self.pf.port, "127.0.0.30", BLOCKED)
        self.assertEqual(direct[:2], ("554", "5.7.1"), direct)
        self.assertIn("Helo command rejected: helo blocked by test", direct[2])
        for threads in (1, 2):
            with self.subTest(threads=threads):
                lb, port = self.balancer(threads, "client")
                self.assertEqual(rcpt_reply(port, "127.0.0.30", BLOCKED), direct)
                # Another HELO on the same balancer is not judged by the first.
                self.assertEqual(rcpt_reply(port, "127.0.0.31", "fine.example")[0], "250")
                self.assertEqual(lb.log_lines("misconfigured"), [])
                self.assertEqual(self.backend_health(lb), {"helos": "up"})

    def test_a_helo_refused_at_the_greeting_is_the_clients_answer(self):
        # smtpd_delay_reject = no: Postfix refuses the EHLO itself; smtplb
        # greets with that name only when the client has sent MAIL, so the
        # refusal is the answer to the client's RCPT (docs/identity.md).
        access = f"{self.workdir}/helo_access"
        eager = Postfix(self.workdir, "eager", extra_main=(
            "smtpd_delay_reject = no\n"
            f"smtpd_helo_restrictions = check_helo_access texthash:{access}\n"))
        eager.start()
        self.addCleanup(eager.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("eager", eager.port)], pool_options={"helo_to_backend": "client"},
            listener_options={"client_identity": "none"},
            server_options={"admin": "127.0.0.1:0"}), name="smtplb-eager")
        lb.start(port)
        self.addCleanup(lb.stop)
        code, enhanced, text = rcpt_reply(port, "127.0.0.32", BLOCKED)
        self.assertEqual((code[0], enhanced), ("5", "5.7.1"), (code, enhanced, text))
        self.assertIn("Helo command rejected: helo blocked by test", text)
        self.assertEqual(rcpt_reply(port, "127.0.0.33", "fine.example")[0], "250")
        self.assertEqual(lb.log_lines("misconfigured"), [])
        self.assertEqual(self.backend_health(lb), {"eager": "up"})

    def test_by_default_the_backend_judges_smtplbs_own_name(self):
        _, port = self.balancer(1)
        self.assertEqual(rcpt_reply(port, "127.0.0.30", BLOCKED)[0], "250")

    def test_each_message_carries_its_clients_helo_over_reused_connections(self):
        for threads in (1, 2):
            with self.subTest(threads=threads):
                _, port = self.balancer(threads, "client")
                expected = {}  # queue id -> HELO
                sessions = [("127.0.0.40", "one.example"), ("127.0.0.41", "two.example"),
                            ("127.0.0.42", "one.example")]
                for n, (source, helo) in enumerate(sessions):
                    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo,
                                      source_address=(source, 0), timeout=60) as s:
                        s.ehlo()
                        for m in range(2):
                            expected[send(s, f"{helo} {n}.{m}")] = helo
                        # A new EHLO mid-session: the next message speaks with it.
                        s.ehlo("three.example")
                        expected[send(s, f"three {n}")] = "three.example"
                seen = fidelity.wait_for_messages(self.pf, list(expected))
                got = {q: seen[q]["helo"] for q in expected}
                self.assertEqual(got, expected)
                if threads == 1:
                    # One event loop, one cache: the third session said the
                    # first one's name and reused its connection (one smtpd).
                    by_helo = {}
                    for q, helo in expected.items():
                        by_helo.setdefault(helo, set()).add(seen[q]["pid"])
                    self.assertEqual(len(by_helo["one.example"]), 1, by_helo)
                    self.assertTrue(by_helo["one.example"].isdisjoint(by_helo["two.example"]),
                                    by_helo)

    def test_a_client_that_said_helo_is_greeted_with_helo(self):
        _, port = self.balancer(1, "client")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="old.example",
                          source_address=("127.0.0.43", 0), timeout=60) as s:
            s.helo()
            q = send(s, "helo client")
        m = fidelity.wait_for_messages(self.pf, [q])[q]
        self.assertEqual(m["helo"], "old.example")
        # Postfix's Received: header says "with SMTP" for HELO, "ESMTP" for EHLO.
        line = next(line for line in self.pf.log_lines() if f"{q}: warning: header Received" in line)
        self.assertIn(" with SMTP ", line)


if __name__ == "__main__":
    main()
