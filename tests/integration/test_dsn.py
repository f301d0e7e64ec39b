"""DSN (RFC 3461, 3464) through smtplb to real Postfix backends, compared with
the same client talking to Postfix directly: the parameters arrive as sent
(Postfix's queue file, read with postcat, holds the same RET, ENVID, NOTIFY
and ORCPT), bad ones get Postfix's own replies, a backend without DSN
(`smtpd_discard_ehlo_keywords = dsn`) gets smtplb's "relayed" notice to the
sender, and the spool's own reports honour NOTIFY, RET, ENVID and ORCPT.

Every backend holds what it receives (`HOLD`), so each queue file can be read."""
import glob
import os
import smtplib
import subprocess
import time

import configs
import harness
from harness import (Postfix, Smtplb, SmtpClient, WorkdirTestCase, free_port, main,
                     postfix_available, wait_until)

HOLD_ALL = "smtpd_end_of_data_restrictions = check_client_access static:HOLD\n"
FAST_HEALTH = {"interval": "1s", "down_interval": "1s", "rise": 1, "fall": 1, "timeout": "2s"}
# What Postfix recorded of the DSN request, per queue file (postcat -e).
DSN_FIELDS = ("envelope_id", "ret_flags", "notify_flags", "dsn_orig_rcpt", "original_recipient",
              "recipient", "sender")


def postfix(workdir, name, extra=""):
    return Postfix(workdir, name, extra_main=HOLD_ALL + extra)


def held(pf):
    """[(envelope lines about DSN, whole postcat text)] of every held message, oldest first."""
    out = []
    for path in sorted(glob.glob(os.path.join(pf.dir, "queue", "hold", "*")),
                       key=os.path.getmtime):
        text = subprocess.run(["postcat", "-c", pf.conf, path], capture_output=True,
                              text=True, timeout=30).stdout
        fields = [line.replace("named_attribute: ", "") for line in text.splitlines()
                  if line.replace("named_attribute: ", "").split(":")[0].split("=")[0]
                  in DSN_FIELDS]
        out.append((fields, text))
    return out


def send(port, recipients, mail_options=(), body="Subject: dsn\r\n\r\nthe body text\r\n",
         sender="alice@example.org"):
    """recipients: [(address, [rcpt options])]; returns the final reply code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender, list(mail_options))
        assert code == 250, (code, text)
        for address, options in recipients:
            code, text = s.rcpt(address, list(options))
            assert code == 250, (address, code, text)
        return s.data(body)[0]


def replies(port, commands):
    """The last reply line to each MAIL/RCPT pair, each in its own session."""
    out = []
    for mail, rcpt in commands:
        c = SmtpClient(port)
        c.read_reply()
        c.command("EHLO client.test")
        reply = c.command(mail)[-1]
        if rcpt and reply.startswith("250"):
            reply = c.command(rcpt)[-1]
        out.append(reply)
        c.command("QUIT")
        c.close()
    return out


class Dsn(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def start_lb(self, backend_port, pool_options=None, spool=None, listener_options=None,
                 server_options=None):
        port = free_port()
        pool = {"health": FAST_HEALTH, "connect_timeout": "1s"}
        pool.update(pool_options or {})
        text = configs.balancer(port, [("hub", backend_port)], pool_options=pool,
                                listener_options=listener_options, server_options=server_options)
        if spool is not None:
            text += configs.table("[spool]", spool)
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def test_parameters_arrive_as_a_direct_client_sends_them(self):
        pf = postfix(self.workdir, "full").start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb(pf.port)
        envelope = ([("bob@example.net", ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;b+40example.net"]),
                     ("carol@example.net", ["NOTIFY=NEVER"]),
                     ("dave@example.net", [])],
                    ["RET=HDRS", "ENVID=QQ+2B1"])
        self.assertEqual(send(pf.port, *envelope), 250)  # directly
        wait_until(lambda: len(held(pf)) == 1, what="the direct message held")
        self.assertEqual(send(port, *envelope), 250)  # through smtplb
        wait_until(lambda: len(held(pf)) == 2, what="the message through smtplb held")
        (direct, _), (through, _) = held(pf)
        self.assertIn("envelope_id=QQ+1", direct)
        self.assertIn("dsn_orig_rcpt=rfc822;b@example.net", direct)
        self.assertEqual(through, direct)
        # Postfix itself reports on success there (it announced DSN): smtplb sends nothing.
        time.sleep(1)
        self.assertEqual(len(held(pf)), 2)
        self.assertFalse(lb.log_lines("dsn_relayed_notice"))

    def test_the_backends_own_reports_are_the_ones_the_sender_asked_for(self):
        # Postfix delivers (discard) and bounces (error) after accepting, so
        # its own success and failure notices show in its log.
        pf = Postfix(self.workdir, "full", extra_main=(
            "smtpd_reject_unlisted_recipient = no\n"
            "transport_maps = inline:{ {nobody@example.net=error:5.1.1 no such user} }\n"))
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb(pf.port)

        def notices():
            log = "\n".join(pf.log_lines())
            return (log.count("sender delivery status notification"),
                    log.count("sender non-delivery notification"))

        def send_both(to_port):
            # Success asked for bob; nobody's failure: told (default), never (NEVER).
            self.assertEqual(send(to_port, [("bob@example.net", ["NOTIFY=SUCCESS"]),
                                            ("nobody@example.net", ["NOTIFY=NEVER"])]), 250)
            self.assertEqual(send(to_port, [("nobody@example.net", [])]), 250)

        send_both(pf.port)  # directly
        wait_until(lambda: notices() == (1, 1), timeout=20, what="Postfix's two notices")
        send_both(port)  # through smtplb
        wait_until(lambda: notices() == (2, 2), timeout=20,
                   what="the same two notices for the mail through smtplb")
        time.sleep(2)
        self.assertEqual(notices(), (2, 2))
        self.assertFalse(lb.log_lines("dsn_relayed_notice"))

    def test_bad_parameters_get_postfixs_replies(self):
        pf = Postfix(self.workdir, "full").start()
        self.addCleanup(pf.stop)
        nodsn = Postfix(self.workdir, "nodsn", extra_main="smtpd_discard_ehlo_keywords = dsn\n")
        nodsn.start()
        self.addCleanup(nodsn.stop)
        lb, port = self.start_lb(pf.port)
        lb_off, port_off = self.start_lb(pf.port, listener_options={"dsn": False})
        mail = "MAIL FROM:<alice@example.org>"
        rcpt = "RCPT TO:<bob@example.net>"
        bad = [(f"{mail} {p}", None) for p in
               ("RET=BAD", "RET=", "RET=FULL RET=HDRS", "ENVID=", "ENVID=ab+zz",
                "ENVID=a ENVID=b")]
        bad += [(mail, f"{rcpt} {p}") for p in
                ("NOTIFY=", "NOTIFY=BAD", "NOTIFY=NEVER,SUCCESS", "NOTIFY=SUCCESS NOTIFY=DELAY",
                 "ORCPT=b@example.net", "ORCPT=;b@x", "ORCPT=rfc822;a+zz",
                 "ORCPT=rfc822;b@x ORCPT=rfc822;c@x")]
        good = [(f"{mail} RET=hdrs ENVID=a+2b", f"{rcpt} NOTIFY=success,SUCCESS, "
                 "ORCPT=x-foo;bar")]
        direct = replies(pf.port, bad + good)
        self.assertTrue(all(r.startswith("501 5.5.4") for r in direct[:-1]), direct)
        self.assertEqual(replies(port, bad + good), direct)
        # Where DSN is not offered: "501 5.7.1 DSN support is disabled" alike.
        off = [(f"{mail} RET=FULL", None), (mail, f"{rcpt} NOTIFY=NEVER")]
        direct_off = replies(nodsn.port, off)
        self.assertEqual(direct_off, ["501 5.7.1 DSN support is disabled"] * 2)
        self.assertEqual(replies(port_off, off), direct_off)
        c = SmtpClient(port_off)
        c.read_reply()
        self.assertNotIn("250-DSN", c.command("EHLO client.test"))
        c.close()

    def test_a_backend_without_dsn_gets_none_and_the_sender_a_relayed_notice(self):
        pf = postfix(self.workdir, "nodsn", "smtpd_discard_ehlo_keywords = dsn\n").start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb(pf.port, pool_options={"on_unavailable": "spool"}, spool={})
        self.assertEqual(send(port, [
            ("bob@example.net", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+40example.net"]),
            ("carol@example.net", ["NOTIFY=FAILURE"]),
            ("dave@example.net", ["NOTIFY=NEVER"])], ["ENVID=E+2D1", "RET=FULL"]), 250)
        wait_until(lambda: len(held(pf)) == 2, timeout=20,
                   what="the message and smtplb's relayed notice at the backend")
        (message, _), (notice_fields, notice) = held(pf)
        # The backend announced no DSN: nothing of it was sent there.
        # (Postfix records each recipient as its own ORCPT: its default.)
        self.assertFalse([f for f in message if f.startswith(("envelope_id", "ret_flags",
                                                              "notify_flags"))], message)
        self.assertNotIn("dsn_orig_rcpt=rfc822;b@example.net", message)
        self.assertIn("sender: ", notice_fields)  # from <>
        self.assertIn("recipient: alice@example.org", notice_fields)
        self.assertIn("Action: relayed", notice)
        self.assertIn("Final-Recipient: rfc822; bob@example.net", notice)
        self.assertIn("Original-Recipient: rfc822;b@example.net", notice)
        self.assertIn("Original-Envelope-Id: E-1", notice)
        self.assertNotIn("carol@example.net", notice)  # FAILURE only: no word on success
        self.assertNotIn("dave@example.net", notice)
        self.assertNotIn("the body text", notice)  # headers only for a success
        self.assertEqual(len(lb.log_lines("event=dsn_relayed_notice")), 1)

    def test_without_a_spool_the_relayed_notice_is_logged_as_not_sent(self):
        pf = Postfix(self.workdir, "nodsn", extra_main="smtpd_discard_ehlo_keywords = dsn\n")
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb(pf.port)  # on_unavailable = "tempfail": no spool
        self.assertEqual(send(port, [("bob@example.net", ["NOTIFY=SUCCESS"])]), 250)
        wait_until(lambda: lb.log_lines("event=dsn_relayed_notice"), what="the notice's log line")
        (line,) = lb.log_lines("event=dsn_relayed_notice")
        self.assertIn("result=not_sent", line)

    def test_a_spooled_message_relayed_to_a_backend_without_dsn_gets_its_notice_too(self):
        pf = postfix(self.workdir, "nodsn", "smtpd_discard_ehlo_keywords = dsn\n")
        lb, port = self.start_lb(pf.port, pool_options={"on_unavailable": "spool"},
                                 spool={"retry_initial": "1s", "retry_max": "2s"},
                                 server_options={"admin": "127.0.0.1:0"})
        real = f'admin = "127.0.0.1:{lb.admin_port()}"'  # what the CLI needs
        with open(lb.config) as f:
            text = f.read().replace('admin = "127.0.0.1:0"', real)
        with open(lb.config, "w") as f:
            f.write(text)
        # The backend is down: the message goes to the spool, parameters and all.
        self.assertEqual(send(port, [("bob@example.net", ["NOTIFY=SUCCESS",
                                                          "ORCPT=rfc822;b+40example.net"]),
                                     ("carol@example.net", [])], ["ENVID=spooled-1"]), 250)
        (spool_id,) = os.listdir(os.path.join(self.workdir, "spool", "queue"))
        shown = subprocess.run([harness.SMTPLB, "queue", "--config", lb.config, "show", spool_id],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        shown = shown.stdout
        self.assertIn("envid              spooled-1", shown)
        self.assertIn("bob@example.net (pending) notify=SUCCESS orcpt=rfc822;b+40example.net",
                      shown)
        self.assertIn("carol@example.net (pending)\n", shown)
        pf.start()
        self.addCleanup(pf.stop)
        wait_until(lambda: len(held(pf)) == 2, timeout=30,
                   what="the spooled message and its relayed notice at the backend")
        notice = next(text for fields, text in held(pf) if "sender: " in fields)
        self.assertIn("Action: relayed", notice)
        self.assertIn("Original-Envelope-Id: spooled-1", notice)
        self.assertIn("Original-Recipient: rfc822;b@example.net", notice)
        self.assertNotIn("carol@example.net", notice)

    def test_the_spools_reports_honour_notify_ret_envid_and_orcpt(self):
        pf = postfix(self.workdir, "hub", (
            "smtpd_recipient_restrictions = check_recipient_access "
            "inline:{ {nobody@example.net=550 5.1.1 No such user}, "
            "{never@example.net=550 5.1.1 No such user}, "
            "{late@example.net=451 4.2.0 Try later} }, permit_mynetworks, "
            "reject_unauth_destination\n"))
        lb, port = self.start_lb(pf.port, pool_options={"on_unavailable": "spool"},
                                 spool={"retry_initial": "1s", "retry_max": "2s",
                                        "max_queue_lifetime": "12s",
                                        "delay_warning_time": "3s"})
        # Postfix is not running yet: everything is spooled.
        self.assertEqual(send(port, [
            ("bob@example.net", []),
            ("nobody@example.net", ["NOTIFY=FAILURE", "ORCPT=rfc822;No+2Bbody@example.net"]),
            ("never@example.net", ["NOTIFY=NEVER"])], ["RET=HDRS", "ENVID=hdrs-1"],
            body="Subject: headers only\r\n\r\nsecret body one\r\n"), 250)
        self.assertEqual(send(port, [("nobody@example.net", [])], ["RET=FULL"],
                              body="Subject: full\r\n\r\nwhole body two\r\n"), 250)
        self.assertEqual(send(port, [("late@example.net", ["NOTIFY=NEVER"])],
                              body="Subject: quiet\r\n\r\nexpires quietly\r\n"), 250)
        self.assertEqual(send(port, [("late@example.net", ["NOTIFY=DELAY"])],
                              body="Subject: delayed\r\n\r\ndelay only\r\n"), 250)
        pf.start()
        self.addCleanup(pf.stop)
        wait_until(lambda: not os.listdir(os.path.join(self.workdir, "spool", "queue")),
                   timeout=60, what="delivery, bounces and expiry")
        time.sleep(1)
        reports = [text for fields, text in held(pf) if "sender: " in fields]
        subjects = sorted(r.split("Subject: ")[1].split("\n")[0] for r in reports)
        self.assertEqual(subjects, ["Delayed Mail (still being retried)",
                                    "Undelivered Mail Returned to Sender",
                                    "Undelivered Mail Returned to Sender"], subjects)
        headers_only = next(r for r in reports if "hdrs-1" in r)
        self.assertIn("Original-Envelope-Id: hdrs-1", headers_only)
        self.assertIn("Final-Recipient: rfc822; nobody@example.net", headers_only)
        self.assertIn("Original-Recipient: rfc822;No+body@example.net", headers_only)
        self.assertIn("Content-Type: text/rfc822-headers", headers_only)
        self.assertIn("Subject: headers only", headers_only)
        self.assertNotIn("secret body one", headers_only)
        self.assertNotIn("never@example.net", headers_only)  # NOTIFY=NEVER
        full = next(r for r in reports if "whole body two" in r)
        self.assertIn("Content-Type: message/rfc822", full)
        delayed = next(r for r in reports if "Action: delayed" in r)
        self.assertIn("Subject: delayed", delayed)
        self.assertIn("Will-Retry-Until:", delayed)
        # NOTIFY=NEVER expired without a word; NOTIFY=DELAY got no failure report.
        self.assertFalse([r for r in reports if "Subject: quiet" in r])
        self.assertEqual(len([r for r in reports if "Subject: delayed" in r]), 1)


if __name__ == "__main__":
    main()
