#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Console benchmark: keystroke echo round trips through the whole path, beside ssh.

ismd path: a PTY (the local terminal) -> ism-console -> ismd (lpar1) -> link -> ismd
(lpar2) -> PTY -> `stty raw -echo; cat` -> and back. Yardstick: `ssh -tt` to a throwaway
sshd on a loopback port (its own host key and config, started and stopped here) running
the same program. The two are interleaved (A B A B ...) and the report gives each one's
p50/p99 per round and the median of the per-round p50 ratios.

Then ismd's memory (VmRSS) idle with 1 peer and with 15 peers on one fabric, with a
console attached and its 256 KiB scrollback full, and the idle CPU of 15 linked peers.

  bench/console_bench.py [--build build/dev] [--rounds 5] [--count 300]
"""
import argparse
import json
import os
import pty
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ECHO_PROGRAM = "stty raw -echo; exec cat"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pty:
    """A command on a pseudo-terminal we hold the master of."""

    def __init__(self, argv, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(argv[0], argv, env or os.environ)
        self.buf = b""

    def write(self, data):
        os.write(self.fd, data)

    def read_until(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waiting for {needle!r}, have {self.buf[-200:]!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                self.buf += os.read(self.fd, 65536)
        at = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:at], self.buf[at:]
        return out

    def read_exact(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waiting for {n} bytes, have {len(self.buf)}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                self.buf += os.read(self.fd, 65536)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)


def ready_echo(p):
    """Waits until the far side's cat echoes a token, then drops everything before it."""
    time.sleep(1.0)  # let `stty raw -echo` run before anything is typed
    token = b"<ready-%d>" % time.monotonic_ns()
    p.write(token)
    p.read_until(token, timeout=20)
    p.buf = b""


def round_trips(p, size, count):
    payload = (b"abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:size]
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        p.write(payload)
        got = p.read_exact(size)
        times.append((time.perf_counter() - t0) * 1e6)
        if got != payload:
            raise AssertionError("echo differs")
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


class Daemons:
    def __init__(self, build, work, fabric, names, peers_of, poll="adaptive", serve_program=None):
        self.procs = {}
        self.dirs = {}
        for name in names:
            d = os.path.join(work, name)
            os.makedirs(os.path.join(d, "peers.d"), exist_ok=True)
            self.dirs[name] = d
            with open(os.path.join(d, "ismd.json"), "w") as f:
                json.dump({"device": {"emulated": {"fabric": fabric, "function": name}},
                           "link": {"poll": poll, "channels": 4},
                           "control": {"socket": os.path.join(d, "control.sock")},
                           "log_level": "warning"}, f)
            for peer in peers_of(name):
                body = {"name": peer, "emulated_function": peer, "console": {"attach": True}}
                if serve_program:
                    body["console"]["serve"] = {"program": ["/bin/sh", "-c", serve_program],
                                                "unauthenticated": True, "launcher": "direct"}
                with open(os.path.join(d, "peers.d", peer + ".json"), "w") as f:
                    json.dump(body, f)
        for name in names:
            self.procs[name] = subprocess.Popen(
                [os.path.join(build, "daemon", "ismd"), "-c", os.path.join(self.dirs[name], "ismd.json")],
                stdin=subprocess.DEVNULL, stderr=open(os.path.join(self.dirs[name], "log"), "w"))
        self.build = build

    def socket(self, name):
        return os.path.join(self.dirs[name], "control.sock")

    def status(self, name):
        r = subprocess.run([os.path.join(self.build, "daemon", "ismctl"), "-s", self.socket(name), "status",
                            "--json"], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_up(self, name, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status(name)
            if s and sum(p["link"] == "up" for p in s["peers"]) >= n:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name}: {n} links not up")

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(10)


class Sshd:
    def __init__(self, work):
        for tool in ("sshd", "ssh", "ssh-keygen"):
            if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
                raise SystemExit(f"{tool} missing: apt-get install openssh-server openssh-client")
        self.dir = os.path.join(work, "sshd")
        os.makedirs(self.dir)
        os.makedirs("/run/sshd", exist_ok=True)
        key = os.path.join(self.dir, "host_key")
        ckey = os.path.join(self.dir, "client_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ckey], check=True)
        auth = os.path.join(self.dir, "authorized_keys")
        shutil.copy(ckey + ".pub", auth)
        os.chmod(auth, 0o600)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        cfg = os.path.join(self.dir, "sshd_config")
        with open(cfg, "w") as f:
            f.write(f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {key}\nPermitRootLogin yes\n"
                    f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
                    f"PidFile {self.dir}/pid\nLogLevel ERROR\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], stderr=subprocess.DEVNULL)
        self.argv = ["ssh", "-tt", "-q", "-i", ckey, "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
                     "-o", f"UserKnownHostsFile={self.dir}/known_hosts", "-o", "BatchMode=yes",
                     "root@127.0.0.1", ECHO_PROGRAM]
        time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build", "dev"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--poll", default="adaptive", choices=["interrupt", "adaptive", "polling"])
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="ismd-console-bench-")
    fabric = f"cbench-{os.getpid()}"
    cleanup = []
    try:
        d = Daemons(build, work, fabric, ["lpar1", "lpar2"],
                    lambda n: ["lpar2" if n == "lpar1" else "lpar1"], poll=args.poll,
                    serve_program=ECHO_PROGRAM)
        cleanup.append(d.stop)
        d.wait_up("lpar1", 1)
        sshd = Sshd(work)
        cleanup.append(sshd.stop)
        ism = Pty([os.path.join(build, "daemon", "ism-console"), "-s", d.socket("lpar1"), "attach", "lpar2",
                   "-e", "none"])
        cleanup.append(ism.close)
        ssh = Pty(sshd.argv)
        cleanup.append(ssh.close)
        ready_echo(ism)
        ready_echo(ssh)
        print(f"console echo round trips, {args.rounds} rounds x {args.count} per size, interleaved; "
              f"ismd link mode: {args.poll}; load average {os.getloadavg()[0]:.2f}")
        print(f"{'size':>6} {'round':>5} {'ismd p50':>10} {'ismd p99':>10} {'ssh p50':>10} {'ssh p99':>10} {'ratio':>7}")
        summary = {}
        for size in (64, 1024):
            ratios = []
            rows = []
            for rnd in range(args.rounds):
                a50, a99 = round_trips(ism, size, args.count)
                b50, b99 = round_trips(ssh, size, args.count)
                ratios.append(a50 / b50)
                rows.append((a50, a99, b50, b99))
                print(f"{size:>6} {rnd:>5} {a50:>8.1f}us {a99:>8.1f}us {b50:>8.1f}us {b99:>8.1f}us {a50 / b50:>6.2f}x")
            med = statistics.median(ratios)
            spread = max(ratios) / min(ratios)
            summary[size] = (med, statistics.median(r[0] for r in rows), statistics.median(r[2] for r in rows))
            print(f"{size:>6} median of ratios ismd/ssh p50: {med:.2f}x"
                  + ("  (disturbed: ratios spread more than 1.5x)" if spread > 1.5 else ""))
        for c in reversed(cleanup):
            c()
        cleanup = []

        if args.skip_memory:
            return
        # Memory and idle CPU: one hub with N peers, N spokes.
        for n in (1, 15):
            names = ["hub"] + [f"p{i}" for i in range(n)]
            dd = Daemons(build, os.path.join(work, f"mem{n}"), f"{fabric}-m{n}", names,
                         lambda name: [x for x in names if x != "hub"] if name == "hub" else ["hub"],
                         poll=args.poll)
            cleanup.append(dd.stop)
            dd.wait_up("hub", n)
            time.sleep(1.0)
            pid = dd.procs["hub"].pid
            c0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(5.0)
            cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
            rss = rss_kib(pid)
            budget = 8 * 1024 + n * (1024 + 512)
            print(f"ismd idle with {n:>2} linked peer(s): VmRSS {rss / 1024:.1f} MiB (budget {budget / 1024:.1f} MiB), "
                  f"CPU {cpu:.2f}% of a core over 5 s")
            dd.stop()
            cleanup = []
        # A console attached, scrollback full.
        dd = Daemons(build, os.path.join(work, "sb"), f"{fabric}-sb", ["lpar1", "lpar2"],
                     lambda n: ["lpar2" if n == "lpar1" else "lpar1"], poll=args.poll,
                     serve_program="head -c 400000 /dev/urandom | base64; exec cat")
        cleanup.append(dd.stop)
        dd.wait_up("lpar1", 1)
        con = Pty([os.path.join(build, "daemon", "ism-console"), "-s", dd.socket("lpar1"), "attach", "lpar2",
                   "-e", "none"])
        cleanup.append(con.close)
        got = 0
        while select.select([con.fd], [], [], 1.0)[0]:
            try:
                got += len(os.read(con.fd, 65536))
            except OSError:
                break
        st = dd.status("lpar2")
        sb = st["peers"][0]["console"].get("scrollback_bytes", 0)
        print(f"console: {got // 1024} KiB of output shown on attach")
        for name in ("lpar2", "lpar1"):
            print(f"ismd {name} ({'serving' if name == 'lpar2' else 'attached'}), console attached, scrollback "
                  f"{sb // 1024} KiB held: VmRSS {rss_kib(dd.procs[name].pid) / 1024:.1f} MiB "
                  f"(budget {(8 * 1024 + 1024 + 512) / 1024:.1f} MiB)")
    finally:
        for c in reversed(cleanup):
            try:
                c()
            except Exception:
                pass
        path = f"/dev/shm/ism-sim-{fabric}"
        for suffix in ("", "-m1", "-m15", "-sb"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
