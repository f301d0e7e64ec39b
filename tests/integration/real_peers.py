"""Real mail peers for the integration tests and bench/: private Postfix,
Dovecot (authentication only) and NSD instances, each with its own
configuration and directories under the test's work directory.
"""
import os
import shlex
import shutil
import subprocess
import sys

from loopback import Process, free_port, wait_for_port, wait_until


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
        # master binds at once, but a loaded machine may start it late.
        wait_for_port(self.port, timeout=30.0)
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
