"""Two smtplb nodes sharing one real redis-server ([cluster], docs/cluster.md):
a drain set through node A's admin API reaches node B within a second (B's
status, and which backend B's mail goes to), an enable brings it back;
with Redis killed both nodes go on relaying (250) and each logs the switch
once; with Redis back both resynchronise to Redis's state."""
import json
import os
import shutil
import signal
import smtplib
import subprocess
import time
import unittest
import urllib.request

import configs
from harness import Process, Smtplb, WorkdirTestCase, free_port, main, wait_for_port, wait_until


class RedisServer:
    """redis-server on a loopback port, in the test's directory, nothing saved."""

    def __init__(self, workdir, port):
        self.port = port
        self.process = Process(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", workdir],
                               stdout=os.path.join(workdir, f"redis-{port}.out"))

    def start(self):
        self.process.start()
        wait_for_port(self.port, proc=self.process.proc)
        return self

    def kill(self):
        """SIGKILL: Redis gone at once, as in a crash (exactly this process)."""
        if self.process.proc and self.process.proc.poll() is None:
            self.process.proc.kill()
            self.process.proc.wait(timeout=10)

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip()


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class Cluster(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.workdir, free_port()).start()
        self.addCleanup(lambda: self.redis.kill())  # the one running at the end
        self.sinks = dict(zip(("hub1", "hub2"), self.start_sinks("hub1", "hub2")))
        self.nodes = {}
        for name in ("node-a", "node-b"):
            port = free_port()
            text = configs.balancer(
                port, [(n, s.port) for n, s in self.sinks.items()],
                pool_options={"health": {"enabled": False}},
                server_options={"admin": "127.0.0.1:0"})
            text += configs.table("[cluster]", {"redis": f"127.0.0.1:{self.redis.port}",
                                                "node_name": name, "timeout": "50ms"})
            lb = Smtplb(self.workdir, text, name=name)
            lb.start(port)
            self.addCleanup(lb.stop)
            lb.smtp_port = port
            self.nodes[name] = lb
        for lb in self.nodes.values():
            wait_until(lambda lb=lb: lb.status().get("cluster", {}).get("redis_up"),
                       what="the node's link to Redis")

    def post(self, node, path):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.nodes[node].admin_port()}/api/v1/backends/{path}",
            method="POST", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)

    def admin_state(self, node, backend):
        status = self.nodes[node].status()
        (pool,) = [p for p in status["pools"] if p["name"] == "hubs"]
        return {b["name"]: b["admin"] for b in pool["backends"]}[backend]

    def send(self, node, count=1):
        """Messages through a node, each answered 250 (smtplib raises otherwise)."""
        with smtplib.SMTP("127.0.0.1", self.nodes[node].smtp_port, timeout=20) as s:
            for i in range(count):
                s.sendmail("sender@outside.example", ["user@example.net"],
                           f"Subject: {node} {i}\r\n\r\nbody\r\n")

    def received(self):
        return {n: len(s.messages()) for n, s in self.sinks.items()}

    def test_admin_state_follows_redis(self):
        # A drain through node A reaches node B within a second.
        self.assertEqual(self.post("node-a", "hubs/hub1/drain")["admin"], "drain")
        asked = time.monotonic()
        wait_until(lambda: self.admin_state("node-b", "hub1") == "drain", timeout=1.0,
                   what="node B to see hub1 drained")
        took = time.monotonic() - asked
        self.assertLess(took, 1.0)
        self.assertEqual(self.redis.cli("HGET", "smtplb:admin", "hubs/hub1"), "drain")
        before = self.received()
        self.send("node-b", 4)
        after = self.received()
        self.assertEqual(after["hub1"], before["hub1"], "node B sent mail to drained hub1")
        self.assertEqual(after["hub2"], before["hub2"] + 4)

        # Enabled through node B this time: back on node A, and mail goes there again.
        self.post("node-b", "hubs/hub1/enable")
        wait_until(lambda: self.admin_state("node-a", "hub1") == "enabled", timeout=1.0,
                   what="node A to see hub1 enabled")
        before = self.received()
        self.send("node-a", 4)
        self.assertGreater(self.received()["hub1"], before["hub1"])
        a = self.nodes["node-a"]
        self.assertTrue(a.log_lines("event=cluster_admin_applied "), "node A applied nothing")

        # Redis killed: both nodes relay (250), each logs the switch once.
        self.redis.kill()
        for name, lb in self.nodes.items():
            wait_until(lambda lb=lb: lb.log_lines("event=cluster_redis_down "),
                       what=f"{name} to log the loss of Redis")
            self.assertFalse(lb.status()["cluster"]["redis_up"])
        # A change made while Redis is away stays local (and is said so).
        self.post("node-a", "hubs/hub2/drain")
        self.assertEqual(self.admin_state("node-a", "hub2"), "drain")
        self.assertTrue(a.log_lines("event=cluster_admin_local_only "))
        for name in self.nodes:
            self.send(name, 2)
        time.sleep(1.0)  # reconnect attempts go on meanwhile (backoff); still one line each
        for name, lb in self.nodes.items():
            self.assertEqual(len(lb.log_lines("event=cluster_redis_down ")), 1, name)
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{a.admin_port()}/metrics", timeout=10).read().decode()
        self.assertIn('smtplb_cluster_redis_switches_total{to="down"} 1\n', metrics)
        self.assertIn("smtplb_cluster_redis_up 0\n", metrics)

        # Redis back (empty: nothing was saved, as after losing its data):
        # both reconnect, say so once, and take Redis's state; hub2's local
        # drain gives way.
        self.redis = RedisServer(self.workdir, self.redis.port).start()
        for name, lb in self.nodes.items():
            wait_until(lambda lb=lb: lb.status()["cluster"]["redis_up"], timeout=10,
                       what=f"{name} to reconnect")
            self.assertEqual(len(lb.log_lines("event=cluster_redis_up ")), 2, name)
        wait_until(lambda: self.admin_state("node-a", "hub2") == "enabled", timeout=2,
                   what="node A to take Redis's state")
        # And shared state works again, in both directions.
        self.post("node-b", "hubs/hub2/maintenance")
        wait_until(lambda: self.admin_state("node-a", "hub2") == "maintenance", timeout=1.0,
                   what="node A to see hub2 in maintenance")

    def test_a_node_started_later_takes_the_shared_state(self):
        self.post("node-a", "hubs/hub2/drain")
        wait_until(lambda: self.admin_state("node-b", "hub2") == "drain", timeout=1.0,
                   what="node B to see hub2 drained")
        # Node B restarted: it reads the hash when it connects.
        b = self.nodes["node-b"]
        b.stop()
        b.process.start()
        wait_for_port(b.smtp_port, proc=b.process.proc)
        wait_until(lambda: self.admin_state("node-b", "hub2") == "drain", timeout=5,
                   what="the restarted node B to read hub2's drain")


if __name__ == "__main__":
    main()
