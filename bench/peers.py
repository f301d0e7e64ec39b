"""The programs the benchmarks run, each in a private directory on loopback:
smtp-sink backends, HAProxy, nginx's mail proxy, Postfix as a relay and
smtplb, plus the measuring helpers they share (CPU and RSS of a process
tree, the smtp-source load)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import harness  # noqa: E402  (a private Postfix instance)
from harness import rss_kib  # noqa: E402  (shared with the tests)

HZ = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# The binary the README's build makes, the default for every script here.
BUILT_SMTPLB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "src",
                            "app", "smtplb")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def process_tree(root):
    """root and every living descendant."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(entry)[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root):
    """CPU of a process tree: each living process's own time plus what it has
    reaped from children that already exited (cutime + cstime), so short-lived
    workers (Postfix's) are counted too."""
    total = 0
    for pid in process_tree(root):
        try:
            f = _stat_fields(pid)
            total += sum(int(x) for x in f[11:15])
        except OSError:
            pass
    return total / HZ


def tree_rss_kib(root):
    total = 0
    for pid in process_tree(root):
        try:
            total += rss_kib(pid)
        except OSError:
            pass
    return total


class Proc:
    def __init__(self, args, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        self.p = subprocess.Popen(args, **kw)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


# With strict sinks, smtplb connects to them from this address, the only one
# they authorise for XCLIENT: smtp-source's clients (127.0.0.1) are not, as
# real clients are not in front of Postfix's smtpd_authorized_xclient_hosts.
STRICT_BALANCER_ADDRESS = "127.0.0.3"


def start_sinks(n=3, strict_smtplb=None):
    """n backends: Postfix's smtp-sink, or with `strict_smtplb` (an smtplb
    binary) `smtplb sink --xclient-strict`, which takes XCLIENT the way
    Postfix's smtpd does (only while the current client is authorised), so
    a balancer that hands one backend connection to several clients fails.
    Start smtplb with source_address=STRICT_BALANCER_ADDRESS in front of them."""
    sinks = []
    for _ in range(n):
        port = free_port()
        if strict_smtplb:
            args = [strict_smtplb, "sink", "--listen", f"127.0.0.1:{port}", "--xclient-strict",
                    "--xclient-authorized", f"{STRICT_BALANCER_ADDRESS}/32"]
        else:
            # Root is needed for -u; the sink drops to nobody.
            args = ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
        sinks.append((port, Proc(args)))
    for port, _ in sinks:
        wait_port(port)
    return sinks


def start_haproxy(workdir, sink_ports, threads=None, maxconn=9000):
    port = free_port()
    cfg = os.path.join(workdir, "haproxy.cfg")
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} check inter 2s"
                        for i, p in enumerate(sink_ports))
    with open(cfg, "w") as f:
        f.write(f"""global
    maxconn {maxconn}
{f"    nbthread {threads}" if threads else ""}
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp
    bind 127.0.0.1:{port}
    default_backend sinks
backend sinks
    balance roundrobin
    option smtpchk EHLO bench.invalid
{servers}
""")
    proc = Proc(["haproxy", "-f", cfg, "-db"])
    wait_port(port)
    return port, proc


NGINX_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"


def start_nginx(workdir, sink_ports):
    """nginx's mail proxy. It asks its auth_http server for a backend on every
    connection; its own http block answers, spreading clients over the sinks
    at random (nginx has no round robin for mail)."""
    port, auth_port = free_port(), free_port()
    root = os.path.join(workdir, "nginx")
    os.makedirs(root, exist_ok=True)
    share = 100 // len(sink_ports)
    split = "\n".join(f"        {share}% {p};" for p in sink_ports[:-1]) + f"\n        * {sink_ports[-1]};"
    cfg = os.path.join(root, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(f"""load_module {NGINX_MODULE};
daemon off;
worker_processes auto;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 9000; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    split_clients "$request_id" $sink_port {{
{split}
    }}
    server {{
        listen 127.0.0.1:{auth_port};
        location / {{
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $sink_port;
            return 204;
        }}
    }}
}}
mail {{
    server_name lb.bench.invalid;
    auth_http 127.0.0.1:{auth_port}/;
    xclient off;
    server {{
        listen 127.0.0.1:{port};
        protocol smtp;
        smtp_auth none;
    }}
}}
""")
    proc = Proc(["nginx", "-c", cfg, "-e", os.path.join(root, "error.log")])
    wait_port(port)
    return port, proc


class RelayPostfix(harness.Postfix):
    """Postfix as a store-and-forward relay of example.net to one next hop
    (Postfix's relayhost list is failover, not balancing)."""
    MASTER = harness.Postfix.MASTER + "smtp      unix  -       -       n       -       -       smtp\n"

    def __init__(self, workdir, next_hop_port):
        super().__init__(workdir, "relay", extra_main=(
            "relay_transport = smtp\ndefault_transport = smtp\n"
            f"relayhost = [127.0.0.1]:{next_hop_port}\n"
            "smtpd_client_connection_rate_limit = 0\n"
            "default_process_limit = 200\n"
            "smtp_destination_concurrency_limit = 40\n"))

    def empty_queue(self):
        subprocess.run(["postsuper", "-c", self.conf, "-d", "ALL"], capture_output=True,
                       timeout=120)


def start_postfix_relay(workdir, sink_port):
    """A started RelayPostfix delivering to `sink_port`."""
    postfix = RelayPostfix(workdir, sink_port)
    postfix.start()
    return postfix


def postfix_master_pid(postfix):
    with open(os.path.join(postfix.dir, "queue", "pid", "master.pid")) as f:
        return int(f.read().split()[0])


def postfix_queued(postfix):
    """Messages still in Postfix's queue (any state)."""
    count = 0
    for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
        for _, _, files in os.walk(os.path.join(postfix.dir, "queue", sub)):
            count += len(files)
    return count


def knows_key(smtplb, section, line):
    """Whether this smtplb binary accepts a configuration line (an older
    build being compared may not)."""
    cached = _KNOWN_KEYS.get((smtplb, line))
    if cached is not None:
        return cached
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f'{section}\n{line}\nname = "x"\nbind = "127.0.0.1:1"\naccepted_domains = ["a.b"]\n'
                'pool = "p"\n[[pool]]\nname = "p"\n[[pool.backend]]\nname = "b"\n'
                'address = "127.0.0.1:2"\n')
    try:
        ok = subprocess.run([smtplb, "check", "--config", f.name], capture_output=True,
                            timeout=30).returncode == 0
    finally:
        os.unlink(f.name)
    _KNOWN_KEYS[(smtplb, line)] = ok
    return ok


_KNOWN_KEYS = {}


# Five [[limit]]s, each looked at for every message, that the bench's load
# (one client address, one sender, at most a few thousand messages a second)
# never reaches: what checking limits costs when nobody is over them.
UNREACHED_LIMITS = """
[[limit]]
name = "per-client-connections"
key = "client_ip"
connections = "1000000/1s"
[[limit]]
name = "per-sender-messages"
key = "sender"
messages = "1000000/1s"
[[limit]]
name = "per-domain-recipients"
key = ["sender_domain", "recipient_domain"]
recipients = "1000000/1s"
[[limit]]
name = "per-network-transactions"
key = "client_network"
concurrent_transactions = 100000
[[limit]]
name = "per-listener-bytes"
key = "listener"
bytes = "100GiB/1s"
"""


def start_smtplb(smtplb, workdir, sink_ports, mode="smtp", listener_extra="", spool=False,
                 threads=None, busy_poll_us=None, source_address=None, tracking_log=None,
                 client_identity=None, pool_extra="", extra=""):
    """smtplb in front of the sinks; `listener_extra`: more [[listener]] lines.
    With `spool`, every backend is down and the pool spools what it accepts.
    `threads`, `busy_poll_us`: those [server] keys (the daemon's defaults
    when None). `source_address`: the listener's address towards backends.
    `tracking_log`: that key ("" turns the log off); a file in `workdir` when None.
    `client_identity`: the listener's (default: xclient in smtp mode, none in
    tcp mode); `pool_extra`: more [[pool]] lines; `extra`: tables after the pool."""
    port = free_port()
    if source_address:
        listener_extra = f'source_address = "{source_address}"\n' + listener_extra
    # The bench's clients are all on loopback: no DNS lookups of their names
    # (HAProxy and nginx make none), where the binary has the setting.
    if mode == "smtp" and knows_key(smtplb, "[[listener]]", "resolve_client_names = false"):
        listener_extra = "resolve_client_names = false\n" + listener_extra
    cfg = os.path.join(workdir, "smtplb.toml")
    if spool:
        sink_ports = [free_port() for _ in sink_ports]  # nothing listens there
    backends = "\n".join(f'[[pool.backend]]\nname = "s{i}"\naddress = "127.0.0.1:{p}"\n'
                         for i, p in enumerate(sink_ports))
    pool_extra += ('on_unavailable = "spool"\nconnect_timeout = "1s"\n'
                   'health = { interval = "1s", down_interval = "500ms", rise = 1, fall = 1 }\n'
                   if spool else "")
    client_identity = client_identity or ("xclient" if mode == "smtp" else "none")
    spool_section = "[spool]\nconcurrency = 20" if spool else ""
    with open(cfg, "w") as f:
        f.write(f"""[server]
hostname = "lb.bench.invalid"
state_dir = "{workdir}"
tracking_log = "{f"{workdir}/tracking.jsonl" if tracking_log is None else tracking_log}"
admin = ""
{f"threads = {threads}" if threads else ""}
{f"busy_poll_us = {busy_poll_us}" if busy_poll_us is not None else ""}
{spool_section}
[[listener]]
name = "bench"
bind = "127.0.0.1:{port}"
accepted_domains = ["example.net"]
pool = "sinks"
mode = "{mode}"
client_identity = "{client_identity}"
max_connections = 15000
max_connections_per_client = 15000
{listener_extra}
[[pool]]
name = "sinks"
algorithm = "round_robin"
{pool_extra}
{backends}
{extra}
""")
    proc = Proc([smtplb, "run", "--config", cfg])
    wait_port(port)
    if spool:
        time.sleep(1.5)  # the probes have seen every backend down
    return port, proc


def smtp_source(port, messages, sessions, reuse, size):
    args = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", "bench@example.org", "-t", "user@example.net"]
    if reuse:
        args.insert(1, "-d")
    args.append(f"127.0.0.1:{port}")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_load(targets, messages, sessions, reuse, size, timeout):
    """targets: list of ports; the load is split evenly across them."""
    procs = []
    start = time.monotonic()
    for i, port in enumerate(targets):
        m = messages // len(targets) + (1 if i < messages % len(targets) else 0)
        s = max(1, sessions // len(targets) + (1 if i < sessions % len(targets) else 0))
        procs.append(smtp_source(port, m, s, reuse, size))
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise RuntimeError("smtp-source timed out")
        if p.returncode != 0:
            raise RuntimeError("smtp-source failed: " + err.decode(errors="replace")[-500:])
    return time.monotonic() - start


def idle_rss_per_connection(root_pid, port, count):
    """KiB of RSS (the proxy's whole process tree) per idle client connection
    that has seen the greeting."""
    time.sleep(0.3)
    before = tree_rss_kib(root_pid)
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
        for s in socks:
            s.recv(512)  # greeting: the proxy has set the session up
        time.sleep(0.5)
        after = tree_rss_kib(root_pid)
    finally:
        for s in socks:
            s.close()
    return (after - before) / count


def require(*tools):
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (scripts/bootstrap.sh all)")


# Per-destination shaping that the bench's load never reaches: a destination
# limit for its recipients' domain (a rate and a concurrency) and one for
# every other domain, looked at for every message. [[pool]] lines (before
# the backends: the tables still belong to the pool).
UNREACHED_SHAPING = """
[[pool.destination_limit]]
domain = "example.net"
messages = "1000000/1s"
concurrent_transactions = 100000
[[pool.destination_limit]]
domain = "*"
messages = "1000000/1s"
"""
