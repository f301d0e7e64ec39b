"""[cluster] tls = true (docs/cluster.md, "TLS"): smtplb reaches a real
redis-server that only speaks TLS, its certificate verified; shared
limits and the admin state work through it; a Redis whose certificate
does not verify is not used, and the reason is logged; a client
certificate is sent when Redis asks for one (tls-auth-clients)."""
import os
import shutil
import smtplib
import subprocess
import unittest

import configs
from harness import (Smtplb, Process, WorkdirTestCase, free_port, main, make_ca,
                     make_certificate, wait_for_port, wait_until)


class TlsRedis:
    """redis-server on a loopback port that takes TLS only."""

    def __init__(self, workdir, port, cert, key, ca, auth_clients="no"):
        self.port = port
        self.process = Process(["redis-server", "--port", "0", "--tls-port", str(port),
                                "--bind", "127.0.0.1", "--tls-cert-file", cert,
                                "--tls-key-file", key, "--tls-ca-cert-file", ca,
                                "--tls-auth-clients", auth_clients, "--save", "",
                                "--appendonly", "no", "--dir", workdir],
                               stdout=os.path.join(workdir, f"redis-{port}.out"))

    def start(self):
        self.process.start()
        wait_for_port(self.port, proc=self.process.proc)
        return self


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class ClusterTls(WorkdirTestCase):
    def node(self, redis_port, **tls):
        (sink,) = self.start_sinks("hub")
        self.sink = sink
        port = free_port()
        text = configs.balancer(port, [("hub", sink.port)],
                                pool_options={"health": {"enabled": False}},
                                server_options={"admin": "127.0.0.1:0"})
        text += configs.table("[cluster]", {"redis": f"127.0.0.1:{redis_port}",
                                            "node_name": "node-a", "timeout": "200ms",
                                            "tls": True, **tls})
        text += configs.table("[[limit]]", {"name": "per-sender", "key": "sender",
                                            "messages": "3/1h"})
        lb = Smtplb(self.workdir, text)
        lb.start(port)
        self.addCleanup(lb.stop)
        lb.smtp_port = port
        return lb

    def send(self, lb):
        try:
            with smtplib.SMTP("127.0.0.1", lb.smtp_port, timeout=20) as s:
                s.sendmail("alice@outside.example", ["user@example.net"], "Subject: t\r\n\r\nb\r\n")
            return True
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            self.assertEqual(e.smtp_code, 451, e)
            return False

    def test_a_verified_redis_over_tls_keeps_the_shared_limits(self):
        ca = make_ca(self.workdir)
        cert, key = make_certificate(self.workdir, ca, "redis")
        redis = TlsRedis(self.workdir, free_port(), cert, key, ca[0]).start()
        self.addCleanup(redis.process.stop)
        lb = self.node(redis.port, tls_ca_file=ca[0])
        wait_until(lambda: lb.status().get("cluster", {}).get("redis_up"), what="link over TLS")
        self.assertEqual(sum(self.send(lb) for _ in range(5)), 3)
        # The count is in Redis (read over TLS with redis-cli).
        keys = subprocess.run(["redis-cli", "--tls", "--cacert", ca[0], "-p", str(redis.port),
                               "--scan", "--pattern", "smtplb:limit:per-sender:*"],
                              capture_output=True, text=True, timeout=10)
        self.assertIn("smtplb:limit:per-sender:sender=alice@outside.example", keys.stdout,
                      keys.stderr)
        self.assertFalse(lb.log_lines("event=cluster_limits_local "))

    def test_a_redis_whose_certificate_does_not_verify_is_not_used(self):
        ca = make_ca(self.workdir)
        other = make_ca(self.workdir, name="other-ca")
        cert, key = make_certificate(self.workdir, ca, "redis")
        redis = TlsRedis(self.workdir, free_port(), cert, key, ca[0]).start()
        self.addCleanup(redis.process.stop)
        lb = self.node(redis.port, tls_ca_file=other[0])
        wait_until(lambda: lb.log_lines("TLS to Redis: certificate verification failed"),
                   what="the reason logged")
        self.assertFalse(lb.status().get("cluster", {}).get("redis_up"))
        # Mail goes on with the limit applied on this node alone.
        self.assertEqual(sum(self.send(lb) for _ in range(5)), 3)

    def test_a_client_certificate_is_sent_when_redis_asks(self):
        ca = make_ca(self.workdir)
        cert, key = make_certificate(self.workdir, ca, "redis")
        client_cert, client_key = make_certificate(self.workdir, ca, "node-a")
        redis = TlsRedis(self.workdir, free_port(), cert, key, ca[0], auth_clients="yes").start()
        self.addCleanup(redis.process.stop)
        lb = self.node(redis.port, tls_ca_file=ca[0], tls_cert_file=client_cert,
                       tls_key_file=client_key)
        wait_until(lambda: lb.status().get("cluster", {}).get("redis_up"),
                   what="link with a client certificate")

    def test_tls_files_are_checked_before_starting(self):
        port = free_port()
        text = configs.balancer(port, [("hub", free_port())])
        text += configs.table("[cluster]", {"redis": "127.0.0.1:6379", "tls": True,
                                            "tls_cert_file": "/nonexistent/cert.pem"})
        path = os.path.join(self.workdir, "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        from harness import SMTPLB
        r = subprocess.run([SMTPLB, "check", "--config", path], capture_output=True, text=True,
                           timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('cannot read "/nonexistent/cert.pem"', r.stdout + r.stderr)
        self.assertIn("tls_cert_file and tls_key_file go together", r.stdout + r.stderr)


if __name__ == "__main__":
    main()
