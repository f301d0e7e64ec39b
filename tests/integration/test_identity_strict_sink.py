"""smtplb in front of one Postfix-strict sink (`smtplb sink --xclient-strict`):
like Postfix 3.7's smtpd, it takes XCLIENT only while the current client is
authorised (127.0.0.1/32, the balancer), so a backend connection that carried
one client's XCLIENT cannot be handed to another client.

Every recorded message must carry its own client's address and HELO, with
clients in sequence and in parallel; a client whose HELO cannot be passed
(150 '+', 450 bytes as xtext: Postfix says "501 5.5.4 Error: attribute value
too long") must not cost the next client its message nor the backend its
health.

These failed before one identity per backend connection (2026-12-03): a
reused connection carried later clients' mail with no XCLIENT, and an
identity split over two XCLIENT commands drew a 550 that took the backend
out.
"""
import json
import smtplib
import subprocess
import threading

import configs
import harness
from harness import Sink, Smtplb, WorkdirTestCase, free_port, main, wait_until

CLIENTS = [(f"127.0.0.{10 + i}", f"client{i}.example") for i in range(8)]
MESSAGES_PER_CLIENT = 3


def subject_of(record):
    for line in record["body"].split("\r\n"):
        if line.startswith("Subject: "):
            return line[len("Subject: "):]
    return None


class IdentityWithStrictSink(WorkdirTestCase):
    def start(self):
        self.sink = Sink(self.workdir, "strict", strict=True).start()
        self.addCleanup(self.sink.stop)
        self.port = free_port()
        self.lb = Smtplb(self.workdir, configs.balancer(
            self.port, [("strict", self.sink.port)], server_options={"admin": "127.0.0.1:0"}))
        self.lb.start(self.port)
        self.addCleanup(self.lb.stop)

    def session(self, source, helo, tag, results):
        """One connection from `source`, MESSAGES_PER_CLIENT messages; the
        outcome of each is put in results[subject]."""
        try:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname=helo,
                              source_address=(source, 0), timeout=30) as s:
                for k in range(MESSAGES_PER_CLIENT):
                    subject = f"{tag}-{source}-{k}"
                    try:
                        s.sendmail("alice@example.org", ["bob@example.net"],
                                   f"Subject: {subject}\r\n\r\nfrom {source}\r\n")
                        results[subject] = "relayed"
                    except smtplib.SMTPException as e:
                        results[subject] = f"refused: {e}"
        except (OSError, smtplib.SMTPException) as e:
            results[f"{tag}-{source}-session"] = f"session failed: {e}"

    def backend_health(self):
        admin = f"127.0.0.1:{self.lb.admin_port()}"
        status = subprocess.run([harness.SMTPLB, "status", "--admin", admin, "--json"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(status.returncode, 0, status.stderr)
        backends = json.loads(status.stdout)["pools"][0]["backends"]
        return {b["name"]: b["health"] for b in backends}

    def check_identities(self, tag, expected_count):
        wait_until(lambda: len([r for r in self.sink.messages()
                                if (subject_of(r) or "").startswith(tag)]) >= expected_count,
                   what=f"{tag}: {expected_count} messages at the sink")
        helo_of = dict(CLIENTS)
        for record in self.sink.messages():
            subject = subject_of(record)
            if not subject or not subject.startswith(tag):
                continue
            source = subject.split("-")[1]
            # XCLIENT ADDR and the HELO the backend records: the message's own client.
            self.assertEqual(record["client"], source, record)
            self.assertEqual(record["helo"], helo_of[source], record)

    def test_clients_in_sequence_each_get_their_own_identity(self):
        self.start()
        results = {}
        for source, helo in CLIENTS:
            self.session(source, helo, "seq", results)
        self.assertEqual({k: v for k, v in results.items() if v != "relayed"}, {})
        self.assertEqual(len(results), len(CLIENTS) * MESSAGES_PER_CLIENT)
        self.check_identities("seq", len(CLIENTS) * MESSAGES_PER_CLIENT)
        self.assertEqual(self.backend_health(), {"strict": "up"})

    def test_clients_in_parallel_each_get_their_own_identity(self):
        self.start()
        results = {}
        for round_ in range(2):
            threads = [threading.Thread(target=self.session,
                                        args=(source, helo, f"par{round_}", results))
                       for source, helo in CLIENTS]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual({k: v for k, v in results.items() if v != "relayed"}, {})
        for round_ in range(2):
            self.check_identities(f"par{round_}", len(CLIENTS) * MESSAGES_PER_CLIENT)
        self.assertEqual(self.backend_health(), {"strict": "up"})

    def test_a_helo_that_cannot_be_passed_does_not_hurt_the_next_client(self):
        self.start()
        results = {}
        # Whatever happens to this one (Postfix would refuse its XCLIENT)...
        self.session("127.0.0.20", "+" * 150, "long", results)
        # ...the next client's mail goes through with its own identity.
        source, helo = CLIENTS[0]
        self.session(source, helo, "next", results)
        self.assertEqual({k: v for k, v in results.items()
                          if k.startswith("next") and v != "relayed"}, {})
        self.check_identities("next", MESSAGES_PER_CLIENT)
        # And a message the sink recorded for the long-HELO client carries
        # that client's address, never the balancer's or another client's.
        for record in self.sink.messages():
            if (subject_of(record) or "").startswith("long"):
                self.assertEqual(record["client"], "127.0.0.20", record)
        self.assertEqual(self.backend_health(), {"strict": "up"})


if __name__ == "__main__":
    main()
