"""Processes and ports on loopback for the integration tests: free ports and
addresses, waiting for a listener or a condition, and child processes that
the test stops.
"""
import random
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_loopback():
    """An address of 127.0.0.0/8 of this test's own (127.54.x.y): a backend
    bound there gets no connection meant for another test's server that once
    had the same port on 127.0.0.1 (tests run in parallel, and a daemon keeps
    probing a backend its test has stopped)."""
    rng = random.Random()
    return f"127.54.{rng.randrange(256)}.{rng.randrange(1, 255)}"


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
