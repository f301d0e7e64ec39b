"""Transparent mode (issue 26): smtplb connects to backends from the client's
own address (IP_TRANSPARENT), so a real Postfix that trusts no balancer
(no smtpd_authorized_xclient_hosts for it) logs the client as its peer.

Everything runs in network namespaces the test creates (netns_lab.py):
    client 10.226.1.2 -> smtplb 10.226.1.1 | 10.226.2.1 -> Postfix 10.226.2.1x
with the backends' replies routed back through the balancer namespace.
The privilege test drops CAP_NET_ADMIN with capsh and needs no namespace."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import unittest

import configs
import harness
from harness import WorkdirTestCase, free_port, main, postfix_available, wait_until
from netns_lab import Lab, lab_available

SMTP, XCLIENT, TCP, TCP_PORT, DUAL, TCP_PORT2 = 25, 26, 27, 28, 29, 30
HELO = "client.example"


def client_re(address):
    """Postfix's `client=NAME[ADDR]` (":PORT" with smtpd_client_port_logging)."""
    return re.compile(r"\]?: client=([^\[\s]+)\[" + re.escape(address) + r"\](?::(\d+))?")


def clients_logged(postfix, address):
    """(name, port) of each message Postfix logged from `address`."""
    pattern = client_re(address)
    return [m.groups() for m in map(pattern.search, postfix.log_lines()) if m]


def send(lab, host, port, count, source=None, helo=HELO):
    """`count` messages over one SMTP connection made from the client
    namespace (from `source`, an (address, port) pair, when given)."""
    def session():
        with smtplib.SMTP(host, port, local_hostname=helo, source_address=source,
                          timeout=30) as s:
            for i in range(count):
                s.sendmail("alice@example.org", ["bob@example.net"],
                           f"Subject: transparent {i}\r\n\r\nhello\r\n")
    lab.call_in("client", session)


def config_text(lab, hubs, threads):
    """Four listeners on the balancer's client-side address, one dual-stack."""
    a = lab.balancer_client_side_addr
    text = configs.table("[server]", {
        "hostname": "lb.test", "state_dir": "@STATE@", "tracking_log": "@TRACKING@",
        "admin": "", "threads": threads})
    listeners = [
        {"name": "smtp", "bind": f"{a}:{SMTP}", "pool": "hubs", "client_identity": "transparent"},
        {"name": "xclient", "bind": f"{a}:{XCLIENT}", "pool": "xhub",
         "client_identity": "transparent+xclient"},
        {"name": "tcp", "bind": f"{a}:{TCP}", "mode": "tcp", "pool": "xhub",
         "client_identity": "transparent"},
        {"name": "tcp_port", "bind": f"{a}:{TCP_PORT}", "mode": "tcp", "pool": "xhub",
         "client_identity": "transparent", "transparent_port": True},
        {"name": "dual", "bind": f"[::]:{DUAL}", "pool": "mixed",
         "client_identity": "transparent"},
        {"name": "tcp_port2", "bind": f"{a}:{TCP_PORT2}", "mode": "tcp", "pool": "xhub",
         "client_identity": "transparent", "transparent_port": True},
    ]
    for listener in listeners:
        if listener.get("mode") != "tcp":
            listener.update({"accepted_domains": ["example.net"], "resolve_client_names": False})
        text += configs.table("[[listener]]", listener)
    health = {"depth": "mail", "interval": "1s"}
    for pool, members in (("hubs", ["hub1", "hub2"]), ("xhub", ["hub3"]),
                          ("mixed", ["hub1", "hub6"])):
        text += configs.table("[[pool]]", {"name": pool, "health": health})
        for name in members:
            text += configs.table("[[pool.backend]]",
                                  {"name": name, "address": hubs[name].endpoint})
    return text


class TransparentTestCase(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        ok, reason = lab_available()
        if not ok:
            self.skipTest("transparent mode needs network namespaces: " + reason)
        self.assertTrue(postfix_available(), "postfix must be installed (scripts/bootstrap.sh test)")

    def start_lab(self):
        lab = Lab(self.workdir).__enter__()
        self.addCleanup(lab.close)
        return lab

    def start_postfix(self, lab, name, address, extra_main=""):
        # No XCLIENT for anyone unless asked: the backend trusts no balancer.
        # No name lookups: the namespaces have no DNS, and each would wait out its timeout.
        extra = ("smtpd_authorized_xclient_hosts =\nsmtpd_client_port_logging = yes\n"
                 "smtpd_peername_lookup = no\n" + extra_main)
        pf = lab.postfix(name, address, extra_main=extra)
        pf.start()
        self.addCleanup(pf.stop)
        pf.endpoint = f"[{address}]:25" if ":" in address else f"{address}:25"
        return pf

    def start_smtplb(self, lab, text, name):
        lb_config = os.path.join(self.workdir, f"{name}.toml")
        tracking = os.path.join(self.workdir, f"{name}-tracking.jsonl")
        with open(lb_config, "w") as f:
            f.write(text.replace("@TRACKING@", tracking).replace("@STATE@", self.workdir))
        err = open(os.path.join(self.workdir, f"{name}.err"), "wb")
        proc = lab.popen("balancer", [harness.SMTPLB, "run", "--config", lb_config], stderr=err)
        err.close()
        try:
            lab.wait_for_port("balancer", lab.balancer_client_side_addr, SMTP, proc=proc)
        except RuntimeError:
            with open(os.path.join(self.workdir, f"{name}.err")) as f:
                raise RuntimeError("smtplb did not start:\n" + f.read())
        return proc, tracking

    def stop_smtplb(self, proc, name):
        proc.terminate()
        rc = proc.wait(timeout=30)
        with open(os.path.join(self.workdir, f"{name}.err"), errors="replace") as f:
            log = f.read()
        self.assertEqual(rc, 0, log[-4000:])
        return log


class Transparent(TransparentTestCase):
    def test_backends_see_the_client_as_their_peer(self):
        lab = self.start_lab()
        client = lab.client_addr
        # hub3 authorises XCLIENT for the clients' range: after a transparent
        # connect the peer it judges XCLIENT by is the client, not smtplb.
        checks = os.path.join(self.workdir, "received_checks")
        with open(checks, "w") as f:
            f.write("/^Received: from / WARN\n")
        hubs = {
            "hub1": self.start_postfix(lab, "hub1", lab.backend_addrs[0]),
            "hub2": self.start_postfix(lab, "hub2", lab.backend_addrs[1]),
            "hub3": self.start_postfix(
                lab, "hub3", lab.backend_addrs[2],
                extra_main=f"smtpd_authorized_xclient_hosts = 10.226.1.0/24\n"
                           f"header_checks = regexp:{checks}\n"),
        }
        hub6 = hubs["hub6"] = self.start_postfix(lab, "hub6", lab.backend_addrs_v6[0])

        # The reference: the same client talking to Postfix directly (the
        # routing recipe sends every reply from the backends to smtplb's
        # host, so it is off meanwhile).
        lab.remove_recipe()
        send(lab, lab.backend_addrs[0], 25, 1)
        wait_until(lambda: clients_logged(hubs["hub1"], client), what="hub1 logging the direct client")
        direct_name = clients_logged(hubs["hub1"], client)[0][0]
        lab.apply_rule_recipe()

        messages = 0
        for threads in (1, 2):
            name = f"smtplb-{threads}"
            proc, tracking = self.start_smtplb(lab, config_text(lab, hubs, threads), name)
            # One client connection, several messages: each from the client's address.
            send(lab, lab.balancer_client_side_addr, SMTP, 6)
            messages += 6
            both = lambda: clients_logged(hubs["hub1"], client)[1:] + clients_logged(hubs["hub2"], client)
            wait_until(lambda: len(both()) >= messages,
                       what=f"{messages} messages logged from {client} (threads={threads})")
            self.assertEqual(len(both()), messages)
            self.assertTrue(clients_logged(hubs["hub2"], client), "hub2 never used")
            self.assertGreater(len(clients_logged(hubs["hub1"], client)), 1, "hub1 never used")
            # The same client= form as directly (name lookup included).
            self.assertEqual({n for n, _ in both()}, {direct_name})
            log = self.stop_smtplb(proc, name)
            self.assertNotIn("transparent_connect_failed", log)
        proc, tracking = self.start_smtplb(lab, config_text(lab, hubs, 1), "smtplb-more")
        # transparent+xclient: hub3 records the client's HELO too.
        send(lab, lab.balancer_client_side_addr, XCLIENT, 2)
        hub3 = hubs["hub3"]
        wait_until(lambda: len(clients_logged(hub3, client)) >= 2, what="hub3: 2 messages")
        wait_until(lambda: sum(f"warning: header Received: from {HELO} (" in l and f"[{client}]"
                               in l for l in hub3.log_lines()) >= 2,
                   what="hub3's Received: header with the client's HELO and address")

        # tcp mode: the client's address; with transparent_port its port too.
        for port, source_port in ((TCP, 0), (TCP_PORT, 41234)):
            before = len(clients_logged(hub3, client))
            send(lab, lab.balancer_client_side_addr, port, 1,
                 source=(client, source_port) if source_port else None)
            wait_until(lambda: len(clients_logged(hub3, client)) > before,
                       what=f"hub3: a message through tcp port {port}")
            name, logged_port = clients_logged(hub3, client)[-1]
            wait_until(lambda: any(r["listener"] == ("tcp" if port == TCP else "tcp_port")
                                   for r in read_tracking(tracking)), what="the tcp record")
            tcp_record = [r for r in read_tracking(tracking) if r["listener"] in ("tcp", "tcp_port")][-1]
            self.assertEqual(tcp_record["identity"], "transparent")
            self.assertEqual(name, direct_name)
            if source_port:
                self.assertEqual(logged_port, str(source_port))

        # transparent_port: one client address and port passed to the same
        # backend twice (through two listeners) cannot be; the second is
        # refused here, and the backend is not judged for it.
        def collide():
            first = socket.socket()
            first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            first.bind((client, 41300))
            first.settimeout(30)
            first.connect((lab.balancer_client_side_addr, TCP_PORT))
            greeting = first.recv(1024)
            second = socket.socket()
            second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            second.bind((client, 41300))
            second.settimeout(30)
            second.connect((lab.balancer_client_side_addr, TCP_PORT2))
            refused = second.recv(1024)
            first.sendall(b"QUIT\r\n")
            first.recv(1024)
            first.close()
            second.close()
            return greeting, refused
        greeting, refused = lab.call_in("client", collide)
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        self.assertEqual(refused, b"")

        # A dual-stack listener, a pool of one IPv4 and one IPv6 backend: each
        # client reaches the backend of its own family, and the other one is
        # passed over without being judged.
        send(lab, lab.balancer_client_side_addr, DUAL, 2)
        send(lab, lab.balancer_client_side_addr_v6, DUAL, 2)
        wait_until(lambda: len(clients_logged(hub6, lab.client_addr_v6)) >= 2,
                   what="hub6: 2 messages from the client's IPv6 address")
        self.assertEqual(clients_logged(hub6, client), [])
        records = lambda: [json_record for json_record in read_tracking(tracking)
                           if json_record.get("listener") == "dual"]
        wait_until(lambda: len(records()) >= 4, what="4 tracking records of listener dual")
        for r in records():
            self.assertEqual(r["result"], "relayed", r)
            self.assertEqual(r["identity"], "transparent", r)
        # Health probes come from smtplb's own address, and never reach a
        # queue file (depth "mail"): nothing else came from that address.
        balancer = lab.balancer_backend_side_addr
        for hub in ("hub1", "hub2", "hub3"):
            wait_until(lambda: any(f"connect from unknown[{balancer}]" in l
                                   for l in hubs[hub].log_lines()),
                       what=f"{hub}: a probe from smtplb's own address")
            self.assertEqual(clients_logged(hubs[hub], balancer), [])
        log = self.stop_smtplb(proc, "smtplb-more")
        self.assertRegex(log, r"event=transparent_connect_failed listener=tcp_port2 backend=hub3 "
                              r"client=10\.226\.1\.2:41300")
        self.assertNotRegex(log, r"backend=hub3 from=\S+ to=down")
        self.assertNotRegex(log, r"backend=hub[16] from=\S+ to=down")


def read_tracking(path):
    import json
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


class TransparentPrivilege(WorkdirTestCase):
    """Without CAP_NET_ADMIN: `check` warns, `run` refuses to start."""

    def setUp(self):
        super().setUp()
        if shutil.which("capsh") is None:
            self.skipTest("capsh (package libcap2-bin) is not installed")
        self.port = free_port()
        self.config = os.path.join(self.workdir, "smtplb.toml")
        self.write_config("transparent+xclient")

    def write_config(self, identity):
        text = configs.balancer(self.port, [("hub1", free_port())],
                                listener_options={"client_identity": identity})
        with open(self.config, "w") as f:
            f.write(text.replace("@TRACKING@", os.path.join(self.workdir, "tracking.jsonl"))
                    .replace("@STATE@", self.workdir))

    def without_net_admin(self, *args):
        command = " ".join([harness.SMTPLB, *args, "--config", self.config])
        return subprocess.run(["capsh", "--drop=cap_net_admin", "--", "-c", command],
                              capture_output=True, text=True, timeout=30)

    def test_run_refuses_and_check_warns(self):
        run = self.without_net_admin("run")
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn("needs CAP_NET_ADMIN", run.stderr)
        self.assertIn("AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN", run.stderr)
        self.assertIn("listener \\\"internet\\\"", run.stderr)
        check = self.without_net_admin("check")
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertRegex(check.stderr, r"warning: listener\[0\]\.client_identity: .*needs CAP_NET_ADMIN")
        # With the capability (the test runs as root) check says nothing of it.
        with_cap = subprocess.run([harness.SMTPLB, "check", "--config", self.config],
                                  capture_output=True, text=True, timeout=30)
        self.assertEqual(with_cap.returncode, 0, with_cap.stderr)
        if os.geteuid() == 0:
            self.assertNotIn("CAP_NET_ADMIN", with_cap.stderr)


    def test_a_reload_to_transparent_is_refused(self):
        self.write_config("xclient")
        err = os.path.join(self.workdir, "run.err")
        command = f"exec {harness.SMTPLB} run --config {self.config}"
        with open(err, "wb") as f:
            proc = subprocess.Popen(["capsh", "--drop=cap_net_admin", "--", "-c", command],
                                    stderr=f)
        self.addCleanup(proc.kill)
        harness.wait_for_port(self.port, proc=proc)
        self.write_config("transparent")
        proc.send_signal(signal.SIGHUP)
        def log():
            with open(err, errors="replace") as f:
                return f.read()
        wait_until(lambda: "event=reload_refused" in log(), what="the reload refused")
        self.assertIn("needs CAP_NET_ADMIN", log())
        # Still serving with the old configuration.
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            self.assertEqual(s.noop()[0], 250)
        proc.terminate()
        self.assertEqual(proc.wait(timeout=30), 0, log())


if __name__ == "__main__":
    main()
