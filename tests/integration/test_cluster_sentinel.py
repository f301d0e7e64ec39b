"""Two smtplb nodes finding their Redis through three real Redis Sentinels
([cluster] sentinels, docs/cluster.md "Redis Sentinel"): one master and one
replica (redis-server, loopback). A drain set through node 1 reaches node 2;
the master is killed (SIGKILL) and the sentinels promote the replica; both
nodes follow (status, metrics, log), a drain set through node 2 afterwards
reaches node 1, and mail through a node keeps flowing (250) all along."""
import json
import os
import shutil
import smtplib
import subprocess
import threading
import time
import unittest
import urllib.request

import configs
from harness import Process, Smtplb, WorkdirTestCase, free_port, main, wait_for_port, wait_until
from test_cluster import RedisServer

MASTER_NAME = "mymaster"


class Replica(RedisServer):
    """A redis-server replicating `master_port` (nothing saved)."""

    def __init__(self, workdir, port, master_port):
        super().__init__(workdir, port)
        self.process.args += ["--replicaof", "127.0.0.1", str(master_port)]


class Sentinel:
    """`redis-server FILE --sentinel` on a loopback port, quick to decide
    (down after 1 s). The file is its own: sentinels rewrite theirs."""

    def __init__(self, workdir, port, master_port):
        self.port = port
        directory = os.path.join(workdir, f"sentinel-{port}")
        os.makedirs(directory, exist_ok=True)
        conf = os.path.join(directory, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                    f"sentinel failover-timeout {MASTER_NAME} 4000\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n")
        self.process = Process(["redis-server", conf, "--sentinel"],
                               stdout=os.path.join(directory, "sentinel.out"))

    def start(self):
        self.process.start()
        wait_for_port(self.port, proc=self.process.proc)
        return self

    def kill(self):
        if self.process.proc and self.process.proc.poll() is None:
            self.process.proc.kill()
            self.process.proc.wait(timeout=10)

    def master(self):
        """What this sentinel knows of the master, as a dict."""
        r = subprocess.run(["redis-cli", "-p", str(self.port), "SENTINEL", "master", MASTER_NAME],
                           capture_output=True, text=True, timeout=10)
        items = r.stdout.split("\n")
        return dict(zip(items[0::2], items[1::2]))


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class ClusterSentinel(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.master = RedisServer(self.workdir, free_port()).start()
        self.addCleanup(self.master.kill)
        self.replica = Replica(self.workdir, free_port(), self.master.port).start()
        self.addCleanup(self.replica.kill)
        wait_until(lambda: "master_link_status:up" in self.replica.cli("INFO", "replication"),
                   timeout=15, what="the replica to sync with the master")
        self.sentinels = []
        for _ in range(3):
            s = Sentinel(self.workdir, free_port(), self.master.port).start()
            self.addCleanup(s.kill)
            self.sentinels.append(s)
        # Before anything fails: each sentinel knows the replica and the others.
        for s in self.sentinels:
            wait_until(lambda s=s: s.master().get("num-slaves") == "1"
                       and s.master().get("num-other-sentinels") == "2",
                       timeout=30, what="the sentinels to know the replica and each other")
        self.sinks = dict(zip(("hub1", "hub2"), self.start_sinks("hub1", "hub2")))
        self.nodes = {}
        sentinels = [f"127.0.0.1:{s.port}" for s in self.sentinels]
        for name in ("node-1", "node-2"):
            port = free_port()
            text = configs.balancer(
                port, [(n, s.port) for n, s in self.sinks.items()],
                pool_options={"health": {"enabled": False}},
                server_options={"admin": "127.0.0.1:0"})
            text += configs.table("[cluster]", {"sentinels": sentinels,
                                                "master_name": MASTER_NAME,
                                                "node_name": name, "timeout": "50ms"})
            lb = Smtplb(self.workdir, text, name=name)
            lb.start(port)
            self.addCleanup(lb.stop)
            lb.smtp_port = port
            self.nodes[name] = lb
        for lb in self.nodes.values():
            wait_until(lambda lb=lb: lb.status().get("cluster", {}).get("redis_up"),
                       timeout=10, what="the node's link to the master")

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

    def metrics(self, node):
        return urllib.request.urlopen(
            f"http://127.0.0.1:{self.nodes[node].admin_port()}/metrics", timeout=10).read().decode()

    def test_failover_is_followed(self):
        old = f"127.0.0.1:{self.master.port}"
        new = f"127.0.0.1:{self.replica.port}"
        for name, lb in self.nodes.items():
            cluster = lb.status()["cluster"]
            self.assertEqual(cluster["master"], old, name)
            self.assertTrue(cluster["redis"].startswith(f"sentinels:{MASTER_NAME}@"), cluster)
            self.assertTrue(lb.log_lines("event=cluster_master_found "), name)

        # Shared state through the first master.
        self.post("node-1", "hubs/hub1/drain")
        wait_until(lambda: self.admin_state("node-2", "hub1") == "drain", timeout=1.0,
                   what="node 2 to see hub1 drained")
        # Copied to the replica before the master dies (else the failover loses it).
        wait_until(lambda: self.replica.cli("HGET", "smtplb:admin", "hubs/hub1") == "drain",
                   timeout=5, what="the replica to have the drain")

        # Mail through node 1 all along the failover: none refused.
        sent, failures, stop = [0], [], threading.Event()

        def mail():
            try:
                with smtplib.SMTP("127.0.0.1", self.nodes["node-1"].smtp_port, timeout=20) as s:
                    while not stop.is_set():
                        s.sendmail("sender@outside.example", ["user@example.net"],
                                   f"Subject: during failover {sent[0]}\r\n\r\nbody\r\n")
                        sent[0] += 1
                        time.sleep(0.1)
            except Exception as e:  # noqa: BLE001 - any failure is the test's failure
                failures.append(repr(e))

        sender = threading.Thread(target=mail, daemon=True)
        sender.start()
        self.addCleanup(stop.set)

        self.master.kill()  # SIGKILL: the sentinels promote the replica
        for name, lb in self.nodes.items():
            wait_until(lambda lb=lb: lb.status()["cluster"].get("master") == new
                       and lb.status()["cluster"]["redis_up"],
                       timeout=30, what=f"{name} to follow the failover to the replica")
            lines = lb.log_lines("event=cluster_master_changed ")
            self.assertEqual(len(lines), 1, (name, lines))
            self.assertIn(f"old={old}", lines[0])
            self.assertIn(f"new={new}", lines[0])
            self.assertEqual(lb.status()["cluster"]["master_changes"], 1)
            self.assertIn("smtplb_cluster_master_changes_total 1\n", self.metrics(name))
        self.assertIn("role:master", self.replica.cli("INFO", "replication"))
        time.sleep(0.5)  # a few more messages after the move
        stop.set()
        sender.join(timeout=30)
        self.assertFalse(failures, failures)
        self.assertGreater(sent[0], 5)

        # Shared state through the new master, the other way round.
        self.assertEqual(self.admin_state("node-1", "hub1"), "drain")  # kept by the replica
        self.post("node-2", "hubs/hub1/enable")
        self.post("node-2", "hubs/hub2/maintenance")
        wait_until(lambda: self.admin_state("node-1", "hub2") == "maintenance", timeout=1.0,
                   what="node 1 to see hub2 in maintenance after the failover")
        self.assertEqual(self.admin_state("node-1", "hub1"), "enabled")
        self.assertEqual(self.replica.cli("HGET", "smtplb:admin", "hubs/hub2"), "maintenance")


if __name__ == "__main__":
    main()
