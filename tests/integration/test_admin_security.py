"""The admin listener's security (docs/admin.md): the dashboard's files load
without a token while the API and /metrics need one; a read-only token may
only read; a state change needs a JSON body and no foreign Origin; a foreign
Host is refused (DNS rebinding); optional TLS. Each refusal is checked to
change nothing in the daemon, and smtplb's own CLI must still work."""
import http.client
import json
import os
import ssl
import subprocess

import configs
import harness
from harness import Smtplb, WorkdirTestCase, free_port, main, make_ca, make_certificate

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READONLY_TOKEN = "readonly-token-0123456789abcdef"


def request(port, method, path, headers=None, body=None, host=None, tls_context=None):
    """(status, parsed JSON or text) for one request with exactly these headers."""
    if tls_context:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls_context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    data = body.encode() if isinstance(body, str) else body
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    if r.getheader("Content-Type", "").startswith("application/json"):
        return r.status, json.loads(text)
    return r.status, text


def bearer(token):
    return {"Authorization": "Bearer " + token}


JSON = {"Content-Type": "application/json"}


class AdminSecurity(WorkdirTestCase):
    def start_daemon(self, tokens=True, extra_server=None):
        self.sinks = self.start_sinks("a", "b")
        # A real port, not 0: the CLI reads it from the configuration.
        server = {"admin": f"127.0.0.1:{free_port()}", "admin_hosts": ["admin.test"]}
        if tokens:
            for name, token in (("admin", ADMIN_TOKEN), ("readonly", READONLY_TOKEN)):
                path = os.path.join(self.workdir, f"{name}.token")
                with open(path, "w") as f:
                    f.write(token + "\n")
                key = "admin_token_file" if name == "admin" else "admin_readonly_token_file"
                server[key] = path
        server.update(extra_server or {})
        port = free_port()
        self.lb = Smtplb(self.workdir, configs.balancer(
            port, [(s.name, s.port) for s in self.sinks],
            pool_options={"on_unavailable": "spool"}, server_options=server))
        self.lb.start(port)
        self.addCleanup(self.lb.stop)
        self.port = self.lb.admin_port()
        return self.lb

    def admin_state(self, backend="a"):
        status, doc = request(self.port, "GET", "/api/v1/status", bearer(READONLY_TOKEN))
        self.assertEqual(status, 200, doc)
        return next(b for b in doc["pools"][0]["backends"] if b["name"] == backend)["admin"]

    def cli(self, *args):
        return subprocess.run([harness.SMTPLB, *args, "--config", self.lb.config],
                              capture_output=True, text=True, timeout=30)

    def test_page_loads_without_the_token_the_api_needs_it(self):
        self.start_daemon()
        for path in ("/", "/app.js", "/style.css"):
            status, body = request(self.port, "GET", path)
            self.assertEqual(status, 200, path)
        self.assertIn("<title>smtplb</title>", request(self.port, "GET", "/")[1])
        for path in ("/api/v1/status", "/metrics", "/api/v1/queue"):
            status, body = request(self.port, "GET", path)
            self.assertEqual(status, 401, path)
            self.assertIn("token", body["error"])
            status, body = request(self.port, "GET", path, bearer("wrong-token-0123456789"))
            self.assertEqual(status, 401, path)
        status, body = request(self.port, "GET", "/metrics", bearer(READONLY_TOKEN))
        self.assertEqual(status, 200)
        self.assertIn("smtplb_backend_attempts_total", body)
        status, doc = request(self.port, "GET", "/api/v1/status", bearer(ADMIN_TOKEN))
        self.assertEqual(status, 200)

    def test_head_answers_like_get_without_a_body(self):
        self.start_daemon()
        for path, headers in (("/", {}), ("/api/v1/status", bearer(READONLY_TOKEN))):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("HEAD", path, headers=headers)
            r = conn.getresponse()
            self.assertEqual(r.status, 200, path)
            self.assertGreater(int(r.getheader("Content-Length")), 0, path)
            self.assertEqual(r.read(), b"", path)
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("HEAD", "/api/v1/status")
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (401, b""))  # the token rules are GET's
        conn.close()

    def test_two_host_or_origin_headers_are_a_bad_request(self):
        self.start_daemon()
        for extra in ({"Host": "evil.example"}, {"Origin": "http://evil.example"}):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.putrequest("POST", "/api/v1/backends/hubs/a/drain", skip_host=True,
                            skip_accept_encoding=True)
            conn.putheader("Host", f"127.0.0.1:{self.port}")
            if "Origin" in extra:
                conn.putheader("Origin", f"http://127.0.0.1:{self.port}")
            for k, v in extra.items():
                conn.putheader(k, v)
            for k, v in {**JSON, **bearer(ADMIN_TOKEN), "Content-Length": "2"}.items():
                conn.putheader(k, v)
            conn.endheaders(b"{}")
            r = conn.getresponse()
            self.assertEqual(r.status, 400, extra)
            r.read()
            conn.close()
        self.assertEqual(self.admin_state(), "enabled")

    def test_a_post_without_a_token_is_refused(self):
        self.start_daemon()
        status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain", JSON, "{}")
        self.assertEqual(status, 401, body)
        self.assertEqual(self.admin_state(), "enabled")

    def test_the_read_only_token_cannot_drain(self):
        self.start_daemon()
        status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                               {**bearer(READONLY_TOKEN), **JSON}, "{}")
        self.assertEqual(status, 403, body)
        self.assertIn("read-only", body["error"])
        status, body = request(self.port, "POST", "/api/v1/reload",
                               {**bearer(READONLY_TOKEN), **JSON}, "{}")
        self.assertEqual(status, 403, body)
        self.assertEqual(self.admin_state(), "enabled")

    def test_a_cross_origin_post_is_refused(self):
        self.start_daemon()
        for origin in ("http://evil.example", "null", f"https://127.0.0.1:{self.port}",
                       f"http://127.0.0.1:{self.port + 1}"):
            status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                                   {**bearer(ADMIN_TOKEN), **JSON, "Origin": origin}, "{}")
            self.assertEqual(status, 403, origin)
            self.assertIn("cross-origin", body["error"])
        self.assertEqual(self.admin_state(), "enabled")
        # The page's own origin, under the address or an admin_hosts name, may.
        for origin, host in ((f"http://127.0.0.1:{self.port}", None),
                             (f"http://admin.test:{self.port}", f"admin.test:{self.port}")):
            status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                                   {**bearer(ADMIN_TOKEN), **JSON, "Origin": origin}, "{}",
                                   host=host)
            self.assertEqual(status, 200, body)
        self.assertEqual(self.admin_state(), "drain")

    def test_a_text_plain_post_is_refused(self):
        self.start_daemon()
        for headers, body in (({"Content-Type": "text/plain"}, "{}"),
                              ({"Content-Type": "application/x-www-form-urlencoded"}, "a=b"),
                              ({}, None),
                              (JSON, "drain please")):
            status, doc = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                                  {**bearer(ADMIN_TOKEN), **headers}, body)
            self.assertEqual(status, 403, (headers, body))
            self.assertIn("JSON", doc["error"])
        self.assertEqual(self.admin_state(), "enabled")

    def test_a_foreign_host_is_refused_everywhere(self):
        self.start_daemon()
        for host in ("evil.example", f"evil.example:{self.port}", f"127.0.0.2:{self.port}",
                     f"127.0.0.1:{self.port + 1}", ""):
            for method, path, headers, body in (
                    ("GET", "/", {}, None),
                    ("GET", "/api/v1/status", bearer(ADMIN_TOKEN), None),
                    ("POST", "/api/v1/backends/hubs/a/drain", {**bearer(ADMIN_TOKEN), **JSON},
                     "{}")):
                status, doc = request(self.port, method, path, headers, body, host=host)
                self.assertEqual(status, 421, (host, path))
                self.assertIn("Host", doc["error"])
        self.assertEqual(self.admin_state(), "enabled")
        for host in (f"admin.test:{self.port}", "ADMIN.test", f"localhost:{self.port}"):
            status, _ = request(self.port, "GET", "/", host=host)
            self.assertEqual(status, 200, host)

    def test_without_a_token_a_cross_site_post_is_still_refused(self):
        # The case: no token (the default), a page on another site
        # posts text/plain. Browsers send such a "simple" request without
        # asking first; it must not drain anything.
        self.start_daemon(tokens=False)
        status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                               {"Origin": "http://evil.example", "Content-Type": "text/plain"},
                               "{}")
        self.assertEqual(status, 403, body)
        status, body = request(self.port, "POST", "/api/v1/backends/hubs/a/drain",
                               {"Content-Type": "text/plain"}, "{}")
        self.assertEqual(status, 403, body)
        self.assertEqual(self.admin_state(), "enabled")

    def test_the_cli_works_with_a_token(self):
        self.start_daemon()
        r = self.cli("backend", "hubs", "a", "drain")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("admin drain", r.stdout)
        self.assertEqual(self.admin_state(), "drain")
        r = self.cli("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("drain", r.stdout)
        r = self.cli("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli("queue", "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cli("queue", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The read-only token is refused a change, with the daemon's reason.
        readonly = os.path.join(self.workdir, "readonly.token")
        r = self.cli("backend", "hubs", "a", "enable", "--token-file", readonly)
        self.assertEqual(r.returncode, 1)
        self.assertIn("read-only", r.stderr)
        _, doc = request(self.port, "GET", "/api/v1/status", bearer(ADMIN_TOKEN))
        self.assertEqual(doc["reloads"]["ok"], 1)
        self.assertTrue(doc["reloads"]["last"]["ok"])


class AdminTls(WorkdirTestCase):
    def setUp(self):
        super().setUp()
        self.ca = make_ca(self.workdir)
        self.cert, self.key = make_certificate(self.workdir, self.ca, "admin")

    def test_admin_over_tls_and_the_cli_with_it(self):
        sinks = self.start_sinks("a", "b")
        token = os.path.join(self.workdir, "admin.token")
        with open(token, "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        port = free_port()
        lb = Smtplb(self.workdir, configs.balancer(
            port, [(s.name, s.port) for s in sinks],
            server_options={"admin": f"127.0.0.1:{free_port()}", "admin_token_file": token,
                            "admin_tls": {"cert": self.cert, "key": self.key}}))
        lb.start(port)
        self.addCleanup(lb.stop)
        admin = lb.admin_port()
        context = ssl.create_default_context(cafile=self.ca[0])
        status, body = request(admin, "GET", "/", tls_context=context)
        self.assertEqual(status, 200)
        status, doc = request(admin, "POST", "/api/v1/backends/hubs/b/drain",
                              {**bearer(ADMIN_TOKEN), **JSON,
                               "Origin": f"https://127.0.0.1:{admin}"}, "{}",
                              tls_context=context)
        self.assertEqual(status, 200, doc)
        # Plain HTTP gets no answer on a TLS listener.
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            request(admin, "GET", "/")
        # The CLI reads admin_tls from the configuration and trusts its certificate.
        run = lambda *a: subprocess.run([harness.SMTPLB, *a], capture_output=True, text=True,
                                        timeout=30)
        r = run("backend", "hubs", "a", "drain", "--config", lb.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("status", "--config", lb.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(" drain "), 2, r.stdout)
        r = run("reload", "--config", lb.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Or --admin with --tls-ca, verifying the address in the certificate.
        r = run("status", "--admin", f"127.0.0.1:{admin}", "--token-file", token,
                "--tls-ca", self.ca[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        other_ca = make_ca(self.workdir, "other")
        r = run("status", "--admin", f"127.0.0.1:{admin}", "--token-file", token,
                "--tls-ca", other_ca[0])
        self.assertEqual(r.returncode, 1)
        self.assertIn("TLS", r.stderr)

    def test_check_reports_unusable_admin_tls_files_with_their_line(self):
        bad_key = os.path.join(self.workdir, "bad.key")
        with open(bad_key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        cases = {"missing": ({"cert": self.cert, "key": "/nonexistent/admin.key"},
                             "cannot read \"/nonexistent/admin.key\""),
                 "bad": ({"cert": self.cert, "key": bad_key}, "private key"),
                 "incomplete": ({"cert": self.cert}, "server.admin_tls.key")}
        for name, (tls, expected) in cases.items():
            path = os.path.join(self.workdir, f"{name}.toml")
            with open(path, "w") as f:
                f.write(configs.balancer(free_port(), [("a", 2525)], server_options={
                    "admin": "127.0.0.1:0", "admin_tls": tls})
                        .replace("@STATE@", self.workdir)
                        .replace("@TRACKING@", os.path.join(self.workdir, "t.jsonl")))
            with open(path) as f:
                line = next(i for i, text in enumerate(f, 1) if text.startswith("admin_tls"))
            r = subprocess.run([harness.SMTPLB, "check", "--config", path],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, name)
            self.assertIn(expected, r.stderr, name)
            self.assertIn(f"{path}:{line}:", r.stderr, name)
            # `run` refuses it too, with the same reason.
            r = subprocess.run([harness.SMTPLB, "run", "--config", path],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, name)
            self.assertIn("admin_tls", r.stderr, name)


if __name__ == "__main__":
    main()
