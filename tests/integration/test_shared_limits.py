"""Shared [[limit]]s ([cluster], docs/cluster.md "Shared limits"): three
smtplb nodes and one real redis-server. A per-sender rate holds for the
three together; the concurrency places a SIGKILLed node held come back
within the lease TTL; with Redis stopped every client is still answered and
each node applies the limits alone, and with Redis back they are shared again."""
import os
import re
import shutil
import signal
import smtplib
import time
import unittest
import urllib.request

import configs
from harness import Smtplb, SmtpClient, WorkdirTestCase, free_port, main, wait_until
from test_cluster import RedisServer

LEASE_TTL_S = 3  # the shortest [cluster] lease_ttl allowed


def limit(**values):
    return configs.table("[[limit]]", values)


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class SharedLimits(WorkdirTestCase):
    def start(self, limits, nodes=("node-a", "node-b", "node-c")):
        self.redis = RedisServer(self.workdir, free_port()).start()
        self.addCleanup(lambda: self.redis.kill())
        (self.sink,) = self.start_sinks("hub")
        self.nodes = {}
        for name in nodes:
            port = free_port()
            text = configs.balancer(port, [("hub", self.sink.port)],
                                    pool_options={"health": {"enabled": False}},
                                    server_options={"admin": "127.0.0.1:0"})
            text += configs.table("[cluster]", {"redis": f"127.0.0.1:{self.redis.port}",
                                                "node_name": name, "timeout": "100ms",
                                                "lease_ttl": f"{LEASE_TTL_S}s"})
            lb = Smtplb(self.workdir, text + "".join(limits), name=name)
            lb.start(port)
            self.addCleanup(lb.stop)
            lb.smtp_port = port
            self.nodes[name] = lb
        for name, lb in self.nodes.items():
            wait_until(lambda lb=lb: lb.status().get("cluster", {}).get("redis_up"),
                       what=f"{name}'s link to Redis")

    def send(self, node, sender):
        """One message through `node`: True when it was accepted, False when
        a limit refused it (451); anything else fails the test."""
        try:
            with smtplib.SMTP("127.0.0.1", self.nodes[node].smtp_port, timeout=20) as s:
                s.sendmail(sender, ["user@example.net"], "Subject: t\r\n\r\nbody\r\n")
            return True
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            self.assertEqual(e.smtp_code, 451, e)
            return False

    def round_robin(self, sender, count):
        names = list(self.nodes)
        return sum(self.send(names[i % len(names)], sender) for i in range(count))

    def metrics(self, node):
        port = self.nodes[node].admin_port()
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                      timeout=10).read().decode()

    def test_a_sender_rate_holds_across_the_three_nodes(self):
        n = 12
        self.start([limit(name="per-sender", key="sender", messages=f"{n}/1h")])
        accepted = self.round_robin("alice@outside.example", 3 * n)
        self.assertLessEqual(abs(accepted - n), 1, f"accepted {accepted} of a shared {n}/1h")
        self.assertEqual(len(self.sink.messages()), accepted)
        # Another sender has its own budget.
        self.assertEqual(self.round_robin("bob@outside.example", 3), 3)
        metrics = self.metrics("node-a")
        self.assertIn('smtplb_cluster_limit_checks_total{result="redis"}', metrics)
        events = sum(float(v) for v in re.findall(
            r'^smtplb_cluster_limit_events_total\{event="[a-z]+"\} (\S+)$', metrics, re.M))
        trips = re.search(r'^smtplb_cluster_limit_round_trips_total (\S+)$', metrics, re.M)
        self.assertGreater(events, 0, metrics)
        # One client at a time: a script per event, and the script's loading.
        self.assertIsNotNone(trips, metrics)
        self.assertLessEqual(float(trips.group(1)), events + 2, metrics)
        for name, lb in self.nodes.items():
            self.assertFalse(lb.log_lines("event=cluster_limits_local "), name)

    def test_units_granted_ahead_to_a_busy_sender_never_take_it_over_its_limit(self):
        # 150/1h over three nodes: a node may take up to 150 / (20 x 3) = 2
        # units ahead, spent without asking Redis. The sender still gets at
        # most 150 in all, and at most 5% fewer (units held unspent at the end).
        n = 150
        self.start([limit(name="per-sender", key="sender", messages=f"{n}/1h")])
        accepted = self.round_robin("busy@outside.example", n + 30)
        self.assertLessEqual(accepted, n)
        self.assertGreaterEqual(accepted, n - n * 5 // 100, f"accepted {accepted} of {n}")
        self.assertEqual(len(self.sink.messages()), accepted)
        granted = 0
        for name in self.nodes:
            found = re.search(r'^smtplb_cluster_limit_checks_total\{result="granted"\} (\S+)$',
                              self.metrics(name), re.M)
            self.assertIsNotNone(found, name)
            granted += float(found.group(1))
        self.assertGreater(granted, 0, "no event was met from units granted ahead")

    def test_a_killed_nodes_places_come_back_within_the_lease_ttl(self):
        self.start([limit(name="tx", key="client_ip", concurrent_transactions=2)])
        holders = []
        for _ in range(2):
            c = SmtpClient(self.nodes["node-a"].smtp_port)
            self.addCleanup(c.close)
            self.assertEqual(c.code(), 220)
            c.command("EHLO client.example")
            reply = c.command("MAIL FROM:<alice@outside.example>")
            self.assertTrue(reply[-1].startswith("250"), reply)
            holders.append(c)
        self.assertFalse(self.send("node-b", "carol@outside.example"), "a third place was given")
        a = self.nodes["node-a"]
        a.process.proc.send_signal(signal.SIGKILL)
        a.process.proc.wait(timeout=10)
        killed = time.monotonic()
        a.process.proc = None  # nothing left to stop
        wait_until(lambda: self.send("node-b", "carol@outside.example"),
                   timeout=LEASE_TTL_S + 5, what="the killed node's places to come back")
        self.assertLess(time.monotonic() - killed, LEASE_TTL_S + 5)

    def test_redis_stopped_local_limits_then_shared_again(self):
        n = 6
        self.start([limit(name="per-sender", key="sender", messages=f"{n}/1h")])
        self.redis.kill()
        # Every client is answered; each node applies the limit alone
        # (divided by the live nodes: one, until the node registry is wired).
        accepted = sum(self.send("node-a", "dave@outside.example") for _ in range(n + 2))
        self.assertEqual(accepted, n)
        a = self.nodes["node-a"]
        self.assertEqual(len(a.log_lines("event=cluster_limits_local ")), 1)
        self.assertIn('smtplb_cluster_limit_checks_total{result="local"}', self.metrics("node-a"))

        self.redis = RedisServer(self.workdir, self.redis.port).start()
        for name, lb in self.nodes.items():
            wait_until(lambda lb=lb: lb.status()["cluster"]["redis_up"], timeout=10,
                       what=f"{name} to reconnect")
        # Redis again (its state empty: nothing was saved): shared once more.
        wait_until(lambda: self.send("node-a", "erin@outside.example"), timeout=10,
                   what="a check answered by Redis")
        wait_until(lambda: a.log_lines("event=cluster_limits_shared "), timeout=5,
                   what="node A to log the switch back")
        accepted = 1 + self.round_robin("erin@outside.example", 2 * n)
        self.assertLessEqual(abs(accepted - n), 1, f"accepted {accepted} of a shared {n}/1h")


if __name__ == "__main__":
    main()
