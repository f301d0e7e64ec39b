"""PROXY protocol from a trusted upstream proxy in front of smtplb: the
address the header carries is the client for policy, limits, logs and
XCLIENT; headers from elsewhere, malformed or late ones are refused."""
import socket
import ssl
import struct
import time

import configs
from harness import SmtpClient, Smtplb, WorkdirTestCase, free_port, main, make_ca, \
    make_certificate, wait_until

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(source, source_port, destination="127.0.0.1", destination_port=25):
    body = socket.inet_aton(source) + socket.inet_aton(destination) + \
        struct.pack("!HH", source_port, destination_port)
    return SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def v1_header(source, source_port, destination="127.0.0.1", destination_port=25):
    return f"PROXY TCP4 {source} {destination} {source_port} {destination_port}\r\n".encode()


class ProxiedClient(SmtpClient):
    def __init__(self, port, header, source="127.0.0.1", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.send(header)


class ProxyProtocolTest(WorkdirTestCase):
    def start_lb(self, backends, **listener):
        port = free_port()
        options = {"proxy_protocol": "any", "proxy_trusted_networks": ["127.0.0.1/32"],
                   "proxy_timeout": "1s"}
        options.update(listener)
        lb = Smtplb(self.workdir, configs.balancer(port, backends, listener_options=options))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def send_message(self, client, rcpt="bob@example.net"):
        self.assertEqual(client.code(), 220)
        client.command("EHLO client.example")
        client.command("MAIL FROM:<alice@example.org>")
        reply = client.command(f"RCPT TO:<{rcpt}>")
        if reply[-1][:1] != "2":
            return reply
        self.assertEqual(client.command("DATA")[0][:3], "354")
        return client.command("Subject: proxied\r\n\r\nhello\r\n.")

    def test_v1_and_v2_headers_name_the_client_for_xclient_and_logs(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)])
        for header, source in ((v1_header("192.0.2.7", 40001), "192.0.2.7"),
                               (v2_header("198.51.100.9", 40002), "198.51.100.9")):
            c = ProxiedClient(port, header)
            self.assertEqual(self.send_message(c)[0][:3], "250")
            c.close()
        wait_until(lambda: len(sink.messages()) == 2, what="two messages at the sink")
        self.assertEqual([m["client"] for m in sink.messages()], ["192.0.2.7", "198.51.100.9"])
        wait_until(lambda: len(lb.tracking_records()) == 2, what="two tracking records")
        records = lb.tracking_records()
        self.assertEqual([(r["client"], r["client_port"]) for r in records],
                         [("192.0.2.7", 40001), ("198.51.100.9", 40002)])

    def test_header_and_first_command_in_one_segment(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)])
        # Nothing behind the header may be swallowed with it.
        c = ProxiedClient(port, v2_header("192.0.2.7", 40001) + b"EHLO early.example\r\n")
        self.assertEqual(c.code(), 220)
        self.assertEqual(c.read_reply()[0], "250-lb.test")
        c.close()

    def test_v2_local_with_tlvs_is_served_as_the_real_connection(self):
        # HAProxy's health checks: LOCAL, with TLVs (UNIQUE_ID, NOOP, SSL)
        # the receiver skips; the connection's own addresses apply.
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)])
        ssl_sub = bytes([0x21, 0, 7]) + b"TLSv1.3"
        tlvs = (bytes([0x05, 0, 8]) + b"4f2a9c1e" + bytes([0x04, 0, 3, 0, 0, 0]) +
                bytes([0x20, 0, 5 + len(ssl_sub), 0x01, 0, 0, 0, 0]) + ssl_sub)
        local = SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
        # Header and first command in one segment: nothing behind it is lost.
        c = ProxiedClient(port, local + b"EHLO early.example\r\n")
        self.assertEqual(c.code(), 220)
        self.assertEqual(c.read_reply()[0], "250-lb.test")
        c.command("MAIL FROM:<alice@example.org>")
        self.assertEqual(c.command("RCPT TO:<bob@example.net>")[-1][:3], "250")
        self.assertEqual(c.command("DATA")[0][:3], "354")
        self.assertEqual(c.command("Subject: local\r\n\r\nhello\r\n.")[0][:3], "250")
        c.close()
        wait_until(lambda: len(sink.messages()) == 1, what="the message at the sink")
        self.assertEqual(sink.messages()[0]["client"], "127.0.0.1")
        wait_until(lambda: len(lb.tracking_records()) == 1, what="its tracking record")
        self.assertEqual(lb.tracking_records()[0]["client"], "127.0.0.1")
        # (wait_for_port's bare connect is the only refusal.)
        self.assertEqual([l for l in lb.log_lines("event=proxy_refused")
                          if "connection ended" not in l], [])

    def test_relay_policy_applies_to_the_address_in_the_header(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)], role="relay",
                                 trusted_networks=["192.0.2.0/24"], accepted_domains=[])
        inside = ProxiedClient(port, v2_header("192.0.2.7", 40001))
        self.assertEqual(self.send_message(inside, "someone@elsewhere.example")[0][:3], "250")
        inside.close()
        # The proxy itself (127.0.0.1) is not trusted to relay: the client is.
        outside = ProxiedClient(port, v2_header("203.0.113.5", 40002))
        reply = self.send_message(outside, "someone@elsewhere.example")
        self.assertEqual(reply[-1][:5], "550 5", reply)
        outside.close()

    def test_connection_limit_counts_the_real_client(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)], max_connections_per_client=1)
        first = ProxiedClient(port, v1_header("192.0.2.7", 40001))
        self.assertEqual(first.code(), 220)
        second = ProxiedClient(port, v1_header("192.0.2.7", 40002))
        self.assertEqual(second.read_reply()[0][:3], "421")
        other = ProxiedClient(port, v1_header("192.0.2.8", 40003))
        self.assertEqual(other.code(), 220)
        for c in (first, second, other):
            c.close()

    def test_untrusted_malformed_and_late_headers_are_refused(self):
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)])

        def refused(header, source="127.0.0.1", pause=0.0):
            c = socket.create_connection(("127.0.0.1", port), timeout=10,
                                         source_address=(source, 0))
            if pause:
                c.sendall(header[:5])
                time.sleep(pause)
                header = header[5:]
            try:
                c.sendall(header)
                data = c.recv(100)
            except ConnectionResetError:
                data = b""
            c.close()
            return data == b""  # closed without a greeting

        # A proxy header from an address that is not a trusted proxy.
        self.assertTrue(refused(v2_header("192.0.2.7", 1), source="127.0.0.2"))
        self.assertTrue(refused(b"PROXY TCP4 192.0.2.7 127.0.0.1 1 25\n"))  # bare LF
        self.assertTrue(refused(b"PROXY TCP4 192.0.2.07 127.0.0.1 1 25\r\n"))  # leading zero
        self.assertTrue(refused(b"PROXY UNKNOWN " + b"x" * 120))  # no CRLF in 107 bytes
        self.assertTrue(refused(b"EHLO no-header.example\r\n"))  # no header at all
        bad = bytearray(v2_header("192.0.2.7", 1))
        bad[13] = 0x12  # UDP
        self.assertTrue(refused(bytes(bad)))
        self.assertTrue(refused(SIG + bytes([0x22, 0x11, 0x00, 0x0c]) + b"x" * 12))  # command 2
        self.assertTrue(refused(v1_header("192.0.2.7", 1), pause=1.5))  # after proxy_timeout
        wait_until(lambda: len(lb.log_lines("event=proxy_refused")) >= 8,
                   what="eight refusals logged")
        reasons = " ".join(lb.log_lines("event=proxy_refused"))
        for reason in ("not in proxy_trusted_networks", "bare LF", "malformed address",
                       "107 bytes", "not a PROXY header", "unsupported address family",
                       "unknown command", "timeout"):
            self.assertIn(reason, reasons)
        self.assertEqual(sink.messages(), [])
        # A well-formed one still works after all that.
        c = ProxiedClient(port, v1_header("192.0.2.7", 1))
        self.assertEqual(c.code(), 220)
        c.close()

    def test_proxy_header_before_implicit_tls(self):
        ca = make_ca(self.workdir)
        cert = make_certificate(self.workdir, ca, "lb.test", dns=("lb.test",))
        sink, = self.start_sinks("sink1")
        lb, port = self.start_lb([("sink1", sink.port)],
                                 tls={"mode": "implicit", "cert": cert[0], "key": cert[1]})
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(v2_header("192.0.2.7", 40001))
        ctx = ssl.create_default_context(cafile=ca[0])
        ctx.check_hostname = False
        with ctx.wrap_socket(raw) as tls:
            f = tls.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 lb.test"))
            tls.sendall(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
                        b"DATA\r\n")
            lines = [f.readline()]
            while lines[-1][:1] == b"2":
                lines.append(f.readline())
            self.assertTrue(lines[-1].startswith(b"354"), lines)
            tls.sendall(b"\r\nhi\r\n.\r\nQUIT\r\n")
            self.assertTrue(f.readline().startswith(b"250 "))
        wait_until(lambda: sink.messages(), what="the message at the sink")
        self.assertEqual(sink.messages()[0]["client"], "192.0.2.7")


if __name__ == "__main__":
    main()
