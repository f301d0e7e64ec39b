"""The client's host name, looked up the way Postfix's smtpd does (reverse,
then forward-confirmed), against a private NSD: smtplb's tracking log names
the verified client (`client_name`), [UNAVAILABLE] when the PTR's addresses
do not list the client or there is no PTR, and [TEMPUNAVAIL] when the DNS
server does not answer; behind a PROXY header the named client is looked up."""
import smtplib
import socket

import configs
from harness import Nsd, Smtplb, WorkdirTestCase, free_port, main, wait_until

SOA = "@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n@ IN NS ns.test.\n"
ZONES = {
    "0.0.127.in-addr.arpa": "$ORIGIN 0.0.127.in-addr.arpa.\n$TTL 300\n" + SOA +
                            "20 IN PTR good.test.\n"
                            "21 IN PTR forged.test.\n",
    # 127.0.0.22 has no PTR.
    "test": "$ORIGIN test.\n$TTL 300\n" + SOA + "ns IN A 127.0.0.9\n"
            "good IN A 127.0.0.20\n"
            "forged IN A 127.0.0.99\n",
}


class ClientNames(WorkdirTestCase):
    def start_lb(self, dns_servers, dns_timeout="5s", listener_options=None, name="smtplb"):
        sink, = self.start_sinks(f"sink-{name}")
        port = free_port()
        text = configs.balancer(port, [("sink", sink.port)],
                                server_options={"dns_servers": dns_servers,
                                                "dns_timeout": dns_timeout},
                                listener_options=listener_options)
        lb = Smtplb(self.workdir, text, name=name)
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port, sink

    def send_from(self, port, source, subject):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                          source_address=(source, 0), timeout=30) as s:
            s.sendmail("alice@example.org", ["bob@example.net"],
                       f"Subject: {subject}\r\n\r\nhi\r\n")

    def names_by_client(self, lb, count):
        wait_until(lambda: len(lb.tracking_records()) >= count, what=f"{count} tracking records")
        return {r["client"]: r.get("client_name") for r in lb.tracking_records()}

    def test_verified_forged_and_missing_names(self):
        dns = Nsd(self.workdir, ZONES).start()
        self.addCleanup(dns.stop)
        lb, port, sink = self.start_lb([f"127.0.0.1:{dns.port}"])
        for source in ("127.0.0.20", "127.0.0.21", "127.0.0.22"):
            self.send_from(port, source, source)
        names = self.names_by_client(lb, 3)
        self.assertEqual(names, {"127.0.0.20": "good.test",
                                 "127.0.0.21": "[UNAVAILABLE]",
                                 "127.0.0.22": "[UNAVAILABLE]"})
        # Every message reached the sink, from its real client.
        wait_until(lambda: len(sink.messages()) >= 3, what="3 messages at the sink")
        self.assertEqual(sorted(m["client"] for m in sink.messages()),
                         ["127.0.0.20", "127.0.0.21", "127.0.0.22"])

    def test_a_silent_dns_server_gives_tempunavail_within_the_timeout(self):
        # A UDP socket that never answers.
        mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mute.bind(("127.0.0.1", 0))
        self.addCleanup(mute.close)
        lb, port, _ = self.start_lb([f"127.0.0.1:{mute.getsockname()[1]}"], dns_timeout="1s")
        self.send_from(port, "127.0.0.20", "silent")
        names = self.names_by_client(lb, 1)
        self.assertEqual(names, {"127.0.0.20": "[TEMPUNAVAIL]"})
        # It asked (the PTR, twice), rather than giving up without asking.
        mute.settimeout(5)
        self.assertIn(b"in-addr", mute.recv(2048))

    def test_the_client_a_proxy_header_names_is_looked_up(self):
        dns = Nsd(self.workdir, ZONES).start()
        self.addCleanup(dns.stop)
        lb, port, _ = self.start_lb(
            [f"127.0.0.1:{dns.port}"],
            listener_options={"proxy_protocol": "v1", "proxy_trusted_networks": ["127.0.0.1/32"]})
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"PROXY TCP4 127.0.0.20 127.0.0.1 40000 25\r\n")
            f = s.makefile("rb")
            lines = []

            def reply():
                while True:
                    line = f.readline()
                    lines.append(line)
                    if line[3:4] != b"-":
                        return line

            for command in (None, b"EHLO client.example", b"MAIL FROM:<alice@example.org>",
                            b"RCPT TO:<bob@example.net>", b"DATA", b"Subject: x\r\n\r\nhi\r\n.",
                            b"QUIT"):
                if command:
                    s.sendall(command + b"\r\n")
                self.assertIn(reply()[:1], (b"2", b"3"), lines)
        self.assertEqual(self.names_by_client(lb, 1), {"127.0.0.20": "good.test"})

    def test_lookups_can_be_turned_off_per_listener(self):
        dns = Nsd(self.workdir, ZONES).start()
        self.addCleanup(dns.stop)
        lb, port, _ = self.start_lb([f"127.0.0.1:{dns.port}"],
                                    listener_options={"resolve_client_names": False})
        self.send_from(port, "127.0.0.20", "off")
        self.assertEqual(self.names_by_client(lb, 1), {"127.0.0.20": None})


if __name__ == "__main__":
    main()
