"""CHUNKING/BDAT (RFC 3030) through smtplb to real Postfix backends, compared
with the same client talking to Postfix directly (DESIGN.md: transparency):
messages of 1, 2 and 100 chunks arrive in the backend's mailbox as they do
directly, to a backend that offers CHUNKING (smtplb sends BDAT) and to one
that does not (smtplb sends DATA, dot-stuffed), with one event loop and two."""
import os
import socket
import time

import configs
from harness import (Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available,
                     read_replies, wait_until)


def mailbox_postfix(workdir, name, extra_main=""):
    """A Postfix whose every message is written to a file of its own (pipe
    to cat), so a test can read what the backend took."""
    pf = Postfix(workdir, name, extra_main=(
        "default_transport = dump\nrelay_transport = dump\n"
        # Nothing added or rewritten for clients on loopback: the comparison
        # is of what the client sent.
        "local_header_rewrite_clients =\n" + extra_main))
    box = os.path.join(pf.dir, "mailbox")
    os.makedirs(box)
    os.chmod(box, 0o777)
    with open(os.path.join(pf.conf, "master.cf"), "a") as f:
        # Written under a dot name, then renamed: a reader never sees half a message.
        f.write("dump unix - n n - - pipe flags= user=nobody "
                f"argv=/bin/sh -c {{ cat>{box}/.$$1 && mv {box}/.$$1 {box}/$$1 }} sh ${{queue_id}}\n")
    pf.mailbox = box
    return pf


def message(subject, size):
    """A message with what framing could get wrong: dot lines, a line that
    reads as a command, 8-bit text, lines of every length."""
    head = (f"From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\n"
            f"Date: Thu, 3 Dec 2026 18:00:00 +0000\r\nMessage-ID: <{subject}@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode()
    body = b".\r\n..two\r\n.\r\nRCPT TO:<c@example.net>\r\nDATA\r\n" + "Grüße\r\n".encode()
    n = 0
    while len(body) < size:
        body += b"." * (n % 3) + b"line %d " % n + b"x" * (n % 70) + b"\r\n"
        n += 1
    return head + body


def split(data, chunks):
    """`chunks` pieces; with more than one, a cut falls between a CR and its LF."""
    if chunks == 1:
        return [data]
    cuts = sorted({data.index(b"\r\n", len(data) // 3) + 1} |
                  {len(data) * k // chunks for k in range(1, chunks)})
    bounds = [0] + cuts + [len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def send_bdat(port, data, chunks):
    """EHLO, then MAIL, RCPT and every BDAT chunk pipelined; the replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        read_replies(s, 1)
        s.sendall(b"EHLO client.example\r\n")
        ehlo = read_replies(s, 1)
        pieces = split(data, chunks)
        out = b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@example.net>\r\n"
        for i, piece in enumerate(pieces):
            out += b"BDAT %d%s\r\n" % (len(piece), b" LAST" if i == len(pieces) - 1 else b"")
            out += piece
        s.sendall(out)
        replies = read_replies(s, 2 + len(pieces))
        s.sendall(b"QUIT\r\n")
        return ehlo, replies


def delivered(pf, subject):
    """The mailbox file holding `subject`, without the Received header
    Postfix put on top (it names the client and the queue id)."""
    for name in os.listdir(pf.mailbox):
        if name.startswith("."):  # still being written
            continue
        with open(os.path.join(pf.mailbox, name), "rb") as f:
            text = f.read()
        if f"Subject: {subject}\n".encode() in text:
            assert text.startswith(b"Received: "), text[:200]
            end = text.index(b"\n", 0)
            while text[end + 1:end + 2] in (b" ", b"\t"):
                end = text.index(b"\n", end + 1)
            return text[end + 1:]
    return None


class PostfixBdat(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        self.full = mailbox_postfix(self.workdir, "full")
        self.seven = mailbox_postfix(self.workdir, "nochunk",
                                     "smtpd_discard_ehlo_keywords = chunking\n")
        for pf in (self.full, self.seven):
            pf.start()
            self.addCleanup(pf.stop)

    def start_balancer(self, pf, threads):
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(os.path.basename(pf.dir), pf.port)],
            pool_options={"health": {"enabled": False}},
            server_options={"threads": threads}), name=f"lb-{os.path.basename(pf.dir)}-{threads}")
        lb.start(port)
        self.addCleanup(lb.stop)
        return port, lb

    def wait_for(self, pf, subject):
        wait_until(lambda: delivered(pf, subject) is not None, timeout=30,
                   what=f"{subject} in {pf.dir}'s mailbox")
        return delivered(pf, subject)

    def test_chunks_arrive_as_they_do_directly(self):
        # The reference: the client's BDATs straight to the Postfix that offers CHUNKING.
        sizes = {1: 3000, 2: 9000, 100: 120000}
        for chunks, size in sizes.items():
            subject = f"direct-{chunks}"
            ehlo, replies = send_bdat(self.full.port, message(subject, size), chunks)
            self.assertIn("250 CHUNKING", ehlo)
            self.assertTrue(replies[-1].startswith("250 2.0.0 Ok"), replies)
        for threads in (1, 2):
            for pf in (self.full, self.seven):
                port, lb = self.start_balancer(pf, threads)
                for chunks, size in sizes.items():
                    subject = f"via-{os.path.basename(pf.dir)}-{threads}-{chunks}"
                    ehlo, replies = send_bdat(port, message(subject, size), chunks)
                    self.assertIn("250 CHUNKING", ehlo)
                    self.assertEqual(replies[:2], ["250 2.1.0 Ok", "250 2.1.5 Ok"])
                    # One 250 per chunk; the last is Postfix's own.
                    self.assertTrue(all(r.startswith("250 2.0.0 Ok: ") for r in replies[2:-1]),
                                    replies)
                    self.assertTrue(replies[-1].startswith("250 2.0.0 Ok"), replies[-1])
                    got = self.wait_for(pf, subject)
                    want = self.wait_for(self.full, f"direct-{chunks}").replace(
                        f"direct-{chunks}".encode(), subject.encode())
                    self.assertEqual(got, want, (pf.dir, threads, chunks))
                records = lb.tracking_records()
                self.assertEqual(len(records), len(sizes))
                self.assertTrue(all(r["result"] == "relayed" for r in records), records)
                lb.stop()  # its backend connections close: smtpd logs their commands
        # What went to each backend: BDAT where it is offered, else DATA
        # (smtpd counts each session's commands when it ends).
        def sessions(pf, command):
            return [l for l in pf.log_lines() if "disconnect from" in l and f" {command}=" in l]
        wait_until(lambda: len(sessions(self.full, "bdat")) >= 3 + 2, what="full's BDAT sessions")
        wait_until(lambda: len(sessions(self.seven, "data")) >= 2, what="nochunk's DATA sessions")
        self.assertEqual(sessions(self.full, "data"), [])
        self.assertEqual(sessions(self.seven, "bdat"), [])

    def test_a_data_client_gets_data_at_a_chunking_backend(self):
        # The client's verb goes on where the backend takes it: its final
        # reply is then the one it gets from that backend directly.
        import smtplib
        data = message("data-client", 20000)
        lb_port, lb = self.start_balancer(self.full, 1)
        replies = {}
        for name, port in (("direct", self.full.port), ("via", lb_port)):
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as s:
                s.ehlo()
                s.mail("a@example.org", ["BODY=8BITMIME"])
                s.rcpt("b@example.net")
                code, text = s.data(data.replace(b"data-client", name.encode() + b"-data-client"))
                replies[name] = (code, text.decode().rsplit(" ", 1)[0])
        self.assertEqual(replies["via"], replies["direct"])
        self.assertEqual(replies["via"], (250, "2.0.0 Ok: queued as"))
        self.assertEqual(self.wait_for(self.full, "via-data-client"),
                         self.wait_for(self.full, "direct-data-client").replace(b"direct-", b"via-"))
        lb.stop()
        wait_until(lambda: sum("disconnect from" in l for l in self.full.log_lines()) >= 2,
                   what="both sessions' ends")
        self.assertFalse([l for l in self.full.log_lines() if " bdat=" in l])


if __name__ == "__main__":
    main()
