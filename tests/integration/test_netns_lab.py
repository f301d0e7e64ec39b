"""The namespace lab itself (netns_lab.py), without smtplb: it comes up, the
client reaches the backends through the balancer, and each routing recipe
lets a socket in the balancer connect to a backend from the client's address
(IP_TRANSPARENT), the backend seeing the client's address as its peer. Without
a recipe the replies never come back: the recipe is what makes it work. A
real Postfix runs inside the backend namespace too."""
import os
import socket
import subprocess
import threading
import unittest

import netns_lab
from harness import WorkdirTestCase, main, postfix_available
from netns_lab import Lab, iptables_available, lab_available, nft_available

PORT = 2525


class Listener:
    """A TCP listener in the backend namespace that records its peers."""

    def __init__(self, lab, address):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = lab.socket("backend", family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, PORT))
        self.sock.listen(8)
        self.peers = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.sendall(b"hello\n")
            conn.close()

    def close(self):
        # shutdown wakes the blocked accept; close alone leaves it listening.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join()


def transparent_connect(lab, source, target, timeout=3.0):
    """What smtplb does in transparent mode, from the balancer namespace:
    bind to the client's address with IP_TRANSPARENT, then connect."""
    v6 = ":" in source
    s = lab.socket("balancer", socket.AF_INET6 if v6 else socket.AF_INET)
    try:
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, netns_lab.IPV6_TRANSPARENT, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, netns_lab.IP_TRANSPARENT, 1)
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((target, PORT))
        return s.recv(16)
    finally:
        s.close()


@unittest.skipUnless(lab_available()[0], lab_available()[1])
class NetnsLab(WorkdirTestCase):
    def check_transparent(self, lab):
        for source, target in ((lab.client_addr, lab.backend_addrs[1]),
                               (lab.client_addr_v6, lab.backend_addrs_v6[1])):
            listener = Listener(lab, target)
            try:
                self.assertEqual(transparent_connect(lab, source, target), b"hello\n")
            finally:
                listener.close()
            self.assertEqual(listener.peers, [source])

    def check_forwarding(self, lab):
        """The client reaches every backend address through the balancer."""
        for target in lab.backend_addrs + lab.backend_addrs_v6:
            listener = Listener(lab, target)
            try:
                with lab.connect("client", target, PORT) as c:
                    self.assertEqual(c.recv(16), b"hello\n")
            finally:
                listener.close()
            self.assertIn(listener.peers[0], (lab.client_addr, lab.client_addr_v6))

    def test_comes_up_and_forwards(self):
        # The simple recipe takes every packet from the backends' side for
        # the balancer itself, so forwarding is checked without it.
        with Lab(self.workdir, recipe=None) as lab:
            names = {lab.ns_name(role) for role in netns_lab.ROLES}
            # Only this lab's: other namespaces on the host are not its business.
            self.assertLessEqual(names, set(netns_lab._netns_names()))
            self.check_forwarding(lab)
        # All gone on exit.
        self.assertFalse(names & set(netns_lab._netns_names()))

    def test_removed_after_an_exception(self):
        with self.assertRaises(ZeroDivisionError):
            with Lab(self.workdir) as lab:
                name = lab.ns_name("balancer")
                1 / 0
        self.assertNotIn(name, netns_lab._netns_names())

    def test_stale_labs_of_a_dead_process_are_removed(self):
        proc = subprocess.Popen(["true"])
        proc.wait()
        stale = f"{netns_lab._PREFIX}{proc.pid}-1-balancer"
        subprocess.run(["ip", "netns", "add", stale], check=True)
        with Lab(self.workdir):
            self.assertNotIn(stale, netns_lab._netns_names())

    def test_rule_recipe_lets_a_transparent_socket_connect_from_the_client_address(self):
        with Lab(self.workdir) as lab:
            r = lab.run("balancer", ["ip", "-j", "rule", "show"], capture_output=True, text=True)
            self.assertIn('"iif":"to-backend","table":"100"', r.stdout)
            self.check_transparent(lab)

    @unittest.skipUnless(nft_available(), "nft (package nftables) is not installed")
    def test_nft_recipe_lets_a_transparent_socket_connect_from_the_client_address(self):
        with Lab(self.workdir, recipe="nft") as lab:
            self.check_transparent(lab)
            # Only the transparent sockets' packets are taken: the rest is
            # still forwarded (the form for backends on a shared network).
            self.check_forwarding(lab)

    @unittest.skipUnless(iptables_available(), "iptables/ip6tables are not installed")
    def test_iptables_recipe_lets_a_transparent_socket_connect_from_the_client_address(self):
        with Lab(self.workdir, recipe="iptables") as lab:
            self.check_transparent(lab)
            self.check_forwarding(lab)

    def test_without_a_recipe_the_replies_do_not_come_back(self):
        with Lab(self.workdir, recipe=None) as lab:
            for source, target in ((lab.client_addr, lab.backend_addrs[0]),
                                   (lab.client_addr_v6, lab.backend_addrs_v6[0])):
                listener = Listener(lab, target)
                try:
                    with self.assertRaises(OSError):
                        transparent_connect(lab, source, target, timeout=1.0)
                finally:
                    listener.close()
            # Applied afterwards, the same connection works.
            lab.apply_rule_recipe()
            self.check_transparent(lab)

    @unittest.skipUnless(postfix_available(), "postfix is not installed (or not root)")
    def test_postfix_runs_in_the_backend_namespace(self):
        with Lab(self.workdir, recipe=None) as lab:
            pf = lab.postfix("nspostfix", lab.backend_addrs[2],
                             extra_main=f"mynetworks = {netns_lab.CLIENT_NET}.0/24\n")
            pf.start()
            try:
                with lab.connect("client", lab.backend_addrs[2], pf.port) as c:
                    c.settimeout(10)
                    f = c.makefile("rb")
                    self.assertTrue(f.readline().startswith(b"220 nspostfix.test"))
                    c.sendall(b"QUIT\r\n")
                    f.readline()
            finally:
                pf.stop()
            self.assertTrue(any(f"connect from unknown[{lab.client_addr}]" in line
                                for line in pf.log_lines()), "\n".join(pf.log_lines()[-10:]))


if __name__ == "__main__":
    main()
