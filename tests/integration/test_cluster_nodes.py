"""Three smtplb nodes and one real redis-server ([cluster], docs/cluster.md
"Nodes"): every node is listed by `smtplb status --cluster` and
/api/v1/cluster with its version and digest; a node whose configuration
differs is flagged (and no longer once a reload gives it the others'); its
own view of a backend (down for it only) shows as its opinion alone, in
the API, the command and the dashboard; a node killed with SIGKILL is
shown gone after the expiry; and a client address stuck to a backend through node A goes to the
same backend through node B (shared source_ip persistence)."""
import json
import os
import re
import shutil
import smtplib
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main, wait_until
from test_cluster import RedisServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODES = ("node-a", "node-b", "node-c")
CLIENTS = [f"127.0.0.{i}" for i in range(10, 18)]


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class ClusterNodes(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.workdir, free_port()).start()
        self.addCleanup(lambda: self.redis.kill())
        self.sinks = dict(zip(("hub1", "hub2"), self.start_sinks("hub1", "hub2")))
        dead = free_port()  # nothing listens there
        self.nodes = {}
        for name in NODES:
            port = free_port()
            # node-c differs: its hub2 is elsewhere (so its probes find it
            # down while the others find it up), so its digest differs.
            lb = Smtplb(self.workdir, self.config_text(name, port, dead if name == "node-c"
                                                       else self.sinks["hub2"].port), name=name)
            lb.start(port)
            self.addCleanup(lb.stop)
            lb.smtp_port = port
            self.nodes[name] = lb

    def config_text(self, name, port, hub2):
        text = configs.balancer(
            port, [("hub1", self.sinks["hub1"].port), ("hub2", hub2)],
            pool_options={"persistence": "source_ip",
                          "health": {"depth": "connect", "interval": "200ms",
                                     "down_interval": "200ms", "rise": 1, "fall": 1}},
            server_options={"admin": "127.0.0.1:0"})
        return text + configs.table("[cluster]", {"redis": f"127.0.0.1:{self.redis.port}",
                                                  "node_name": name, "timeout": "50ms"})

    def cluster(self, node):
        url = f"http://127.0.0.1:{self.nodes[node].admin_port()}/api/v1/cluster"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    def listed(self, node):
        return {n["name"]: n for n in self.cluster(node)["nodes"]}

    def status_cluster(self, node, *extra):
        r = subprocess.run([harness.SMTPLB, "status", "--cluster", "--admin",
                            f"127.0.0.1:{self.nodes[node].admin_port()}", *extra],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def metric(self, node, name):
        url = f"http://127.0.0.1:{self.nodes[node].admin_port()}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def send_from(self, node, source, count=1):
        with smtplib.SMTP("127.0.0.1", self.nodes[node].smtp_port, timeout=20,
                          source_address=(source, 0)) as s:
            for i in range(count):
                s.sendmail("sender@outside.example", ["user@example.net"],
                           f"Subject: {node} {source} {i}\r\n\r\nbody\r\n")

    def backends_of(self, source):
        """The sinks that received mail from this client address."""
        return {name for name, sink in self.sinks.items()
                if any(m["client"] == source for m in sink.messages())}

    def test_registry_lists_flags_and_forgets(self):
        def all_listed(node):
            nodes = self.listed(node)
            return len(nodes) == 3 and all(n["alive"] for n in nodes.values())
        # Each node lists the three, marking itself.
        for name in NODES:
            wait_until(lambda: all_listed(name), timeout=10,
                       what=f"{name} to list the three nodes alive")
            nodes = self.listed(name)
            self.assertEqual(sorted(nodes), list(NODES), name)
            self.assertTrue(nodes[name]["self"])
            self.assertEqual(sum(n["self"] for n in nodes.values()), 1)
        doc = self.cluster("node-a")
        nodes = {n["name"]: n for n in doc["nodes"]}
        self.assertEqual(doc["live_nodes"], 3)
        self.assertEqual(nodes["node-a"]["digest"], nodes["node-b"]["digest"])
        self.assertNotEqual(nodes["node-a"]["digest"], nodes["node-c"]["digest"])
        self.assertEqual(doc["majority_digest"], nodes["node-a"]["digest"])
        self.assertTrue(nodes["node-c"]["digest_differs_from_majority"])
        self.assertFalse(nodes["node-b"]["digest_differs_from_majority"])
        self.assertFalse(nodes["node-a"]["digest_differs_from_majority"])
        for n in nodes.values():
            self.assertTrue(n["version"])
            self.assertLess(n["heartbeat_age_ms"], 3000)
        self.assertTrue(self.nodes["node-a"].log_lines(
            "event=cluster_node_config_differs node=node-c "))
        self.assertEqual(self.metric("node-a", "smtplb_cluster_nodes_live"), 3)

        # hub2 is down for node-c only: its opinion, and only its.
        def opinions():
            out = {}
            for name, n in self.listed("node-a").items():
                for b in n["backends"]:
                    out[(name, b["backend"])] = b["health"]
            return out
        wait_until(lambda: opinions().get(("node-c", "hub2")) == "down", timeout=10,
                   what="node-c's opinion that hub2 is down")
        o = opinions()
        self.assertEqual(o[("node-a", "hub2")], "up")
        self.assertEqual(o[("node-b", "hub2")], "up")
        self.assertEqual(o[("node-c", "hub1")], "up")
        (c_hub2,) = [b for b in self.listed("node-a")["node-c"]["backends"]
                     if b["backend"] == "hub2"]
        self.assertTrue(c_hub2.get("reason"), c_hub2)

        # The command says the same, in tables.
        out = self.status_cluster("node-a")
        self.assertRegex(out, r"(?m)^node-a \*\s+alive\s")
        self.assertRegex(out, r"(?m)^node-b\s+alive\s+\S+\s+[0-9a-f]{16}\s+same\s")
        self.assertRegex(out, r"(?m)^node-c\s+alive\s+\S+\s+[0-9a-f]{16}\s+DIFFERS\s")
        self.assertRegex(out, r"(?m)^hubs/hub2\s+up\s+up\s+down\s*$")
        self.assertRegex(out, r"(?m)^hubs/hub1\s+up\s+up\s+up\s*$")
        self.assertIn('"nodes"', self.status_cluster("node-b", "--json"))

        # The dashboard shows the same (tests/e2e/cluster.mjs, headless Chromium).
        self.assertIsNotNone(shutil.which("node"), "node is missing")
        r = subprocess.run(["node", os.path.join(ROOT, "tests/e2e/cluster.mjs"),
                            f"http://127.0.0.1:{self.nodes['node-a'].admin_port()}/", "3"],
                           capture_output=True, text=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        shown = json.loads(r.stdout)
        self.assertIn("3 of 3 nodes alive; 1 with a configuration that differs", shown["caption"])
        rows = {row[0]: row for row in shown["nodes"]}
        self.assertIn("DIFFERS", rows["node-c"][3])
        self.assertNotIn("DIFFERS", rows["node-b"][3])
        self.assertIn(["hubs/hub2", "up", "up", "down"], shown["opinions"])

        # node-c reloaded with the others' configuration: its next heartbeat
        # carries their digest, and the flag goes.
        c = self.nodes["node-c"]
        with open(c.config, "w") as f:
            f.write(harness.with_test_threads(
                self.config_text("node-c", c.smtp_port, self.sinks["hub2"].port))
                .replace("@TRACKING@", c.tracking).replace("@STATE@", self.workdir))
        request = urllib.request.Request(
            f"http://127.0.0.1:{c.admin_port()}/api/v1/reload", method="POST", data=b"{}",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            self.assertTrue(json.load(r)["reloaded"])
        wait_until(lambda: not self.listed("node-a")["node-c"]["digest_differs_from_majority"],
                   timeout=5, what="node-c's new digest, the others'")
        self.assertEqual(self.listed("node-a")["node-c"]["digest"], nodes["node-a"]["digest"])

        # node-c killed (SIGKILL: no goodbye): gone once its key expires.
        c.process.proc.kill()
        c.process.proc.wait(timeout=10)
        c.process.proc = None  # nothing left for the cleanup to stop
        killed = time.monotonic()
        wait_until(lambda: not self.listed("node-a")["node-c"]["alive"], timeout=10,
                   what="node A to see node-c gone")
        took = time.monotonic() - killed
        self.assertLess(took, 3.0 + 2.5, "gone later than its expiry (3 s) and two reads")
        wait_until(lambda: not self.listed("node-b")["node-c"]["alive"], timeout=3,
                   what="node B to see node-c gone")
        self.assertTrue(self.nodes["node-a"].log_lines("event=cluster_node_gone node=node-c "))
        self.assertEqual(self.cluster("node-a")["live_nodes"], 2)
        self.assertRegex(self.status_cluster("node-a"), r"(?m)^node-c\s+gone\s")

    def test_a_client_sticks_to_one_backend_through_every_node(self):
        wait_until(lambda: len([n for n in self.listed("node-b").values() if n["alive"]]) == 3,
                   timeout=10, what="node B to see the other nodes")
        for name in ("node-a", "node-b"):
            wait_until(lambda: all(b["health"] == "up" for b in self.listed(name)[name][
                "backends"]), timeout=10, what=f"{name}'s backends up")
        # node B's round robin one step ahead of node A's: without shared
        # sticks every client below would land elsewhere through node B.
        self.send_from("node-b", "127.0.0.99")
        for source in CLIENTS:
            self.send_from("node-a", source)
        first = {source: self.backends_of(source) for source in CLIENTS}
        for source, backends in first.items():
            self.assertEqual(len(backends), 1, source)
        self.assertEqual({b for s in first.values() for b in s}, {"hub1", "hub2"})
        wait_until(lambda: (self.metric("node-b", 'smtplb_cluster_sticks_total{result="applied"}')
                            or 0) >= len(CLIENTS),
                   timeout=5, what="node B to apply node A's sticks")
        self.assertEqual(self.redis.cli("GET", f"smtplb:stick:hubs:{CLIENTS[0]}"),
                         next(iter(first[CLIENTS[0]])))
        ttl = int(self.redis.cli("PTTL", f"smtplb:stick:hubs:{CLIENTS[0]}"))
        self.assertGreater(ttl, 0)
        for source in CLIENTS:
            self.send_from("node-b", source, count=2)
        for source in CLIENTS:
            self.assertEqual(self.backends_of(source), first[source],
                             f"{source} went elsewhere through node B")

    def test_without_cluster_the_command_and_api_say_so(self):
        port = free_port()
        text = configs.balancer(port, [("hub1", self.sinks["hub1"].port)],
                                server_options={"admin": "127.0.0.1:0"})
        lb = Smtplb(self.workdir, text, name="alone")
        lb.start(port)
        self.addCleanup(lb.stop)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{lb.admin_port()}/api/v1/cluster",
                                   timeout=10)
        self.assertEqual(e.exception.code, 404)
        r = subprocess.run([harness.SMTPLB, "status", "--cluster", "--admin",
                            f"127.0.0.1:{lb.admin_port()}"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no [cluster]", r.stdout)


if __name__ == "__main__":
    main()
