"""mode = "tcp": per-connection balancing with bytes copied both ways, the
pool's scheduler and retries on connect, a PROXY header to backends that take
one (Postfix smtpd with smtpd_upstream_proxy_protocol), and TLS end to end
(smtplb never sees the plaintext)."""
import hashlib
import random
import re
import resource
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import configs
import harness
from harness import (Postfix, Smtplb, WorkdirTestCase, free_port, main, make_ca, make_certificate,
                     postfix_available, RawBackend, rss_kib, sanitized_build, wait_until)


def recv_all(sock):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class TcpModeTest(WorkdirTestCase):
    def start_lb(self, backends, listener=None, pool=None):
        port = free_port()
        options = {"mode": "tcp"}
        options.update(listener or {})
        lb = Smtplb(self.workdir, configs.balancer(port, backends, listener_options=options,
                                                   pool_options=pool))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def test_proxy_v2_into_postfix_names_the_real_client(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        pf = Postfix(self.workdir, "hub1", smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy")
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb([("hub1", pf.port)], {"client_identity": "proxy-v2"})
        swaks = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", "127.0.0.2",
             "--from", "alice@example.org", "--to", "bob@example.net"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(swaks.returncode, 0, swaks.stdout + swaks.stderr)
        # The banner is Postfix's own: smtplb did not speak SMTP.
        self.assertIn("<-  220 hub1.test ESMTP", swaks.stdout)
        queue_id = re.search(r"queued as (\w+)", swaks.stdout).group(1)
        wait_until(lambda: any(f"{queue_id}: client=unknown[127.0.0.2]" in l
                               for l in pf.log_lines()), what="Postfix logging the real client")
        # swaks's record: the start-up readiness check's connection (from
        # 127.0.0.1) may be recorded after it under load.
        def swaks_records():
            return [r for r in lb.tracking_records() if r["client"] != "127.0.0.1"]
        wait_until(swaks_records, what="tracking record")
        rec = swaks_records()[-1]
        self.assertEqual((rec["client"], rec["result"], rec["identity"]),
                         ("127.0.0.2", "spliced", "proxy-v2"))
        self.assertGreater(rec["size"], 100)

    def test_connections_are_balanced_and_a_dead_backend_is_skipped(self):
        s1, s2 = self.start_sinks("sink1", "sink2")
        dead = free_port()  # nothing listens here
        lb, port = self.start_lb([("sink1", s1.port), ("dead", dead), ("sink2", s2.port)],
                                 pool={"health": {"enabled": False}})
        for i in range(12):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                self.assertEqual(s.sendmail("a@example.org", [f"r{i}@example.net"],
                                            b"Subject: tcp\r\n\r\nbody\r\n"), {})
        wait_until(lambda: len(s1.messages()) + len(s2.messages()) == 12, what="12 messages")
        self.assertGreaterEqual(len(s1.messages()), 4)
        self.assertGreaterEqual(len(s2.messages()), 4)
        failed = [a for r in lb.tracking_records() for a in r["attempts"] if a["backend"] == "dead"]
        self.assertTrue(failed and all(a["reply"] != "connected" for a in failed))
        self.assertTrue(all(r["result"] == "spliced" for r in lb.tracking_records()))

    def test_implicit_tls_end_to_end_with_proxy_header(self):
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")
        ca = make_ca(self.workdir)
        cert = make_certificate(self.workdir, ca, "hub1", dns=("hub1.test",))
        pf = Postfix(self.workdir, "hub1",
                     smtpd_args="-o smtpd_upstream_proxy_protocol=haproxy "
                                "-o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt",
                     extra_main=f"smtpd_tls_cert_file = {cert[0]}\nsmtpd_tls_key_file = {cert[1]}\n")
        pf.start()
        self.addCleanup(pf.stop)
        lb, port = self.start_lb([("hub1", pf.port)], {"client_identity": "proxy-v1"})
        ctx = ssl.create_default_context(cafile=ca[0])
        ctx.check_hostname = False  # names hub1.test; we connect to an address
        with smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=30,
                              source_address=("127.0.0.3", 0)) as s:
            # The certificate is the backend's: TLS ends there, not at smtplb.
            self.assertEqual(s.sock.getpeercert()["subject"], ((("commonName", "hub1"),),))
            self.assertEqual(s.sendmail("a@example.org", ["b@example.net"], b"\r\nhi\r\n"), {})
        wait_until(lambda: any("client=unknown[127.0.0.3]" in l for l in pf.log_lines()),
                   what="Postfix logging the real client behind TLS")

    def test_bytes_pass_intact_both_ways_with_a_slow_reader_and_half_close(self):
        # 4 MiB each way at once, the client reading slowly: smtplb must
        # hold what the client cannot take yet and stop reading the backend
        # meanwhile; the client's half close reaches the backend, which still
        # answers afterwards.
        rng = random.Random(7)
        download = rng.randbytes(4 << 20)
        upload = rng.randbytes(4 << 20)

        def serve(conn):
            sender = threading.Thread(target=conn.sendall, args=(download,))
            sender.start()
            received = recv_all(conn)  # until the client's half close
            sender.join()
            conn.sendall(b"DIGEST " + hashlib.sha256(received).hexdigest().encode())
            conn.shutdown(socket.SHUT_WR)

        backend = RawBackend(serve)
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("raw", backend.port)], pool={"health": {"enabled": False}})
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            def send_upload():
                s.sendall(upload)
                s.shutdown(socket.SHUT_WR)
            uploader = threading.Thread(target=send_upload)
            uploader.start()
            got = []
            while chunk := s.recv(65536):
                got.append(chunk)
                time.sleep(0.001)
            uploader.join()
        got = b"".join(got)
        digest_line = len("DIGEST ") + 64
        self.assertEqual(len(got), len(download) + digest_line)
        self.assertTrue(got[:len(download)] == download, "the download arrived altered")
        self.assertEqual(got[len(download):].decode(),
                         "DIGEST " + hashlib.sha256(upload).hexdigest())
        wait_until(lambda: lb.tracking_records(), what="tracking record")
        rec = lb.tracking_records()[-1]
        self.assertEqual((rec["result"], rec["size"]), ("spliced", len(upload)))

    def test_idle_connections_hold_no_buffers(self):
        # issue 7: a few KiB per idle connection. Before a direction is
        # copied it holds no buffer; 16 KiB each would show here.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        count = min(2000, (hard - 500) // 3)  # this process holds both ends
        self.assertGreaterEqual(count, 500, f"descriptor limit {hard} is too low for this test")
        backend = RawBackend(lambda conn: conn.sendall(b"220 idle.test ESMTP\r\n"))
        self.addCleanup(backend.stop)
        lb, port = self.start_lb([("raw", backend.port)],
                                 {"max_connections": count + 100,
                                  "max_connections_per_client": count + 100},
                                 {"health": {"enabled": False}})
        before = rss_kib(lb.process.proc.pid)
        clients = []
        try:
            for _ in range(count):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=30))
            for c in clients:
                self.assertEqual(c.recv(100), b"220 idle.test ESMTP\r\n")
            held = rss_kib(lb.process.proc.pid) - before
        finally:
            for c in clients:
                c.close()
            backend.stop()  # the sessions end when both sides have
        bound = 64 if sanitized_build(lb.process.proc.pid) else 8
        self.assertLess(held / count, bound, f"{held} KiB for {count} idle connections")
        print(f"\n{count} idle tcp-mode connections held {held} KiB ({held / count:.1f} each)")

    def test_stop_ends_a_half_closed_session_after_the_grace(self):
        # The client has closed its side, the backend keeps its own open and
        # silent: past shutdown_grace, stop must close the backend's end too
        # so the session ends (and is logged) before the daemon exits, rather
        # than being dropped unfinished with the event loop.
        backend = RawBackend(lambda conn: None)  # accepts, never answers, never closes
        self.addCleanup(backend.stop)
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [("raw", backend.port)], listener_options={"mode": "tcp"},
            pool_options={"health": {"enabled": False}},
            server_options={"shutdown_grace": "1s"}))
        lb.start(port)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)
            wait_until(lambda: backend._conns, what="the backend connection")
            self.assertEqual(lb.stop(), 0)
        # (The harness's readiness check is a connection of its own: size 0.)
        ours = [r["result"] for r in lb.tracking_records() if r["size"] == 5]
        self.assertEqual(ours, ["spliced"])

    def test_tcp_listener_configuration_errors(self):
        cases = [({"client_identity": "xclient"}, "cannot send XCLIENT"),
                 ({"tls": {"mode": "implicit", "cert": "/dev/null", "key": "/dev/null"}},
                  "passes TLS through")]
        for listener, message in cases:
            with self.subTest(message=message):
                options = {"mode": "tcp"}
                options.update(listener)
                path = f"{self.workdir}/bad.toml"
                with open(path, "w") as f:
                    f.write(configs.balancer(free_port(), [("b", 1)], listener_options=options)
                            .replace("@TRACKING@", "-").replace("@STATE@", self.workdir))
                check = subprocess.run([harness.SMTPLB, "check", "--config", path],
                                       capture_output=True, text=True, timeout=30)
                self.assertNotEqual(check.returncode, 0)
                self.assertIn(message, check.stderr)


if __name__ == "__main__":
    main()
