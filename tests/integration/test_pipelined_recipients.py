"""Recipients a client pipelines (RFC 2920) go to the backend together
(issue 29): real Postfix answers the same group with the same replies, in
the same order, through smtplb as directly (known, unknown, refused and
deferred recipients mixed, and a group with none accepted), delivers to the
same recipients, with one event loop and two and over a reused backend
connection; and the backend receives a pipelined group's recipients in one
read (the built-in sink counts them), not one round trip each; and replies
already known reach the client while a slow backend is still answering the
rest, as they would directly."""
import os
import re
import socket
import threading

import configs
import fidelity
from harness import (Postfix, ScriptedBackend, Sink, Smtplb, WorkdirTestCase, free_port, main,
                     postfix_available, read_replies, wait_until)

KNOWN = [f"u{n}@example.net" for n in range(1, 9)]
# (recipient, what Postfix answers it): check_recipient_access, then the
# relay recipient table.
ACCESS = {"full@example.net": "452 4.2.2 Mailbox full",
          "moved@example.net": "550 5.1.6 Recipient moved"}
GROUP = ["u1@example.net", "nobody@example.net", "u2@example.net", "full@example.net",
         "u3@example.net", "moved@example.net", "u4@example.net", "ghost@example.net",
         "u5@example.net", "u6@example.net", "u7@example.net", "u8@example.net"]
REFUSED_GROUP = ["nobody@example.net", "moved@example.net", "full@example.net"]


def send_pipelined(port, source, groups):
    """One session from `source`: for each group of recipients, MAIL, every
    RCPT and DATA in one write, then the message if DATA got 354. Returns the
    replies, queue ids replaced by Q."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=30,
                                  source_address=(source, 0)) as s:
        read_replies(s, 1)
        s.sendall(b"EHLO pipelining.example\r\n")
        read_replies(s, 1)
        for n, group in enumerate(groups):
            out = b"MAIL FROM:<alice@example.org>\r\n"
            out += b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in group)
            s.sendall(out + b"DATA\r\n")
            got = read_replies(s, len(group) + 2)
            if got[-1].startswith("354"):
                s.sendall(b"Subject: group %d\r\n\r\nhello\r\n.\r\n" % n)
                got += read_replies(s, 1)
            replies.append([re.sub(r"queued as \w+", "queued as Q", r) for r in got])
        s.sendall(b"QUIT\r\n")
    return replies


class PipelinedRecipientsAtPostfix(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        tables = os.path.join(self.workdir, "tables")
        os.makedirs(tables)
        with open(os.path.join(tables, "relay_recipients"), "w") as f:
            f.writelines(f"{r} ok\n" for r in KNOWN)
        with open(os.path.join(tables, "rcpt_access"), "w") as f:
            f.writelines(f"{r} {reply}\n" for r, reply in ACCESS.items())
        self.postfix = Postfix(self.workdir, "pf", extra_main=(
            f"relay_recipient_maps = texthash:{tables}/relay_recipients\n"
            f"smtpd_recipient_restrictions = check_recipient_access texthash:{tables}/rcpt_access\n"))
        self.postfix.start()
        self.addCleanup(self.postfix.stop)

    def test_replies_and_deliveries_as_directly(self):
        groups = [GROUP, REFUSED_GROUP, GROUP[:3]]
        direct = send_pipelined(self.postfix.port, "127.0.0.20", groups)
        # What Postfix says to this group, checked so the comparison means something.
        self.assertEqual(direct[0][0], "250 2.1.0 Ok")
        self.assertEqual(direct[0][2], "550 5.1.1 <nobody@example.net>: Recipient address "
                                       "rejected: User unknown in relay recipient table")
        self.assertEqual(direct[0][4], "452 4.2.2 <full@example.net>: Recipient address rejected: "
                                       "Mailbox full")
        self.assertEqual(direct[0][-1], "250 2.0.0 Ok: queued as Q")
        self.assertEqual(direct[1][-1], "554 5.5.1 Error: no valid recipients")
        want_sent = sorted(r for r in GROUP if r in KNOWN)
        for threads in (1, 2):
            port = free_port()
            lb = Smtplb(self.workdir, configs.balancer(
                port, [("pf", self.postfix.port)], pool_options={"health": {"enabled": False}},
                server_options={"threads": threads}), name=f"lb{threads}")
            lb.start(port)
            # Two sessions, one after the other: the second reuses the
            # backend connection (under its own client's identity).
            for source in ("127.0.0.21", "127.0.0.22"):
                via = send_pipelined(port, source, groups)
                self.assertEqual(via, direct, (threads, source))
            lb.stop()
        # Each accepted message went to the accepted recipients only, once.
        def full_groups():
            return [d for d in fidelity.deliveries(self.postfix).values()
                    if d.get("nrcpt") == len(want_sent) and len(d["sent"]) == len(want_sent)]
        wait_until(lambda: len(full_groups()) == 5, timeout=30, what="five 8-recipient deliveries")
        for d in full_groups():
            self.assertEqual(sorted(d["sent"]), want_sent)
        # Each message was judged as from its own client (XCLIENT), never the last one's.
        clients = {m["addr"] for m in fidelity.messages(self.postfix).values() if "addr" in m}
        self.assertEqual(clients, {"127.0.0.20", "127.0.0.21", "127.0.0.22"})


class PipelinedRecipientsInOneRead(WorkdirTestCase):
    def test_a_group_reaches_the_backend_together(self):
        sink = Sink(self.workdir, "sink").start()
        self.addCleanup(sink.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(port, [("sink", sink.port)]), name="lb")
        lb.start(port)
        self.addCleanup(lb.stop)
        small = [f"r{n}@example.net" for n in range(10)]
        large = [f"r{n}@example.net" for n in range(40)]
        replies = send_pipelined(port, "127.0.0.1", [small, large, small[:1]])
        self.assertEqual(replies[1][1:-2], ["250 2.1.5 Ok"] * 40)
        self.assertTrue(all(r[-1].startswith("250 2.0.0") for r in replies), replies)
        wait_until(lambda: len(sink.messages()) == 3, what="the messages at the sink")
        first, second, third = sink.messages()
        self.assertEqual(first["rcpt"], small)  # in order
        self.assertEqual(second["rcpt"], large)
        # The recipients go with MAIL, in one write. One by one, that would
        # be a read each.
        self.assertEqual(first["rcpt_reads"], 1, first)
        # A group larger than the 512 bytes an idle session reads into (RFC
        # 5321's command line) is taken whole too: what has arrived of it
        # is read at once, not after the first part's replies.
        self.assertEqual(second["rcpt_reads"], 1, second)
        self.assertEqual(third["rcpt_reads"], 1, third)


class RepliesWhileTheBackendIsSlow(WorkdirTestCase):
    def test_known_replies_are_not_held_behind_a_slow_one(self):
        # Postfix slows its replies after errors (smtpd_error_sleep_time);
        # directly, a client reads each reply as it comes.
        release = threading.Event()

        def answer(line):
            verb = line.split(" ", 1)[0].upper()
            if verb == "RCPT" and "slow@" in line:
                release.wait(60)
            return {"MAIL": b"250 2.1.0 Ok\r\n", "RCPT": b"250 2.1.5 Ok\r\n",
                    "DATA": b"354 go ahead\r\n", "RSET": b"250 2.0.0 Ok\r\n",
                    "QUIT": b"221 2.0.0 Bye\r\n"}.get(verb, b"250 Ok\r\n")

        backend = ScriptedBackend(answer)
        self.addCleanup(backend.stop)
        self.addCleanup(release.set)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("scripted", backend.port)], pool_options={"health": {"enabled": False}}),
            name="lb")
        lb.start(port)
        self.addCleanup(lb.stop)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            read_replies(s, 1)
            s.sendall(b"EHLO pipelining.example\r\n")
            read_replies(s, 1)
            s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.net>\r\n"
                      b"RCPT TO:<r2@example.net>\r\nRCPT TO:<slow@example.net>\r\n"
                      b"RCPT TO:<r3@example.net>\r\nDATA\r\n")
            # The backend holds its reply to slow@ until released: the three
            # before it must arrive meanwhile (a read timeout fails the test).
            self.assertEqual(read_replies(s, 3), ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"])
            release.set()
            self.assertEqual(read_replies(s, 3), ["250 2.1.5 Ok", "250 2.1.5 Ok",
                                                  "354 End data with <CR><LF>.<CR><LF>"])
            s.sendall(b"Subject: slow\r\n\r\nhello\r\n.\r\n")
            self.assertTrue(read_replies(s, 1)[0].startswith("250 2.0.0"))


if __name__ == "__main__":
    main()
