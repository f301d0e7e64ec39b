"""Helpers for integration tests: the real smtplb binary, its built-in sink,
and a private Postfix instance, all on loopback, all stopped by the test.

Only the standard library is used, so the tests run wherever python3 does.
"""
import argparse
import json
import os
import random
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

SMTPLB = None  # set by main()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_address(port, prefix="127.53"):
    """A loopback address under prefix (127.53.x.y) where `port` is free for
    TCP and UDP: for a server that must use a fixed port (DNS on 53)."""
    rng = random.Random()
    for _ in range(200):
        address = f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        try:
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind((address, port))
                u.bind((address, port))
            return address
        except OSError:
            continue
    raise RuntimeError(f"no loopback address under {prefix} has port {port} free")


def wait_for_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Process:
    """A child process started by the test and stopped by it (SIGTERM, then SIGKILL)."""

    def __init__(self, args, stdout=None, stderr=None, env=None):
        self.args = args
        self.env = env
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.proc = None

    def start(self):
        out = open(self.stdout_path, "wb") if self.stdout_path else subprocess.DEVNULL
        err = open(self.stderr_path, "wb") if self.stderr_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=err, env=self.env)
        finally:
            for f in (out, err):
                if f is not subprocess.DEVNULL:
                    f.close()  # the child has its own copy
        return self

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class Sink:
    """`smtplb sink` recording each message it accepts as a JSON line."""

    def __init__(self, workdir, name, faults=(), extra=(), port=None, strict=False):
        """strict: XCLIENT as Postfix's smtpd allows it (`--xclient-strict`):
        only while the current client is authorised (127.0.0.1/32)."""
        self.port = port or free_port()
        self.name = name
        self.record = os.path.join(workdir, f"{name}.jsonl")
        args = [SMTPLB, "sink", "--listen", f"127.0.0.1:{self.port}", "--record", self.record,
                "--hostname", f"{name}.test"] + (["--xclient-strict"] if strict else [])
        for f in faults:
            args += ["--fault", f]
        args += list(extra)
        self.process = Process(args, stdout=os.path.join(workdir, f"{name}.out"),
                               stderr=os.path.join(workdir, f"{name}.err"))

    def start(self):
        self.process.start()
        wait_for_port(self.port, proc=self.process.proc)
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

    def health_changes(self, backend):
        """The daemon's log lines for every change of `backend`'s health state."""
        return self.log_lines(f" backend={backend} from=")

    def tracking_records(self):
        if not os.path.exists(self.tracking):
            return []
        with open(self.tracking) as f:
            # A line still being written has no newline yet.
            return [json.loads(line) for line in f if line.endswith("\n")]


def rss_kib(pid):
    """The resident memory of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized_build(pid):
    """Whether the process runs with AddressSanitizer (redzones and
    quarantine make its memory figures a few times larger)."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def postfix_available():
    return shutil.which("postfix") is not None and os.geteuid() == 0


class Postfix:
    """A private Postfix instance (its own config, queue and log directories)
    whose smtpd listens on a loopback port and discards what it accepts."""

    MASTER = """\
{listen} inet n - n - - smtpd {smtpd_args}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"""

    def __init__(self, workdir, name="postfix", smtpd_args="", extra_main="", resolv_conf=None):
        """resolv_conf: a file that replaces /etc/resolv.conf for this
        instance alone (it then runs in a mount namespace of its own), so
        that its smtpd looks client names up in a test's DNS server."""
        self.resolv_conf = resolv_conf
        self.dir = os.path.join(workdir, name)
        self.conf = os.path.join(self.dir, "conf")
        self.log = os.path.join(self.dir, "maillog")
        self.port = free_port()
        for d in ("conf", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        # The work directory must be traversable by the postfix user.
        for d in (workdir, self.dir):
            os.chmod(d, 0o755)
        main = f"""\
compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {self.dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {name}.test
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = example.net
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.1/32
default_transport = discard
relay_transport = discard
local_transport = discard
maillog_file = {self.log}
maillog_file_prefixes = {workdir}
smtpd_banner = $myhostname ESMTP
{extra_main}
"""
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(self.MASTER.format(listen=f"127.0.0.1:{self.port}", smtpd_args=smtpd_args))

    def _postfix(self, verb):
        # postfix prints its reasons only to a terminal: give it one.
        return subprocess.run(["script", "-qc", f"postfix -c {self.conf} {verb}", "/dev/null"],
                              capture_output=True, text=True, timeout=60)

    @staticmethod
    def _roomy_log_queue():
        """Postfix's daemons log through postlogd's datagram socket. With the
        kernel's default queue of 10 datagrams (systemd raises it to 512 on
        a normal Debian system; a container has no systemd) a burst of log
        lines blocks them, and once postlogd itself blocks sending its own
        warning to that socket, the whole instance hangs (seen in bench/)."""
        path = "/proc/sys/net/unix/max_dgram_qlen"
        try:
            with open(path) as f:
                if int(f.read()) >= 512:
                    return
            with open(path, "w") as f:
                f.write("512")
        except OSError as e:  # not root, or a read-only /proc
            print(f"harness: cannot raise {path} ({e}); Postfix may stall under load",
                  file=sys.stderr)

    def start(self):
        self._roomy_log_queue()
        if self.resolv_conf:
            # master and every daemon it starts inherit the namespace.
            inner = (f"mount --bind {shlex.quote(self.resolv_conf)} /etc/resolv.conf && "
                     f"postfix -c {shlex.quote(self.conf)} start")
            r = subprocess.run(["script", "-qc", f"unshare -m sh -c {shlex.quote(inner)}",
                                "/dev/null"], capture_output=True, text=True, timeout=60)
        else:
            r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: " + r.stdout + r.stderr)
        wait_for_port(self.port)
        return self

    def stop(self):
        self._postfix("stop")

    def reload(self):
        r = self._postfix("reload")
        if r.returncode != 0:
            raise RuntimeError("postfix reload failed: " + r.stdout + r.stderr)

    def log_lines(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log, errors="replace") as f:
            return f.read().splitlines()


class Dovecot:
    """A private Dovecot that only authenticates: users from a passwd-file,
    its auth-client socket in the work directory (for Postfix's SASL and for
    smtplb's dovecot verifier)."""

    def __init__(self, workdir, users, name="dovecot"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.socket = os.path.join(self.dir, "run", "auth-client")
        passwd = os.path.join(self.dir, "users")
        with open(passwd, "w") as f:
            for user, password in users.items():
                f.write(f"{user}:{{PLAIN}}{password}\n")
        with open(self.conf, "w") as f:
            f.write(f"""\
protocols =
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
""")

    def start(self):
        # The daemon keeps whatever stdout/stderr it was given: a file, not a pipe.
        errors = os.path.join(self.dir, "start.err")
        with open(errors, "w") as err:
            r = subprocess.run(["dovecot", "-c", self.conf], stdin=subprocess.DEVNULL,
                               stdout=err, stderr=err, timeout=60)
        if r.returncode != 0:
            with open(errors) as f:
                raise RuntimeError("dovecot start failed: " + f.read())
        wait_until(lambda: os.path.exists(self.socket), what="dovecot's auth socket")
        return self

    def stop(self):
        subprocess.run(["dovecot", "-c", self.conf, "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


class Nsd:
    """A private authoritative DNS server (NSD) on a loopback port, serving
    the zones given as {name: zone file text}. A resolver that takes no port
    (glibc's) needs port 53: give a loopback address of the test's own."""

    def __init__(self, workdir, zones, name="nsd", address="127.0.0.1", port=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.address = address
        self.port = port or free_port()
        conf = os.path.join(self.dir, "nsd.conf")
        zone_entries = ""
        for zone, text in zones.items():
            with open(os.path.join(self.dir, f"{zone}.zone"), "w") as f:
                f.write(text)
            zone_entries += f'zone:\n    name: "{zone}"\n    zonefile: "{zone}.zone"\n'
        with open(conf, "w") as f:
            f.write(f"""server:
    ip-address: {address}
    port: {self.port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{self.dir}"
    database: ""
    zonelistfile: "{self.dir}/zone.list"
    xfrdfile: "{self.dir}/xfrd.state"
    xfrdir: "{self.dir}"
    pidfile: "{self.dir}/nsd.pid"
    logfile: "{self.dir}/nsd.log"
    verbosity: 1
remote-control:
    control-enable: no
{zone_entries}""")
        self.process = Process(["nsd", "-d", "-c", conf],
                               stderr=os.path.join(self.dir, "nsd.err"))

    def start(self):
        self.process.start()
        # Answers over TCP too: wait for that port.
        wait_for_port(self.port, host=self.address, proc=self.process.proc)
        return self

    def stop(self):
        self.process.stop()


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


class RawBackend:
    """A TCP server on loopback: `serve(conn)` runs on a thread of its own
    for every connection; connections are kept until stop()."""

    def __init__(self, serve):
        self.serve = serve
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
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
                 per_connection=None):
        self.answer = answer
        self.per_connection = per_connection
        self.ehlo = ("\r\n".join(ehlo_lines) + "\r\n").encode()
        self.lines = []  # every command line received, in order
        super().__init__(self._serve)

    def _serve(self, conn):
        try:
            with conn:
                f = conn.makefile("rb")
                answer = self.per_connection() if self.per_connection else None
                conn.sendall(b"220 scripted.test ESMTP\r\n")
                in_data = False
                for raw in f:
                    line = raw.rstrip(b"\r\n").decode(errors="replace")
                    if in_data:
                        if line == ".":
                            in_data = False
                            conn.sendall(b"250 2.0.0 Ok: queued as SCRIPTED\r\n")
                        continue
                    self.lines.append(line)
                    verb = line.split(" ", 1)[0].upper()
                    if answer:
                        reply = answer(line)
                    elif verb in ("EHLO", "HELO"):
                        reply = self.ehlo
                    else:
                        reply = self.answer(line)
                    if reply is None:
                        return
                    conn.sendall(reply)
                    if verb == "DATA" and reply.startswith(b"354"):
                        in_data = True
                    if verb == "QUIT":
                        return
        except OSError:
            pass


def plain_answers(line):
    """A well-behaved server's replies (for ScriptedBackend)."""
    verb = line.split(" ", 1)[0].upper()
    return {"DATA": b"354 go ahead\r\n", "QUIT": b"221 bye\r\n"}.get(verb, b"250 2.0.0 Ok\r\n")


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
