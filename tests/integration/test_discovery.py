"""Pools from DNS (issue 28): a pool with `discover = { mx = ... }` against a
real NSD on loopback. The MX hosts' A records point at `smtplb sink`s on
port 25 of private loopback addresses. Mail goes to both hosts of the
preferred tier and none to the backup; when the zone changes and NSD
reloads it, the pool follows within the TTL-bounded refresh (the new host
gets mail, the removed one none, the staying one keeps its counters, a new
preference re-tiers); when NSD stops, the pool keeps its last backends.
A name with no MX at start leaves the pool empty until the zone has one."""
import json
import os
import signal
import smtplib
import subprocess
import time
import urllib.request

import harness
from harness import (Nsd, Sink, Smtplb, WorkdirTestCase, free_address, free_port, main,
                     wait_until)

ZONE = "disc.test"


def zone_text(serial, mx, hosts):
    """mx: [(preference, host)]; hosts: {host: address}."""
    text = (f"$ORIGIN {ZONE}.\n$TTL 1\n"
            f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. {serial} 3600 600 86400 1\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n")
    for preference, host in mx:
        text += f"@ IN MX {preference} {host}.{ZONE}.\n"
    for host, address in hosts.items():
        text += f"{host} IN A {address}\n"
    return text


def srv_zone_text(serial, records):
    """records: [(priority, weight, port, host)], every host at 127.0.0.1."""
    text = (f"$ORIGIN {ZONE}.\n$TTL 1\n"
            f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. {serial} 3600 600 86400 1\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n")
    for priority, weight, port, host in records:
        text += f"_smtp._tcp IN SRV {priority} {weight} {port} {host}.{ZONE}.\n"
    for host in sorted({r[3] for r in records}):
        text += f"{host} IN A 127.0.0.1\n"
    return text


def config_text(port, dns_port, discover=f'mx = "{ZONE}"'):
    return f"""[server]
hostname = "lb.test"
state_dir = "@STATE@"
tracking_log = "@TRACKING@"
admin = "127.0.0.1:0"
dns_servers = ["127.0.0.1:{dns_port}"]
dns_timeout = "1s"

[[listener]]
name = "internet"
bind = "127.0.0.1:{port}"
accepted_domains = ["example.net"]
pool = "hubs"
resolve_client_names = false

[[pool]]
name = "hubs"
health = {{ enabled = false }}
discover = {{ {discover}, min_refresh = "1s", max_refresh = "2s" }}
"""


class Discovery(WorkdirTestCase):
    def start_dns(self, text):
        self.dns = Nsd(self.workdir, {ZONE: text}).start()
        self.addCleanup(self.dns.stop)
        self.zone_file = os.path.join(self.dns.dir, f"{ZONE}.zone")
        self.zone_time = time.time()

    def change_zone(self, text):
        """The zone rewritten, then NSD (the process this test started) told
        to reload it: SIGHUP reads zone files whose mtime changed."""
        with open(self.zone_file, "w") as f:
            f.write(text)
        self.zone_time += 10  # a later mtime, whatever the clock's resolution
        os.utime(self.zone_file, (self.zone_time, self.zone_time))
        self.dns.process.proc.send_signal(signal.SIGHUP)

    def start_backend(self, name):
        address = free_address(25, prefix="127.56")
        sink = Sink(self.workdir, name, port=25, host=address).start()
        self.addCleanup(sink.stop)
        return sink

    def start_lb(self, **options):
        port = free_port()
        lb = Smtplb(self.workdir, config_text(port, self.dns.port, **options))
        lb.start(port)
        self.addCleanup(lb.stop)
        return lb, port

    def send(self, port, count):
        for i in range(count):
            # A connection per message: each goes to the current generation.
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example",
                              timeout=30) as s:
                s.sendmail("alice@example.org", ["bob@example.net"],
                           f"Subject: {i}\r\n\r\nhi\r\n")

    @staticmethod
    def pool(lb):
        return lb.status()["pools"][0]

    def backends(self, lb):
        return {b["name"]: b for b in self.pool(lb)["backends"]}

    def metric(self, lb, name):
        url = f"http://127.0.0.1:{lb.admin_port()}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + "{") or line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        return None

    def test_the_pool_follows_the_mx_records(self):
        mx1, mx2, mx3, backup = (self.start_backend(n) for n in ("mx1", "mx2", "mx3", "backup"))
        hosts = {"mx1": mx1.host, "mx2": mx2.host, "mx3": mx3.host, "backup": backup.host}
        name = {s.name: f"{s.name}.{ZONE}@{s.host}" for s in (mx1, mx2, mx3, backup)}
        self.start_dns(zone_text(1, [(10, "mx1"), (10, "mx2"), (20, "backup")], hosts))
        lb, port = self.start_lb()

        # The MX records become backends, their preferences priority tiers.
        wait_until(lambda: len(self.backends(lb)) == 3, timeout=20, what="three backends from DNS")
        backends = self.backends(lb)
        self.assertEqual(set(backends), {name["mx1"], name["mx2"], name["backup"]})
        self.assertEqual(backends[name["mx1"]]["priority"], 10)
        self.assertEqual(backends[name["backup"]]["priority"], 20)
        self.assertEqual(backends[name["mx1"]]["address"], f"{mx1.host}:25")
        self.assertEqual(backends[name["mx1"]]["discovered_from"], f"mx {ZONE}")
        self.assertEqual(self.pool(lb)["discover"]["name"], ZONE)

        # Mail goes to both hosts of the preferred tier, none to the backup.
        self.send(port, 12)
        wait_until(lambda: len(mx1.messages()) + len(mx2.messages()) == 12,
                   what="12 messages at mx1 and mx2")
        self.assertGreater(len(mx1.messages()), 0)
        self.assertGreater(len(mx2.messages()), 0)
        self.assertEqual(len(backup.messages()), 0)
        mx2_delivered = self.backends(lb)[name["mx2"]]["counters"]["delivered"]
        self.assertEqual(mx2_delivered, len(mx2.messages()))

        # mx1 leaves the zone, mx3 comes in: the pool follows within the
        # refresh (TTL 1 s, bounded to [1 s, 2 s]), as a reload would.
        self.change_zone(zone_text(2, [(10, "mx2"), (10, "mx3"), (20, "backup")], hosts))
        wait_until(lambda: set(self.backends(lb)) == {name["mx2"], name["mx3"], name["backup"]},
                   timeout=20, what="mx1 replaced by mx3")
        # The backend that stayed kept its counters.
        self.assertEqual(self.backends(lb)[name["mx2"]]["counters"]["delivered"], mx2_delivered)
        mx1_before = len(mx1.messages())
        self.send(port, 12)
        wait_until(lambda: len(mx2.messages()) + len(mx3.messages()) == mx2_delivered + 12,
                   what="12 more messages at mx2 and mx3")
        self.assertGreater(len(mx3.messages()), 0)
        self.assertEqual(len(mx1.messages()), mx1_before)  # drained: no new transaction
        self.assertEqual(len(backup.messages()), 0)
        self.assertTrue(lb.log_lines("event=discovery_changed"))

        # A reload of the file keeps what DNS found (the same discover).
        lb.process.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: lb.log_lines("event=reloaded "), what="the reload")
        self.assertIn("changes=0", lb.log_lines("event=reloaded ")[0])
        self.assertEqual(set(self.backends(lb)), {name["mx2"], name["mx3"], name["backup"]})

        # The backup's preference drops below the others': it is the
        # preferred tier now and takes all the mail.
        self.change_zone(zone_text(3, [(10, "mx2"), (10, "mx3"), (5, "backup")], hosts))
        wait_until(lambda: self.backends(lb)[name["backup"]]["priority"] == 5, timeout=20,
                   what="the backup re-tiered")
        self.send(port, 4)
        wait_until(lambda: len(backup.messages()) == 4, what="4 messages at the backup")

        # NSD stops: the pool keeps its last backends, says so once, counts.
        self.dns.stop()
        wait_until(lambda: self.pool(lb)["discover"]["failing"] >= 2, timeout=20,
                   what="two failed refreshes")
        self.assertEqual(set(self.backends(lb)), {name["mx2"], name["mx3"], name["backup"]})
        self.assertEqual(len(lb.log_lines("event=discovery_failed")), 1)
        self.assertGreaterEqual(self.metric(lb, "smtplb_discovery_failures_total"), 2)
        self.assertEqual(self.metric(lb, "smtplb_discovery_backends"), 3)
        self.send(port, 2)
        wait_until(lambda: len(backup.messages()) == 6, what="mail still delivered")
        # `smtplb status` says where the pool's backends come from, and why it fails.
        r = subprocess.run([harness.SMTPLB, "status", "--admin", f"127.0.0.1:{lb.admin_port()}"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"hubs: from DNS, mx {ZONE}, 3 backends", r.stdout)
        self.assertIn("keeping the last answer", r.stdout)
        self.assertIn(name["mx3"], r.stdout)

    def test_a_name_without_mx_starts_empty_and_fills_when_dns_answers(self):
        sink = self.start_backend("hub")
        self.start_dns(zone_text(1, [], {"hub": sink.host}))
        lb, port = self.start_lb()
        wait_until(lambda: lb.log_lines("event=discovery_empty"), timeout=20,
                   what="the log line for a pool with nothing from DNS")
        self.assertIn("until it answers", lb.log_lines("event=discovery_empty")[0])
        self.assertEqual(self.backends(lb), {})
        # No backend: a temporary refusal, nothing accepted.
        with self.assertRaises(smtplib.SMTPException) as refused:
            self.send(port, 1)
        e = refused.exception
        code = (next(iter(e.recipients.values()))[0]
                if isinstance(e, smtplib.SMTPRecipientsRefused) else getattr(e, "smtp_code", 0))
        self.assertTrue(400 <= code < 500, repr(e))
        self.assertEqual(len(sink.messages()), 0)
        self.change_zone(zone_text(2, [(10, "hub")], {"hub": sink.host}))
        wait_until(lambda: len(self.backends(lb)) == 1, timeout=20, what="the pool filled")
        self.send(port, 2)
        wait_until(lambda: len(sink.messages()) == 2, what="2 messages at the hub")

    def test_srv_weights_and_ports_follow_the_zone(self):
        one, two = self.start_sinks("one", "two")
        self.start_dns(srv_zone_text(1, [(0, 1, one.port, "one"), (0, 1, two.port, "two")]))
        lb, port = self.start_lb(discover=f'srv = "_smtp._tcp.{ZONE}"')
        name_one = f"one.{ZONE}:{one.port}@127.0.0.1"
        name_two = f"two.{ZONE}:{two.port}@127.0.0.1"
        wait_until(lambda: len(self.backends(lb)) == 2, timeout=20, what="two backends from SRV")
        self.assertEqual(self.backends(lb)[name_one]["weight"], 1)
        # Re-weighted: 3 to 1. Smooth weighted round robin sends 6 of 8 to one.
        self.change_zone(srv_zone_text(2, [(0, 3, one.port, "one"), (0, 1, two.port, "two")]))
        wait_until(lambda: self.backends(lb)[name_one]["weight"] == 3, timeout=20,
                   what="the new SRV weight")
        self.send(port, 8)
        wait_until(lambda: len(one.messages()) + len(two.messages()) == 8, what="8 messages")
        self.assertEqual((len(one.messages()), len(two.messages())), (6, 2))


if __name__ == "__main__":
    main()
