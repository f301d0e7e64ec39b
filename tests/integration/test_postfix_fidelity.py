"""Identity fidelity against real Postfix (issue 22): every message a backend
accepts through smtplb is attributed, in Postfix's own log and Received:
header, to the client that sent it, never to an earlier client of a reused
backend connection; and a backend connection is not kept past
pool.max_connection_age (a reloaded Postfix is used with its new settings).

Transparency (DESIGN.md): the backend judges the client as if it had
connected directly: same address, same HELO, one identity per connection."""
import smtplib
import threading
import time

import configs
import fidelity
from harness import Postfix, Smtplb, WorkdirTestCase, free_port, main, postfix_available, wait_until

CLIENTS = [(f"127.0.0.{10 + n}", f"client-{n}.example") for n in range(8)]
MESSAGES_PER_CLIENT = 3


def send_as(port, address, helo, count=MESSAGES_PER_CLIENT):
    """One session from `address` with EHLO `helo`; returns the queue id of
    each message (from the 250 reply to end of data)."""
    ids = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, source_address=(address, 0),
                      timeout=60) as s:
        s.ehlo()
        for i in range(count):
            code, text = s.mail("alice@example.org")
            assert code == 250, (address, "MAIL", code, text)
            code, text = s.rcpt("bob@example.net")
            assert code == 250, (address, "RCPT", code, text)
            code, text = s.data(f"Subject: {helo} {i}\r\n\r\nfrom {address}\r\n")
            assert code == 250, (address, "DATA", code, text)
            ids.append(fidelity.queue_id(text))
            assert ids[-1], (address, "no queue id in", text)
    return ids


def send_all(port, parallel):
    """Every client sends its messages, one after the other or all at once;
    returns [(address, helo, queue id)]."""
    sent, errors = [], []

    def client(address, helo):
        try:
            sent.extend((address, helo, q) for q in send_as(port, address, helo))
        except Exception as e:  # reported by the test's thread
            errors.append(f"{address}: {e!r}")

    if not parallel:
        for address, helo in CLIENTS:
            client(address, helo)
    else:
        threads = [threading.Thread(target=client, args=c) for c in CLIENTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    return sent


def misattributed(postfix, sent):
    """Messages whose Postfix client= line or Received: header names another
    address or HELO than those of the client that sent them, one per line."""
    seen = fidelity.wait_for_messages(postfix, [q for _, _, q in sent])
    wrong = []
    for address, helo, q in sent:
        m = seen[q]
        if (m["addr"], m["received_addr"], m["helo"], m["session_helo"]) != (address, address,
                                                                              helo, helo):
            wrong.append(f"{q} sent by {address} (EHLO {helo}): Postfix logged "
                         f"client={m['name']}[{m['addr']}], Received: from {m['helo']} "
                         f"({m['received_name']} [{m['received_addr']}]) helo=<{m['session_helo']}>")
    return wrong


class EachMessageUnderItsOwnClient(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def postfix(self, name, smtpd_args=""):
        pf = Postfix(self.workdir, name, smtpd_args=smtpd_args,
                     extra_main=fidelity.header_checks(self.workdir))
        pf.start()
        self.addCleanup(pf.stop)
        return pf

    def check_through_smtplb(self, pf, identity):
        for threads in (1, 2):
            with self.subTest(identity=identity, threads=threads):
                port = free_port()
                lb = Smtplb(self.workdir,
                            configs.balancer(port, [("hub", pf.port)],
                                             listener_options={"client_identity": identity},
                                             server_options={"threads": threads}),
                            name=f"{identity}-{threads}")
                lb.start(port)
                try:
                    sent = send_all(port, parallel=False) + send_all(port, parallel=True)
                    self.assertEqual(len(sent), 2 * len(CLIENTS) * MESSAGES_PER_CLIENT)
                    problems = misattributed(pf, sent)
                    in_postfix = len(problems)
                    # smtplb's tracking log: the client, and the identity it presented.
                    wait_until(lambda: len(lb.tracking_records()) >= len(sent), what="tracking records")
                    tracked = {r.get("queue_id"): r for r in lb.tracking_records()}
                    for address, _, q in sent:
                        r = tracked.get(q, {})
                        if (r.get("client"), r.get("identity")) != (address, identity):
                            problems.append(f"{q} sent by {address}: tracking log says client="
                                            f"{r.get('client')} identity={r.get('identity')}")
                    if problems:
                        self.fail(f"of {len(sent)} messages, {in_postfix} under another address or "
                                  f"HELO in Postfix's log, {len(problems) - in_postfix} with another "
                                  "client or identity in the tracking log; e.g.:\n"
                                  + "\n".join(problems[:3] + problems[in_postfix:][:3]))
                finally:
                    lb.stop()

    def test_xclient_each_message_under_its_own_client(self):
        pf = self.postfix("hub")
        # Straight to Postfix first: what "its own client" looks like in its log.
        direct = []
        for address, helo in CLIENTS:
            direct += [(address, helo, q) for q in send_as(pf.port, address, helo, count=1)]
        self.assertEqual(misattributed(pf, direct), [], "straight to Postfix")
        self.check_through_smtplb(pf, "xclient")

    def test_proxy_v2_each_message_under_its_own_client(self):
        # In this mode Postfix takes the HELO from the EHLO on the connection:
        # smtplb repeats the client's own on its dedicated connection.
        pf = self.postfix("proxied", smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy")
        self.check_through_smtplb(pf, "proxy-v2")


class BackendReload(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def test_connection_older_than_max_connection_age_is_not_reused_after_reload(self):
        pf = Postfix(self.workdir, "hub", extra_main=fidelity.header_checks(self.workdir))
        pf.start()
        self.addCleanup(pf.stop)
        port = free_port()
        # One event loop: its cache holds the connection (each loop has its own).
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("hub", pf.port)], server_options={"threads": 1},
            pool_options={"max_connection_age": "2s", "health": {"enabled": False}}))
        lb.start(port)
        self.addCleanup(lb.stop)
        client = ("127.0.0.40", "reload.example")
        first, = send_as(port, *client, count=1)
        seen = fidelity.wait_for_messages(pf, [first])
        before = fidelity.smtpd_pids(pf)  # idle ones included: Postfix starts them ahead
        self.assertIn(seen[first]["pid"], before)
        # After a reload Postfix's old smtpd processes serve the connections
        # they have until those close: a cached connection would keep the
        # old configuration in use indefinitely.
        pf.reload()
        wait_until(lambda: any("reload -- version" in l for l in pf.log_lines()),
                   what="Postfix logging its reload")
        time.sleep(3)
        second, = send_as(port, *client, count=1)
        seen = fidelity.wait_for_messages(pf, [second])
        self.assertEqual(misattributed(pf, [(*client, first), (*client, second)]), [])
        self.assertNotIn(seen[second]["pid"], before,
                         f"the message after the reload was handled by smtpd[{seen[second]['pid']}], "
                         f"a process from before the reload (pids {sorted(before)}): "
                         "smtplb reused a connection older than max_connection_age")


if __name__ == "__main__":
    main()
