# SPDX-License-Identifier: MIT
"""Helpers for the end-to-end tests: ismd processes on an emulated fabric, started the
way systemd starts them (NOTIFY_SOCKET), ismctl, and tmux.

The build directory comes from $ISMD_BUILD_DIR (ctest sets it). Every test gets its
own fabric name and temporary directory, so tests may run side by side.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("ISMD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/dev"))
ISMD = os.path.join(BUILD, "daemon", "ismd")
ISMCTL = os.path.join(BUILD, "daemon", "ismctl")
ISM_CONSOLE = os.path.join(BUILD, "daemon", "ism-console")
CI = os.environ.get("CI") == "true"


def need(tool):
    """Skip when a tool is missing on a developer's machine; under CI=true fail."""
    if shutil.which(tool):
        return
    if CI:
        raise AssertionError(f"{tool} is missing (CI=true: the install step must provide it)")
    raise unittest.SkipTest(f"{tool} is not installed")


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Ismd:
    """One ismd with its own config directory, notify socket and log."""

    def __init__(self, work, fabric, name, link=None, log_level="info"):
        self.work = work
        self.name = name
        self.fabric = fabric
        self.dir = os.path.join(work, name)
        self.peers_dir = os.path.join(self.dir, "peers.d")
        os.makedirs(self.peers_dir, exist_ok=True)
        self.socket = os.path.join(self.dir, "control.sock")
        self.config = os.path.join(self.dir, "ismd.json")
        self.log_path = os.path.join(self.dir, "ismd.log")
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.global_config = {
            "device": {"emulated": {"fabric": fabric, "function": name}},
            "link": link or {"poll": "interrupt", "keepalive_ms": 100, "dead_after_ms": 600},
            "control": {"socket": self.socket},
            "log_level": log_level,
        }
        self.write_global()
        self.proc = None
        self.log = None
        self.notify = None
        self.messages = []

    def write_global(self):
        with open(self.config, "w") as f:
            json.dump(self.global_config, f)

    def add_peer(self, peer, **sections):
        body = {"name": peer, "emulated_function": peer}
        body.update(sections)
        with open(os.path.join(self.peers_dir, peer + ".json"), "w") as f:
            json.dump(body, f)

    def nbd_socket(self, peer, export):
        """Where this ismd serves `peer`'s export `export` to local NBD clients."""
        return os.path.join(self.dir, "nbd", peer, export + ".sock")

    def start(self, env=None, wait_ready=True):
        if self.notify is None:
            if os.path.exists(self.notify_path):
                os.unlink(self.notify_path)
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(self.notify_path)
        self.messages = []
        e = dict(os.environ)
        e.pop("INVOCATION_ID", None)
        e["NOTIFY_SOCKET"] = self.notify_path
        e.update(env or {})
        if self.log is not None and not self.log.closed:
            self.log.close()
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([ISMD, "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, env=e)
        if wait_ready:
            self.wait_message("READY=1")
        return self

    def drain(self):
        self.notify.setblocking(False)
        try:
            while True:
                data = self.notify.recv(4096).decode()
                self.messages.extend(data.split("\n"))
        except BlockingIOError:
            pass

    def wait_message(self, prefix, timeout=10.0, after=0):
        def seen():
            self.drain()
            if self.proc is not None and self.proc.poll() is not None and prefix != "STOPPING=1":
                raise AssertionError(f"{self.name}: ismd exited with {self.proc.returncode}:\n{self.log_text()}")
            return next((m for m in self.messages[after:] if m.startswith(prefix)), None)
        return wait_for(seen, timeout, f"{self.name}: notify {prefix}")

    def statuses(self):
        self.drain()
        return [m[len("STATUS="):] for m in self.messages if m.startswith("STATUS=")]

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def ctl(self, *args, check=True, user=None):
        r = subprocess.run([ISMCTL, "--socket", self.socket, *args], capture_output=True, text=True,
                           timeout=60, user=user)
        if check and r.returncode != 0:
            raise AssertionError(f"ismctl {' '.join(args)}: {r.returncode}: {r.stderr}")
        return r

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def peer_status(self, peer):
        return next(p for p in self.status()["peers"] if p["name"] == peer)

    def wait_link(self, peer, state="up", timeout=10.0):
        return wait_for(lambda: self.peer_status(peer)["link"] == state, timeout,
                        f"{self.name}: link to {peer} {state}")

    def stop(self, timeout=10.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name}: ismd did not stop within {timeout} s")
        self.proc = None
        self.log.close()
        return code

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.notify is not None:
            self.notify.close()
        if getattr(self, "log", None) is not None and not self.log.closed:
            self.log.close()


class IsmdTestCase(unittest.TestCase):
    """Gives each test a fabric and a directory; stops every ismd it started."""

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="ismd-e2e-")
        self.fabric = f"e2e-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.daemons = []
        # Cleanups run last-registered first: this one runs after every other (the tmux
        # servers are killed through sockets in this directory).
        self.addCleanup(self.remove_work)

    def remove_work(self):
        for d in self.daemons:
            d.close()
        path = os.path.join(os.environ.get("ISM_SIM_DIR", "/dev/shm"), "ism-sim-" + self.fabric)
        if os.path.exists(path):
            os.unlink(path)
        shutil.rmtree(self.work, ignore_errors=True)

    def ismd(self, name, **kw):
        d = Ismd(self.work, self.fabric, name, **kw)
        self.daemons.append(d)
        return d

    def pair(self, serve_console=True, **kw):
        """lpar1 and lpar2 linked; lpar2 serves lpar1 an unauthenticated bash console."""
        a = self.ismd("lpar1", **kw)
        b = self.ismd("lpar2", **kw)
        a.add_peer("lpar2", console={"attach": True})
        serve = {"program": ["/bin/bash", "--norc", "--noprofile", "-i"], "unauthenticated": True,
                 "launcher": "direct"}
        b.add_peer("lpar1", console={"serve": serve} if serve_console else {"attach": True})
        a.start()
        b.start()
        a.wait_link("lpar2")
        b.wait_link("lpar1")
        return a, b


class Tmux:
    """A tmux server of its own, one window, for driving a real terminal."""

    def __init__(self, work, name="tmux", width=100, height=30):
        need("tmux")
        self.sock = os.path.join(work, name + ".sock")
        self.run("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t", "bash --norc --noprofile")
        self.run("set-option", "-g", "status", "off")

    def run(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout

    def send(self, *keys, literal=False):
        self.run("send-keys", "-t", "t", *(["-l"] if literal else []), *keys)

    def type(self, text):
        self.send(text, literal=True)
        self.send("Enter")

    def screen(self):
        return self.run("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")

    def wait_screen(self, needle, timeout=10.0):
        return wait_for(lambda: needle in self.screen() and self.screen(), timeout,
                        f"{needle!r} on the screen; it shows:\n{self.screen()}")

    def resize(self, width, height):
        self.run("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)
