"""Real Postfix judges a client through smtplb as it judges the same client
connecting directly (issue 22, DESIGN.md "Transparency"): the same session
is run straight to Postfix and through smtplb, and the replies compared.

- Hostile HELOs (reject_invalid_helo_hostname): Postfix delays the HELO
  rejection to RCPT (smtpd_delay_reject = yes), so RCPT must get the same
  reply; a client's HELO must never mark the backend misconfigured.
- Client names (reject_unknown_client_hostname) from a private DNS server:
  smtplb passes a forward-confirmed name in XCLIENT NAME=, looked up with
  server.dns_servers; Postfix, connected to directly, uses the system
  resolver, so that instance runs with its own /etc/resolv.conf.

Where the two sessions cannot match, by design:
- the banner and the EHLO reply: smtplb answers the client's EHLO itself,
  before it has chosen a backend (its own name and capabilities);
- everything else compared here must match: MAIL, RCPT (code, enhanced code
  and text), DATA, RSET, QUIT (code and enhanced code)."""
import json
import shutil
import smtplib
import subprocess

import configs
import fidelity
import harness
from harness import (Nsd, Postfix, Smtplb, WorkdirTestCase, free_address, free_port, main,
                     postfix_available)

# Checked with Postfix 3.7: it refuses an XCLIENT attribute whose xtext form
# is over 255 bytes ("501 5.5.4 Error: attribute value too long"); 150 "+"
# are 450 bytes as xtext ("+2B" each), so that HELO can reach Postfix only in
# the EHLO that follows XCLIENT (which sets the HELO Postfix judges anyway).
HOSTILE_HELOS = [b"+" * 150, b"foo bar", "tést.example".encode()]


def comparable(steps):
    """The steps that must match: after EHLO, codes and enhanced codes,
    plus RCPT's text (the backend's judgement of the client)."""
    out = []
    for step, (code, enhanced, text) in steps:
        if step in ("banner", "EHLO"):
            continue
        out.append((step, code, enhanced, text) if step == "RCPT" else (step, code, enhanced))
    return out


class HostileHelo(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def test_hostile_helos_get_postfixs_own_replies_and_leave_the_backend_up(self):
        pf = Postfix(self.workdir, "strict", extra_main=fidelity.header_checks(self.workdir) + """\
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_invalid_helo_hostname
""")
        pf.start()
        self.addCleanup(pf.stop)
        for n, helo in enumerate(HOSTILE_HELOS):
            shown = repr(helo[:20]) + ("..." if len(helo) > 20 else "")
            with self.subTest(helo=shown):
                # A balancer of its own for each HELO: one's effect does not hide the next's.
                port = free_port()
                lb = Smtplb(self.workdir, configs.balancer(port, [("strict", pf.port)],
                                                           server_options={"admin": "127.0.0.1:0"}),
                            name=f"smtplb-{n}")
                lb.start(port)
                try:
                    problems = self.compare(pf, lb, port, helo)
                finally:
                    lb.stop()
                if problems:
                    self.fail(f"EHLO {shown}:\n" + "\n".join(problems))

    def compare(self, pf, lb, port, helo):
        problems = []
        direct = fidelity.run_script(pf.port, "127.0.0.30", helo)
        # The reference: Postfix refuses the HELO at RCPT, not before.
        self.assertEqual([(s, r[0]) for s, r in direct if s in ("EHLO", "MAIL", "RCPT")],
                         [("EHLO", "250"), ("MAIL", "250"), ("RCPT", "501")], direct)
        via = fidelity.run_script(port, "127.0.0.30", helo)
        if comparable(via) != comparable(direct):
            problems.append(f"  direct:         {comparable(direct)}\n"
                            f"  through smtplb: {comparable(via)}\n"
                            f"  (EHLO reply, not compared: direct {direct[1][1][:2]}, "
                            f"through smtplb {via[1][1][:2]})")
        # A normal client after it: served by the same (only) backend.
        with smtplib.SMTP("127.0.0.1", port, local_hostname="normal.example",
                          source_address=("127.0.0.31", 0), timeout=60) as s:
            s.ehlo()
            s.mail("alice@example.org")
            code, text = s.rcpt("bob@example.net")
            if code == 250:
                code, text = s.data("Subject: normal\r\n\r\nafter a hostile one\r\n")
        if code != 250:
            problems.append(f"a normal client after it got {code} {text.decode(errors='replace')}")
        else:
            q = fidelity.queue_id(text)
            got = fidelity.wait_for_messages(pf, [q])[q]
            if (got["addr"], got["helo"]) != ("127.0.0.31", "normal.example"):
                problems.append(f"the normal client's message is logged as {got}")
        for line in lb.log_lines("misconfigured"):
            problems.append(f"a client's HELO marked the backend misconfigured: {line}")
        status = subprocess.run([harness.SMTPLB, "status", "--admin",
                                 f"127.0.0.1:{lb.admin_port()}", "--json"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stderr)
        health = {b["name"]: b["health"] for b in json.loads(status.stdout)["pools"][0]["backends"]}
        if health != {"strict": "up"}:
            problems.append(f"smtplb status: {health}")
        return problems


def zones():
    soa = ("@ IN SOA ns.fidelity.test. hostmaster.fidelity.test. 1 3600 600 86400 300\n"
           "@ IN NS ns.fidelity.test.\n")
    return {
        "0.0.127.in-addr.arpa": "$ORIGIN 0.0.127.in-addr.arpa.\n$TTL 300\n" + soa +
                                "20 IN PTR good.fidelity.test.\n"
                                "21 IN PTR forged.fidelity.test.\n",  # 22: no PTR
        "fidelity.test": "$ORIGIN fidelity.test.\n$TTL 300\n" + soa +
                         "ns IN A 127.0.0.9\n"
                         "good IN A 127.0.0.20\n"
                         "forged IN A 127.0.0.99\n",  # does not confirm 127.0.0.21
    }


# What Postfix answers each client at RCPT, connected to directly.
EXPECTED = {
    "127.0.0.20": ("250", "2.1.5", "Ok"),
    "127.0.0.21": ("450", "4.7.25", "Client host rejected: cannot find your hostname, [127.0.0.21]"),
    "127.0.0.22": ("450", "4.7.25", "Client host rejected: cannot find your hostname, [127.0.0.22]"),
}


class VerifiedClientNames(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.assertIsNotNone(shutil.which("nsd"), "nsd must be installed (scripts/bootstrap.sh test)")
        # glibc's resolver asks port 53: NSD gets a loopback address of its own.
        self.dns = Nsd(self.workdir, zones(), address=free_address(53), port=53)
        self.dns.start()
        self.addCleanup(self.dns.stop)
        resolv = f"{self.workdir}/resolv.conf"
        with open(resolv, "w") as f:
            f.write(f"nameserver {self.dns.address}\noptions timeout:2 attempts:2\n")
        self.pf = Postfix(self.workdir, "names", resolv_conf=resolv,
                          extra_main=fidelity.header_checks(self.workdir) +
                          "smtpd_client_restrictions = reject_unknown_client_hostname\n")
        self.pf.start()
        self.addCleanup(self.pf.stop)

    def attempts(self, port):
        """{client address: RCPT reply as (code, enhanced, text)}, and the
        queue id of each accepted message."""
        replies, queued = {}, {}
        for address in EXPECTED:
            helo = f"host-{address.rsplit('.', 1)[1]}.example"
            with smtplib.SMTP("127.0.0.1", port, local_hostname=helo,
                              source_address=(address, 0), timeout=60) as s:
                s.ehlo()
                s.mail("alice@example.org")
                code, text = s.rcpt("bob@example.net")
                replies[address] = fidelity.reply_key([f"{code} {text.decode(errors='replace')}"])
                if code == 250:
                    code, text = s.data(f"Subject: from {address}\r\n\r\nhello\r\n")
                    if code == 250:
                        queued[address] = fidelity.queue_id(text)
        return replies, queued

    def check_good_name(self, queued):
        self.assertIn("127.0.0.20", queued)
        q = queued["127.0.0.20"]
        m = fidelity.wait_for_messages(self.pf, [q])[q]
        self.assertEqual((m["name"], m["addr"]), ("good.fidelity.test", "127.0.0.20"))
        self.assertEqual((m["helo"], m["received_name"]), ("host-20.example", "good.fidelity.test"))

    def test_direct_postfix_resolves_in_the_test_dns(self):
        replies, queued = self.attempts(self.pf.port)
        self.assertEqual(replies, EXPECTED)
        self.check_good_name(queued)

    def test_through_smtplb_same_judgement_as_direct(self):
        direct, _ = self.attempts(self.pf.port)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("names", self.pf.port)],
            server_options={"dns_servers": [f"{self.dns.address}:{self.dns.port}"]}))
        lb.start(port)
        self.addCleanup(lb.stop)
        replies, queued = self.attempts(port)
        self.assertEqual(replies, direct, "RCPT replies through smtplb (first) and direct (second)")
        self.check_good_name(queued)


if __name__ == "__main__":
    main()
