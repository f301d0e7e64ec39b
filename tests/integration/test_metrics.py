"""/metrics for operators: the daemon's build, start time, reloads and
certificate expiry; counters that a reload does not reset; and the alert
rules and Grafana dashboard in dist/, which must use only metrics that a
real scrape has (and pass promtool)."""
import json
import os
import re
import subprocess
import time
import urllib.request

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ALERTS = os.path.join(ROOT, "dist", "prometheus-alerts.yml")
DASHBOARD = os.path.join(ROOT, "dist", "grafana-dashboard.json")
METRIC = re.compile(r"\b((?:smtplb|process)_[a-z0-9_]+)")


def scrape(admin):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
        return r.read().decode()


def samples(text):
    """{(name, labels): value} and {family: type} of an exposition."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, labels = key.partition("{")
            values[(name, labels.rstrip("}"))] = float(value)
    return values, types


def counter_family(name, types):
    for suffix in ("", "_bucket", "_sum", "_count"):
        if suffix and not name.endswith(suffix):
            continue
        family = name[: len(name) - len(suffix)] if suffix else name
        if types.get(family) in ("counter", "histogram"):
            return True
    return False


def dashboard_queries():
    with open(DASHBOARD) as f:
        board = json.load(f)
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return exprs


class Metrics(WorkdirTestCase):
    def start(self, backends, extra_listeners=(), pool_options=None):
        self.port = free_port()
        self.lb = Smtplb(self.workdir, configs.balancer(
            self.port, backends, server_options={"admin": "127.0.0.1:0"},
            extra_listeners=extra_listeners, pool_options=pool_options))
        self.lb.start(self.port)
        self.addCleanup(self.lb.stop)
        return f"127.0.0.1:{self.lb.admin_port()}"

    def rewrite(self, text):
        with open(self.lb.config, "w") as f:
            f.write(harness.with_test_threads(text).replace("@TRACKING@", self.lb.tracking)
                    .replace("@STATE@", self.workdir))

    def reload(self, admin):
        return subprocess.run([harness.SMTPLB, "reload", "--admin", admin], capture_output=True,
                              text=True, timeout=30)

    def send(self, n):
        import smtplib
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            for i in range(n):
                s.sendmail("a@outside.example", ["u@example.net"], f"Subject: m{i}\r\n\r\nx\r\n")

    def test_alert_rules_and_dashboard_queries_pass_promtool(self):
        r = subprocess.run(["promtool", "check", "rules", ALERTS], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(ALERTS) as f:
            rules = sum(1 for line in f if line.lstrip().startswith("- alert:"))
        self.assertGreaterEqual(rules, 8)
        self.assertIn(f"SUCCESS: {rules} rules found", r.stdout)
        # Each alert fires on the series it is about, and not before its time.
        r = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"],
                           cwd=os.path.join(ROOT, "tests", "prometheus"), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The dashboard's queries parse as PromQL (Grafana's variables filled in).
        rules = [{"record": f"dashboard:query{i}",
                  "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")
                  .replace("$job", ".*")}
                 for i, e in enumerate(dashboard_queries()) if not e.startswith("label_values")]
        path = os.path.join(self.workdir, "dashboard-rules.yml")
        with open(path, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_metric_in_the_rules_and_dashboard_is_in_a_real_scrape(self):
        (sink,) = self.start_sinks("a")
        ca = harness.make_ca(self.workdir)
        cert = harness.make_certificate(self.workdir, ca, "lb", days=30)
        tls_port = free_port()
        admin = self.start(
            [("a", sink.port)],
            extra_listeners=[{"name": "submission", "bind": f"127.0.0.1:{tls_port}",
                              "role": "relay", "trusted_networks": ["127.0.0.1"], "pool": "hubs",
                              "tls": {"mode": "starttls", "cert": cert[0], "key": cert[1]}}],
            pool_options={"on_unavailable": "spool", "health": {"interval": "200ms"}})
        self.send(2)
        text = scrape(admin)
        exposed = {key[0] for key in samples(text)[0]}
        with open(ALERTS) as f:
            used = set(METRIC.findall(f.read()))
        used |= {m for e in dashboard_queries() for m in METRIC.findall(e)}
        self.assertGreater(len(used), 20)
        self.assertEqual(sorted(used - exposed), [], "used in dist/ but not on /metrics")

        values, types = samples(text)
        # And every family it exposes is documented.
        with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
            documented = set(re.findall(r"`((?:smtplb|process)_[a-z0-9_]+)`", f.read()))
        self.assertEqual(sorted(set(types) - documented), [], "not in docs/metrics.md")
        self.assertEqual(types["smtplb_certificate_expiry_seconds"], "gauge")
        left = values[("smtplb_certificate_expiry_seconds", 'listener="submission"')]
        self.assertTrue(29 * 86400 < left <= 30 * 86400, left)
        self.assertNotIn(("smtplb_certificate_expiry_seconds", 'listener="internet"'), values)
        build = [k for k in values if k[0] == "smtplb_build_info"]
        self.assertEqual(len(build), 1)
        self.assertRegex(build[0][1], r'version="\d+\.\d+\.\d+"')
        self.assertLessEqual(abs(values[("smtplb_start_time_seconds", "")] - time.time()), 120)
        self.assertEqual(values[("smtplb_reloads_total", 'result="ok"')], 0)
        self.assertEqual(values[("smtplb_config_last_reload_successful", "")], 1)

    def test_counters_survive_reload(self):
        a, b = self.start_sinks("a", "b")
        backends = [("hub", a.port)]
        pool = {"health": {"interval": "200ms"}}
        admin = self.start(backends, pool_options=pool)
        self.send(3)
        wait_until(lambda: samples(scrape(admin))[0][("smtplb_health_probes_total", "")] >= 3,
                   what="three probes")
        before, types = samples(scrape(admin))
        self.assertEqual(before[("smtplb_backend_attempts_total",
                                 'pool="hubs",backend="hub",outcome="delivered"')], 3)
        # The backend keeps its name and pool but moves to another server:
        # its counters go on (matched by pool and name), as do the
        # listener's and the probes' (a new generation probes anew).
        self.rewrite(configs.balancer(self.port, [("hub", b.port)],
                                      server_options={"admin": "127.0.0.1:0"}, pool_options=pool))
        r = self.reload(admin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"address of backend hub in pool hubs: 127.0.0.1:{a.port} -> "
                      f"127.0.0.1:{b.port}", r.stdout)
        after, _ = samples(scrape(admin))
        lower = [(k, before[k], after[k]) for k in before
                 if counter_family(k[0], types) and k in after and after[k] < before[k]]
        self.assertEqual(lower, [], "counters that went back after a reload")
        missing = [k for k in before if counter_family(k[0], types) and k not in after]
        self.assertEqual(missing, [])
        self.assertEqual(after[("smtplb_reloads_total", 'result="ok"')], 1)
        self.assertGreater(after[("smtplb_config_last_reload_timestamp_seconds", "")], 0)

        # A refused reload counts as failed, and says so until one works.
        self.rewrite(configs.balancer(self.port, [("hub", b.port)], pool_options={"bogus": 1},
                                      server_options={"admin": "127.0.0.1:0"}))
        self.assertEqual(self.reload(admin).returncode, 1)
        values, _ = samples(scrape(admin))
        self.assertEqual(values[("smtplb_reloads_total", 'result="failed"')], 1)
        self.assertEqual(values[("smtplb_config_last_reload_successful", "")], 0)
        self.send(1)
        wait_until(lambda: len(b.messages()) == 1, what="the message at b")
        values, _ = samples(scrape(admin))
        self.assertEqual(values[("smtplb_backend_attempts_total",
                                 'pool="hubs",backend="hub",outcome="delivered"')], 4)

    def test_spool_counters_survive_a_reload_to_another_state_dir(self):
        # No backend listens: the message is spooled.
        pool = {"on_unavailable": "spool", "connect_timeout": "1s",
                "health": {"interval": "1s", "down_interval": "1s", "fall": 1}}
        admin = self.start([("hub", free_port())], pool_options=pool)
        self.send(1)
        spooled = ("smtplb_spool_events_total", 'event="spooled"')
        self.assertEqual(samples(scrape(admin))[0][spooled], 1)
        other = os.path.join(self.workdir, "other")
        os.mkdir(other)
        self.rewrite(configs.balancer(self.port, [("hub", free_port())], pool_options=pool,
                                      server_options={"admin": "127.0.0.1:0"})
                     .replace("@STATE@", other))
        r = self.reload(admin)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("server.state_dir: ", r.stdout)
        self.assertEqual(samples(scrape(admin))[0][spooled], 1)


if __name__ == "__main__":
    main()
