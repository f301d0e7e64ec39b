"""Shared by the Postfix fidelity tests: what a real Postfix says about each
message it accepted (from its own log), and a client script whose every
reply is recorded, so a session through smtplb can be compared with the same
session straight to Postfix."""
import os
import re

from harness import SmtpClient, wait_until

_CLIENT = re.compile(r"postfix/smtpd\[(\d+)\]: (\w+): client=([^\s\[]+)\[([^\]]+)\]")
# Postfix logs the Received: header it writes (header_checks WARN), which
# names the HELO, client name and address it judged, then the session's helo=<>.
_RECEIVED = re.compile(r": (\w+): warning: header Received: from (\S+) \((\S+) \[([^\]]+)\]\)"
                       r".* helo=<([^>]*)>$")


def header_checks(workdir):
    """The main.cf line that makes Postfix log every message's Received: header."""
    path = os.path.join(workdir, "header_checks")
    with open(path, "w") as f:
        f.write("/^Received: from / WARN\n")
    return f"header_checks = regexp:{path}\n"


def messages(postfix):
    """{queue id: {"pid", "name", "addr"} from smtpd's client= line, plus
    "helo", "received_name", "received_addr", "session_helo" from the
    Received: header's line when it is there}."""
    found = {}
    for line in postfix.log_lines():
        m = _CLIENT.search(line)
        if m:
            found.setdefault(m.group(2), {}).update(pid=int(m.group(1)), name=m.group(3),
                                                     addr=m.group(4))
        m = _RECEIVED.search(line)
        if m:
            found.setdefault(m.group(1), {}).update(helo=m.group(2), received_name=m.group(3),
                                                     received_addr=m.group(4),
                                                     session_helo=m.group(5))
    return found


def wait_for_messages(postfix, queue_ids, timeout=30):
    """Waits until Postfix logged both lines for every queue id; returns messages()."""
    def complete():
        seen = messages(postfix)
        return all("addr" in seen.get(q, {}) and "helo" in seen.get(q, {}) for q in queue_ids)
    wait_until(complete, timeout=timeout, what=f"Postfix logging {len(queue_ids)} messages")
    return messages(postfix)


def smtpd_pids(postfix):
    """Every smtpd process that has logged anything so far."""
    return {int(m.group(1)) for line in postfix.log_lines()
            for m in [re.search(r"postfix/smtpd\[(\d+)\]", line)] if m}


def queue_id(reply_text):
    """The queue id in a 250 reply to end of data ("2.0.0 Ok: queued as 3F2A…")."""
    if isinstance(reply_text, bytes):
        reply_text = reply_text.decode(errors="replace")
    m = re.search(r"queued as (\w+)", reply_text)
    return m.group(1) if m else None


def reply_key(lines):
    """(code, enhanced code or "", text after them) of a reply's last line."""
    last = lines[-1]
    code, rest = last[:3], last[4:]
    m = re.match(r"([245]\.\d{1,3}\.\d{1,3}) ?(.*)", rest)
    return (code, m.group(1), m.group(2)) if m else (code, "", rest)


def run_script(port, source, helo):
    """One session, every reply recorded as [(step, (code, enhanced, text))]:
    banner, EHLO helo (bytes, sent verbatim), MAIL, RCPT, DATA (and the
    message, when DATA got 354), RSET, QUIT."""
    c = SmtpClient(port, source=source, timeout=30)
    steps = []
    try:
        steps.append(("banner", reply_key(c.read_reply())))
        for step, line in (("EHLO", b"EHLO " + helo), ("MAIL", b"MAIL FROM:<alice@example.org>"),
                           ("RCPT", b"RCPT TO:<bob@example.net>"), ("DATA", b"DATA")):
            c.send(line + b"\r\n")
            steps.append((step, reply_key(c.read_reply())))
        if steps[-1][1][0] == "354":
            c.send("Subject: fidelity\r\n\r\nhello\r\n.\r\n")
            steps.append(("end of data", reply_key(c.read_reply())))
        for step in ("RSET", "QUIT"):
            c.send(step + "\r\n")
            steps.append((step, reply_key(c.read_reply())))
    finally:
        c.close()
    return steps


_CLEANUP_ID = re.compile(r"postfix/cleanup\[\d+\]: (\w+): message-id=<?([^>\s]*)>?")
_QMGR_FROM = re.compile(r"postfix/qmgr\[\d+\]: (\w+): from=<([^>]*)>, size=(\d+), nrcpt=(\d+)")
_SENT = re.compile(r"postfix/\w+\[\d+\]: (\w+): to=<([^>]*)>,.* status=sent ")


def deliveries(postfix):
    """What Postfix accepted and delivered, from its log: {queue id:
    {"message_id", "sender", "size", "nrcpt", "sent": [recipient, …]}}
    (keys appear as their log lines do; "sent" lists every delivery that
    ended status=sent, a recipient twice if it was delivered twice)."""
    found = {}
    for line in postfix.log_lines():
        m = _CLEANUP_ID.search(line)
        if m:
            found.setdefault(m.group(1), {"sent": []})["message_id"] = m.group(2)
            continue
        m = _QMGR_FROM.search(line)
        if m:
            found.setdefault(m.group(1), {"sent": []}).update(
                sender=m.group(2), size=int(m.group(3)), nrcpt=int(m.group(4)))
            continue
        m = _SENT.search(line)
        if m:
            found.setdefault(m.group(1), {"sent": []})["sent"].append(m.group(2))
    return found


def delivered_with(postfix, **match):
    """The deliveries() whose fields equal every one given (message_id=…,
    sender=…), as {queue id: delivery}."""
    return {q: d for q, d in deliveries(postfix).items()
            if all(d.get(k) == v for k, v in match.items())}
