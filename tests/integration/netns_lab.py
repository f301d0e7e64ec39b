"""A network lab in namespaces of its own, for transparent mode: a client, a
balancer and a backend namespace joined by veth pairs, with the routing that
lets a socket in the balancer connect to a backend from the client's address
and get the replies back.

    client (client_addr) <-veth-> balancer <-veth-> backend (backend_addrs)

The client's and the backend's default routes go via the balancer, which
forwards, and (recipe "rule", the default) delivers everything arriving from
the backend side locally (`ip rule add iif <veth> lookup 100` + `ip route add
local 0.0.0.0/0 dev lo table 100`), so the replies to a transparent socket
reach it. recipe="nft" marks only packets for transparent sockets (nftables
`socket transparent 1`) and routes the mark locally; recipe="iptables" is the
same with `iptables -m socket --transparent`; recipe=None sets up no
recipe at all (the replies are forwarded to the client and lost: a test's
negative case).

Everything happens inside the lab's namespaces; the host's own routing is
never touched. Processes started with run/popen (`ip netns exec`) see a
resolv.conf of the lab's (/etc/netns/NAME/resolv.conf, nameserver 127.0.0.1):
no DNS, lookups fail at once. Namespace names carry this process's id, so labs of tests
running in parallel do not meet, and labs left by a crashed run (their
process gone) are removed by the next one.

    from netns_lab import Lab, lab_available
    ok, reason = lab_available()
    with Lab(workdir) as lab:
        lab.run("backend", ["smtp-sink", f"{lab.backend_addrs[0]}:25", "100"])
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from real_peers import Postfix

ROLES = ("client", "balancer", "backend")

# Interface names are per namespace, so they are fixed.
CLIENT_VETH = "to-balancer"  # in the client namespace
BALANCER_CLIENT_VETH = "to-client"
BALANCER_BACKEND_VETH = "to-backend"
BACKEND_VETH = "to-balancer"  # in the backend namespace

# Private ranges used only inside the lab's namespaces (never on the host).
CLIENT_NET, BACKEND_NET = "10.226.1", "10.226.2"
CLIENT_NET6, BACKEND_NET6 = "fd5b:1ab0:1::", "fd5b:1ab0:2::"
BACKEND_COUNT = 3
ROUTE_TABLE = 100
FWMARK = 1
NFT_TABLE = "smtplb_transparent"

# `ip netns exec NAME` mounts the files of /etc/netns/NAME over /etc's.
NETNS_ETC = "/etc/netns"
# No DNS in the lab: a lookup (Postfix's of its client's name) fails at once
# instead of waiting for the host's resolver, which the lab cannot reach.
LAB_RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

IP_TRANSPARENT = 19  # <linux/in.h>
IPV6_TRANSPARENT = 75  # <linux/in6.h>
CLONE_NEWNET = 0x40000000

_PREFIX = "smtplb-lab-"
_counter = 0
_counter_lock = threading.Lock()
_available = None


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names():
    r = _ip("-j", "netns", "list", check=False)
    if r.returncode != 0 or not r.stdout.strip():
        return []
    return [entry["name"] for entry in json.loads(r.stdout)]


def _kill_namespace_processes(name):
    """The processes still running in one of the lab's namespaces (a Postfix
    master and its children, a daemon a test forgot): a namespace lives as
    long as they do."""
    r = _ip("netns", "pids", name, check=False)
    pids = [int(p) for p in r.stdout.split()] if r.returncode == 0 else []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 3
        while pids and time.time() < deadline:
            pids = [p for p in pids if _pid_alive(p)]
            time.sleep(0.05)


def _delete_namespace(name):
    _kill_namespace_processes(name)
    _ip("netns", "delete", name, check=False)
    shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)


def remove_stale_labs():
    """Namespaces left by labs whose process is gone (a crash, a SIGKILL)."""
    for name in _netns_names():
        m = re.match(re.escape(_PREFIX) + r"(\d+)-", name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_namespace(name)


def lab_available():
    """(True, "") where the lab can be built: root, `ip netns` and veth pairs
    work. Otherwise (False, the reason), for a test's skip message."""
    global _available
    if _available is not None:
        return _available
    if os.geteuid() != 0:
        _available = (False, "network namespaces need root")
    elif shutil.which("ip") is None:
        _available = (False, "`ip` (iproute2) is not installed")
    else:
        name = f"{_PREFIX}{os.getpid()}-probe"
        r = _ip("netns", "add", name, check=False)
        if r.returncode != 0:
            _available = (False, "cannot create a network namespace: " + r.stderr.strip())
        else:
            v = _ip("-n", name, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1",
                    check=False)
            _available = (True, "") if v.returncode == 0 else (
                False, "cannot create a veth pair: " + v.stderr.strip())
            _ip("netns", "delete", name, check=False)
    return _available


def nft_available():
    return shutil.which("nft") is not None


def iptables_available():
    return shutil.which("iptables") is not None and shutil.which("ip6tables") is not None


def _setns(name):
    """Moves the calling thread into a namespace (network namespaces are per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


class Lab:
    def __init__(self, workdir, recipe="rule", backends=BACKEND_COUNT):
        if recipe not in ("rule", "nft", "iptables", None):
            raise ValueError(f"recipe must be 'rule', 'nft', 'iptables' or None, not {recipe!r}")
        if not 1 <= backends <= 200:
            raise ValueError(f"backends must be 1..200 (addresses .10 upwards), not {backends}")
        if recipe == "nft" and not nft_available():
            raise RuntimeError("recipe 'nft' needs nft (package nftables)")
        if recipe == "iptables" and not iptables_available():
            raise RuntimeError("recipe 'iptables' needs iptables and ip6tables")
        global _counter
        with _counter_lock:
            _counter += 1
            self.prefix = f"{_PREFIX}{os.getpid()}-{_counter}-"
        self.workdir = workdir
        self.recipe = recipe
        self.client_addr = f"{CLIENT_NET}.2"
        self.balancer_client_side_addr = f"{CLIENT_NET}.1"
        self.balancer_backend_side_addr = f"{BACKEND_NET}.1"
        self.backend_addrs = [f"{BACKEND_NET}.{10 + i}" for i in range(backends)]
        self.client_addr_v6 = f"{CLIENT_NET6}2"
        self.balancer_client_side_addr_v6 = f"{CLIENT_NET6}1"
        self.balancer_backend_side_addr_v6 = f"{BACKEND_NET6}1"
        self.backend_addrs_v6 = [f"{BACKEND_NET6}{10 + i:x}" for i in range(backends)]
        self.balancer_backend_side_interface = BALANCER_BACKEND_VETH
        self._procs = []
        self._created = []

    # -- names and commands ------------------------------------------------

    def ns_name(self, role):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        return self.prefix + role

    def _ns(self, ns):
        return self.ns_name(ns) if ns in ROLES else ns

    def command(self, ns, argv):
        """argv run inside a namespace (a role or a full name)."""
        return ["ip", "netns", "exec", self._ns(ns), *argv]

    def run(self, ns, argv, **kw):
        kw.setdefault("timeout", 60)
        return subprocess.run(self.command(ns, argv), **kw)

    def popen(self, ns, argv, **kw):
        """A process inside a namespace; stopped on exit if still running."""
        proc = subprocess.Popen(self.command(ns, argv), **kw)
        self._procs.append(proc)
        return proc

    def call_in(self, ns, fn, *args):
        """fn(*args) in a thread that entered the namespace; sockets it
        creates stay in that namespace when used from any thread."""
        result, error = [], []

        def body():
            try:
                _setns(self._ns(ns))
                result.append(fn(*args))
            except BaseException as e:  # re-raised in the caller
                error.append(e)

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if error:
            raise error[0]
        return result[0]

    def socket(self, ns, family=socket.AF_INET, type=socket.SOCK_STREAM):
        return self.call_in(ns, socket.socket, family, type)

    def connect(self, ns, host, port, timeout=5.0, source=None):
        """A TCP connection made from inside a namespace."""
        def make():
            return socket.create_connection((host, port), timeout=timeout, source_address=source)
        return self.call_in(ns, make)

    def wait_for_port(self, ns, host, port, timeout=10.0, proc=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening "
                                   f"on {host}:{port} in {self._ns(ns)}")
            try:
                self.connect(ns, host, port, timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {host}:{port} in {self._ns(ns)} after {timeout}s")

    def postfix(self, name, address, **kw):
        """A private Postfix (real_peers.Postfix) whose smtpd listens on
        `address` (or each of a list) in the backend namespace."""
        return NetnsPostfix(self, "backend", address, self.workdir, name, **kw)

    # -- building and removing ---------------------------------------------

    def _sh(self, ns, *argv):
        r = self.run(ns, list(argv), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"lab: {' '.join(argv)} in {self._ns(ns)} failed: "
                               f"{r.stderr.strip()}")
        return r

    def _veth(self, ns_a, name_a, ns_b, name_b):
        # Created directly inside the namespaces: the host never sees them.
        _ip("-n", self.ns_name(ns_a), "link", "add", name_a, "type", "veth", "peer", "name",
            name_b, "netns", self.ns_name(ns_b))

    def _address(self, ns, dev, addr, prefix_len):
        extra = ["nodad"] if ":" in addr else []  # usable at once, not after DAD
        self._sh(ns, "ip", "addr", "add", f"{addr}/{prefix_len}", "dev", dev, *extra)

    def __enter__(self):
        ok, reason = lab_available()
        if not ok:
            raise RuntimeError("the network lab cannot be built: " + reason)
        remove_stale_labs()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self):
        for role in ROLES:
            _ip("netns", "add", self.ns_name(role))
            self._created.append(self.ns_name(role))
            etc = os.path.join(NETNS_ETC, self.ns_name(role))
            os.makedirs(etc, exist_ok=True)
            with open(os.path.join(etc, "resolv.conf"), "w") as f:
                f.write(LAB_RESOLV_CONF)
            self._sh(role, "ip", "link", "set", "lo", "up")
        self._veth("client", CLIENT_VETH, "balancer", BALANCER_CLIENT_VETH)
        self._veth("balancer", BALANCER_BACKEND_VETH, "backend", BACKEND_VETH)
        self._address("client", CLIENT_VETH, self.client_addr, 24)
        self._address("client", CLIENT_VETH, self.client_addr_v6, 64)
        self._address("balancer", BALANCER_CLIENT_VETH, self.balancer_client_side_addr, 24)
        self._address("balancer", BALANCER_CLIENT_VETH, self.balancer_client_side_addr_v6, 64)
        self._address("balancer", BALANCER_BACKEND_VETH, self.balancer_backend_side_addr, 24)
        self._address("balancer", BALANCER_BACKEND_VETH, self.balancer_backend_side_addr_v6, 64)
        for a in self.backend_addrs:
            self._address("backend", BACKEND_VETH, a, 24)
        for a in self.backend_addrs_v6:
            self._address("backend", BACKEND_VETH, a, 64)
        for ns, dev in (("client", CLIENT_VETH), ("balancer", BALANCER_CLIENT_VETH),
                        ("balancer", BALANCER_BACKEND_VETH), ("backend", BACKEND_VETH)):
            self._sh(ns, "ip", "link", "set", dev, "up")
        self._sh("client", "ip", "route", "add", "default", "via", self.balancer_client_side_addr)
        self._sh("client", "ip", "-6", "route", "add", "default", "via",
                 self.balancer_client_side_addr_v6)
        self._sh("backend", "ip", "route", "add", "default", "via",
                 self.balancer_backend_side_addr)
        self._sh("backend", "ip", "-6", "route", "add", "default", "via",
                 self.balancer_backend_side_addr_v6)
        self._sh("balancer", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._sh("balancer", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        if self.recipe == "rule":
            self.apply_rule_recipe()
        elif self.recipe == "nft":
            self.apply_nft_recipe()
        elif self.recipe == "iptables":
            self.apply_iptables_recipe()

    def _local_routes(self):
        for family, everything in (("-4", "0.0.0.0/0"), ("-6", "::/0")):
            self._sh("balancer", "ip", family, "route", "add", "local", everything, "dev", "lo",
                     "table", str(ROUTE_TABLE))

    def apply_rule_recipe(self):
        """docs/transparent-routing.md, the simple form: everything arriving
        from the backends' side is delivered locally."""
        for family in ("-4", "-6"):
            self._sh("balancer", "ip", family, "rule", "add", "iif", BALANCER_BACKEND_VETH,
                     "lookup", str(ROUTE_TABLE))
        self._local_routes()

    def apply_nft_recipe(self):
        """docs/transparent-routing.md, the netfilter form: only packets that
        belong to a transparent socket are marked and delivered locally."""
        ruleset = (f"table inet {NFT_TABLE} {{\n"
                   "  chain prerouting {\n"
                   "    type filter hook prerouting priority mangle; policy accept;\n"
                   f"    meta l4proto tcp socket transparent 1 meta mark set {FWMARK} accept\n"
                   "  }\n"
                   "}\n")
        r = self.run("balancer", ["nft", "-f", "-"], input=ruleset, capture_output=True,
                     text=True)
        if r.returncode != 0:
            raise RuntimeError("lab: nft ruleset failed: " + r.stderr.strip())
        self._fwmark_rules()

    def apply_iptables_recipe(self):
        """The netfilter form written with iptables/ip6tables."""
        for tool in ("iptables", "ip6tables"):
            self._sh("balancer", tool, "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-m",
                     "socket", "--transparent", "-j", "MARK", "--set-mark", str(FWMARK))
        self._fwmark_rules()

    def _fwmark_rules(self):
        for family in ("-4", "-6"):
            self._sh("balancer", "ip", family, "rule", "add", "fwmark", str(FWMARK), "lookup",
                     str(ROUTE_TABLE))
        self._local_routes()

    def remove_recipe(self):
        """Takes the routing recipe away again (rules, table 100, nft table)."""
        for family in ("-4", "-6"):
            for selector in (["iif", BALANCER_BACKEND_VETH], ["fwmark", str(FWMARK)]):
                self.run("balancer", ["ip", family, "rule", "del", *selector, "lookup",
                                      str(ROUTE_TABLE)], capture_output=True)
            self.run("balancer", ["ip", family, "route", "flush", "table", str(ROUTE_TABLE)],
                     capture_output=True)
        if nft_available():
            self.run("balancer", ["nft", "delete", "table", "inet", NFT_TABLE],
                     capture_output=True)
        if iptables_available():
            for tool in ("iptables", "ip6tables"):
                self.run("balancer", [tool, "-t", "mangle", "-F", "PREROUTING"],
                         capture_output=True)

    def close(self):
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        for name in reversed(self._created):
            _delete_namespace(name)
        self._created.clear()

    def __exit__(self, *exc):
        self.close()
        return False


def _host_port(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class NetnsPostfix(Postfix):
    """real_peers.Postfix inside a lab namespace. What it needs there:
    `inet_interfaces` = the namespace's address (not 127.0.0.1),
    `inet_protocols = all` for IPv6, the address in master.cf's listen
    column, and `postfix start` under `ip netns exec` (master and every
    daemon it starts inherit the namespace). The queue and log directories
    are on the shared file system as usual."""

    def __init__(self, lab, ns, address, workdir, name, **kw):
        """address: one address, or a list (smtpd then listens on each)."""
        if kw.get("resolv_conf"):
            raise ValueError("NetnsPostfix: resolv_conf is not supported")
        super().__init__(workdir, name, **kw)
        addresses = address if isinstance(address, (list, tuple)) else [address]
        self.lab, self.ns, self.address = lab, ns, addresses[0]
        self.port = 25  # the namespace's own ports are all free
        main_cf = os.path.join(self.conf, "main.cf")
        master_cf = os.path.join(self.conf, "master.cf")
        with open(main_cf) as f:
            text = f.read()
        text = text.replace("inet_interfaces = 127.0.0.1",
                            "inet_interfaces = " + ", ".join(addresses))
        text = text.replace("inet_protocols = ipv4", "inet_protocols = all")
        with open(main_cf, "w") as f:
            f.write(text)
        # One address in the listen column, or the port alone: every
        # inet_interfaces address.
        listen = _host_port(addresses[0], self.port) if len(addresses) == 1 else str(self.port)
        with open(master_cf) as f:
            text = f.read()
        text = re.sub(r"^127\.0\.0\.1:\d+ ", listen + " ", text, flags=re.M)
        with open(master_cf, "w") as f:
            f.write(text)

    def _postfix(self, verb):
        inner = f"ip netns exec {self.lab.ns_name(self.ns)} postfix -c {self.conf} {verb}"
        return subprocess.run(["script", "-qc", inner, "/dev/null"], capture_output=True,
                              text=True, timeout=60)

    def start(self):
        self._roomy_log_queue()
        r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError("postfix start failed: " + r.stdout + r.stderr)
        self.lab.wait_for_port(self.ns, self.address, self.port)
        return self
