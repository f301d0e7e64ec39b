"""Helpers for integration tests: the real smtplb binary, its built-in sink,
and a private Postfix instance, all on loopback, all stopped by the test.
Processes and ports are in loopback.py, Postfix, Dovecot and NSD in
real_peers.py; both are re-exported here, so tests import from harness only.

Only the standard library is used, so the tests run wherever python3 does.
"""
import argparse
import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request

# Re-exported: the tests and bench/ import them from harness.
from loopback import (Process, free_address, free_port, private_loopback,  # noqa: F401
                      wait_for_port, wait_until)
from real_peers import Dovecot, Nsd, Postfix, postfix_available  # noqa: F401

SMTPLB = None  # set by main()


class Sink:
    """`smtplb sink` recording each message it accepts as a JSON line."""

    def __init__(self, workdir, name, faults=(), extra=(), port=None, strict=False,
                 host="127.0.0.1"):
        """strict: XCLIENT as Postfix's smtpd allows it (`--xclient-strict`):
        only while the current client is authorised (127.0.0.1/32).
        host: the loopback address it listens on."""
        self.port = port or free_port()
        self.host = host
        self.name = name
        self.record = os.path.join(workdir, f"{name}.jsonl")
        args = [SMTPLB, "sink", "--listen", f"{host}:{self.port}", "--record", self.record,
                "--hostname", f"{name}.test"] + (["--xclient-strict"] if strict else [])
        for f in faults:
            args += ["--fault", f]
        args += list(extra)
        self.process = Process(args, stdout=os.path.join(workdir, f"{name}.out"),
                               stderr=os.path.join(workdir, f"{name}.err"))

    def start(self):
        self.process.start()
        wait_for_port(self.port, host=self.host, proc=self.process.proc)
        return self

    def stop(self):
        self.process.stop()

    def final_stats(self):
        """Stops the sink and returns the counters it prints on exit."""
        self.stop()
        with open(self.process.stdout_path) as f:
            return json.loads(f.read().strip().splitlines()[-1])

    def messages(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]


def with_test_threads(config_text):
    """SMTPLB_TEST_THREADS=N runs every daemon with server.threads = N (unless
    the test sets it): the whole suite then exercises several event loops."""
    threads = os.environ.get("SMTPLB_TEST_THREADS")
    if not threads or "\nthreads = " in config_text:
        return config_text
    if "[server]\n" in config_text:
        return config_text.replace("[server]\n", f"[server]\nthreads = {int(threads)}\n", 1)
    return f"[server]\nthreads = {int(threads)}\n\n" + config_text


class Smtplb:
    """`smtplb run` on a configuration written into the work directory."""

    def __init__(self, workdir, config_text, name="smtplb", env=None):
        self.workdir = workdir
        self.config = os.path.join(workdir, f"{name}.toml")
        self.tracking = os.path.join(workdir, f"{name}-tracking.jsonl")
        self.stderr = os.path.join(workdir, f"{name}.err")
        with open(self.config, "w") as f:
            f.write(with_test_threads(config_text).replace("@TRACKING@", self.tracking)
                    .replace("@STATE@", workdir))
        self.process = Process([SMTPLB, "run", "--config", self.config], stderr=self.stderr,
                               env=env)

    def start(self, port):
        self.process.start()
        try:
            wait_for_port(port, proc=self.process.proc)
        except RuntimeError:
            with open(self.stderr) as f:
                raise RuntimeError("smtplb did not start:\n" + f.read())
        return self

    def stop(self):
        """Stops the daemon; a non-zero exit (a crash, a sanitizer report) fails the test."""
        if self.process.proc is None:
            return None
        rc = self.process.stop()
        if rc != 0:
            with open(self.stderr, errors="replace") as f:
                raise AssertionError(f"smtplb exited with {rc}:\n" + f.read()[-4000:])
        return rc

    def log_lines(self, contains=""):
        with open(self.stderr, errors="replace") as f:
            return [line.rstrip("\n") for line in f if contains in line]

    def admin_port(self):
        """The admin API's port, as the daemon logged it (for admin = "127.0.0.1:0")."""
        def found():
            lines = self.log_lines("event=admin_listening ")
            return lines[-1] if lines else None
        wait_until(found, what="the admin API's log line")
        return int(found().rsplit(":", 1)[1])

    def status(self):
        """The admin API's /api/v1/status as JSON (for admin = "127.0.0.1:0")."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port()}/api/v1/status",
                                    timeout=10) as r:
            return json.load(r)

    def wait_for_capabilities(self, timeout=30):
        """Waits until the probes have read every backend's EHLO, in every
        pool: a pool offers what its backends offer (issue 25)."""
        def known():
            for pool in self.status()["pools"]:
                caps = pool.get("capabilities")
                if caps is None:  # a build without them: every backend probed
                    if not all("last_probe" in b for b in pool["backends"]):
                        return False
                elif caps["known"] != caps["backends"]:
                    return False
            return True
        wait_until(known, timeout=timeout, what="the probes' EHLO capabilities")

    def health_changes(self, backend):
        """The daemon's log lines for every change of `backend`'s health state."""
        return self.log_lines(f" backend={backend} from=")

    def tracking_records(self):
        if not os.path.exists(self.tracking):
            return []
        with open(self.tracking) as f:
            # A line still being written has no newline yet.
            return [json.loads(line) for line in f if line.endswith("\n")]


def rss_kib(pid, field="VmRSS"):
    """The resident memory of a process, in KiB (field="VmHWM": its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def read_replies(sock, count):
    """The next `count` SMTP replies on a socket, each as its last line."""
    buf, replies = b"", []
    while len(replies) < count:
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed after {replies}")
        buf += data
        while b"\r\n" in buf and len(replies) < count:
            line, buf = buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                replies.append(line.decode(errors="replace"))
    return replies


def sanitized_build(pid):
    """Whether the process runs with AddressSanitizer (redzones and
    quarantine make its memory figures a few times larger)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def make_ca(workdir, name="ca"):
    """A private certificate authority: returns (cert, key) paths."""
    key, cert = os.path.join(workdir, f"{name}.key"), os.path.join(workdir, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN=smtplb test {name}",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign"],
                   check=True, capture_output=True)
    return cert, key


def make_certificate(workdir, ca, name, dns=("localhost",), ips=("127.0.0.1",), days=2):
    """A leaf certificate signed by `ca` for the names and addresses given:
    returns (cert, key) paths; the cert file holds the leaf only."""
    key, csr = os.path.join(workdir, f"{name}.key"), os.path.join(workdir, f"{name}.csr")
    cert, ext = os.path.join(workdir, f"{name}.crt"), os.path.join(workdir, f"{name}.ext")
    san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                    "-CAcreateserial", "-out", cert, "-days", str(days), "-extfile", ext],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # Postfix reads it as root, smtplb as whoever runs the test
    return cert, key


def start_sasl_postfix(test, ca, dovecot, name, sasl=True, tls=True, extra_main=""):
    """A started Postfix (stopped at the test's cleanup) named NAME, with
    STARTTLS under a certificate from `ca` for NAME.test (when `tls`) and,
    with `sasl`, AUTH checked by `dovecot` (a started Dovecot), offered only
    inside TLS when there is TLS. The set-up shared by the tests whose
    backend authenticates (submission, AUTH=, smarthosts)."""
    extra = ""
    if tls:
        cert = make_certificate(test.workdir, ca, name, dns=(f"{name}.test",))
        extra += f"""\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert[0]}
smtpd_tls_key_file = {cert[1]}
"""
    if sasl:
        extra += f"""\
smtpd_tls_auth_only = {"yes" if tls else "no"}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dovecot.socket}
"""
    pf = Postfix(test.workdir, name, extra_main=extra + extra_main)
    pf.start()
    test.addCleanup(pf.stop)
    return pf


class RawBackend:
    """A TCP server on loopback: `serve(conn)` runs on a thread of its own
    for every connection; connections are kept until stop()."""

    def __init__(self, serve, host="127.0.0.1"):
        self.serve = serve
        self.host = host
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.sock.close()
        for c in self._conns:
            try:
                c.close()
            except OSError:
                pass


class ScriptedBackend(RawBackend):
    """A misbehaving SMTP server on loopback for hostile-backend tests.
    `answer(line)` returns the bytes to send for each command line (None
    closes the connection); EHLO gets `ehlo_lines`. Every connection is
    served on its own thread until the client or stop() ends it.
    With `per_connection`, a function returning a fresh `answer` for each
    connection (its own state), which then answers EHLO and HELO too
    (returning the bytes of `ehlo_lines` with `self.ehlo` where it wants
    the default)."""

    def __init__(self, answer, ehlo_lines=("250-scripted.test", "250 PIPELINING"),
                 per_connection=None, host="127.0.0.1"):
        self.answer = answer
        self.per_connection = per_connection
        self.ehlo = ("\r\n".join(ehlo_lines) + "\r\n").encode()
        self.lines = []  # every command line received, in order
        self.bodies = []  # every message received whole (the text before "."), in order
        self.violations = []  # commands out of sequence (a real server refuses them)
        super().__init__(self._serve, host)

    def _serve(self, conn):
        try:
            with conn:
                f = conn.makefile("rb")
                answer = self.per_connection() if self.per_connection else None
                conn.sendall(b"220 scripted.test ESMTP\r\n")
                in_data = False
                body = []
                state = {"mail": False, "rcpt": False}
                for raw in f:
                    line = raw.rstrip(b"\r\n").decode(errors="replace")
                    if in_data:
                        if line == ".":
                            in_data = False
                            self.bodies.append("\n".join(body))
                            body = []
                            state = {"mail": False, "rcpt": False}
                            conn.sendall(b"250 2.0.0 Ok: queued as SCRIPTED\r\n")
                        else:
                            body.append(line)
                        continue
                    self.lines.append(line)
                    verb = line.split(" ", 1)[0].upper()
                    self._check_sequence(verb, state, line)
                    if answer:
                        reply = answer(line)
                    elif verb in ("EHLO", "HELO"):
                        reply = self.ehlo
                    else:
                        reply = self.answer(line)
                    if reply is None:
                        return
                    if verb in ("MAIL", "RCPT") and not reply.startswith(b"2"):
                        state[verb.lower()] = state[verb.lower() + "_before"]
                    conn.sendall(reply)
                    if verb == "DATA" and reply.startswith(b"354"):
                        in_data = True
                    if verb == "QUIT":
                        return
        except OSError:
            pass

    def _check_sequence(self, verb, state, line):
        """Records what Postfix would refuse with 503 (a nested MAIL, RCPT
        without MAIL, DATA without a recipient): the fake answers as told,
        and a test can assert that smtplb never sent one."""
        # A refused MAIL or RCPT changes nothing: _serve restores "_before".
        if verb == "MAIL":
            if state["mail"]:
                self.violations.append(line)
            state["mail_before"], state["mail"] = state["mail"], True
        elif verb == "RCPT":
            if not state["mail"]:
                self.violations.append(line)
            state["rcpt_before"], state["rcpt"] = state["rcpt"], True
        elif verb == "DATA":
            if not state["rcpt"]:
                self.violations.append(line)
        elif verb in ("RSET", "EHLO", "HELO", "XCLIENT"):
            state["mail"] = state["rcpt"] = False


def plain_answers(line):
    """A well-behaved server's replies (for ScriptedBackend)."""
    verb = line.split(" ", 1)[0].upper()
    return {"DATA": b"354 go ahead\r\n", "QUIT": b"221 bye\r\n"}.get(verb, b"250 2.0.0 Ok\r\n")


def starttls_client(port, cafile, source="127.0.0.2", helo="laptop.example"):
    """An smtplib session through STARTTLS (certificate checked against cafile, not its name)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    s.starttls(context=ctx)
    s.ehlo(helo)
    return s


class SmtpClient:
    """A raw SMTP client for hostile tests: sends exactly the bytes given."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""

    def read_reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed; got " + repr(lines))
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return lines

    def code(self):
        return int(self.read_reply()[-1][:3])

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def command(self, line):
        self.send(line + "\r\n")
        return self.read_reply()

    def close(self):
        self.sock.close()


class WorkdirTestCase(unittest.TestCase):
    """Each test gets a fresh directory, removed unless SMTPLB_KEEP is set."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="smtplb-it-")
        # Registered first, so it runs last: after every process is stopped.
        self.addCleanup(self._remove_workdir)

    def start_sinks(self, *names):
        """Started `smtplb sink`s, stopped at the end of the test."""
        sinks = [Sink(self.workdir, n) for n in names]
        for s in sinks:
            s.start()
            self.addCleanup(s.stop)
        return sinks

    def _remove_workdir(self):
        if not os.environ.get("SMTPLB_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)


def main():
    global SMTPLB
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtplb", required=True)
    args, rest = parser.parse_known_args()
    SMTPLB = os.path.abspath(args.smtplb)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
