#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Block benchmark: fio's nbd engine against ismd's import, beside Debian's nbd-server.

One backing file in tmpfs serves every server in the run:
  ismd      two ismd on an emulated fabric (lpar2 exports the file, lpar1 imports it and
            serves it on its NBD UNIX socket), link in adaptive polling mode
  unix      nbd-server over a UNIX socket      } started here with their own config
  tcp       nbd-server over loopback TCP       } files (one instance each)
Workloads: sequential read and write, 1 MiB blocks, QD8 (MB/s); random 4 KiB reads at
QD1 (p50 completion latency) and QD32 (IOPS). The two vCPUs of these machines move
under a run, so the servers are interleaved (ismd unix tcp ismd unix tcp ...) and the
report gives the median, over rounds, of the per-round ratios ismd/unix and ismd/tcp; a
workload whose ratios spread more than 1.5x is marked disturbed. Both ismd's resident
set (VmRSS) is recorded idle and at its peak under the QD32 and 1 MiB QD8 loads. The
figures are drawn into a PNG (matplotlib, Agg).

Without the block service in ismd (or with --only-yardsticks) only the two nbd-server
runs are made: that proves the harness. --endpoint PROGRAM adds ismd's NBD endpoint
alone over the same file (tests/nbd/nbd-local-server, no link) to the interleave, so
that the report separates the endpoint's cost from the link's.

  bench/block_bench.py [--build build/dev] [--rounds 3] [--runtime 5] [--png docs/block_bench.png]
                       [--endpoint build/dev/tests/nbd/nbd-local-server] [--json FILE]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20

# name -> (fio options, metric, unit, higher is better)
WORKLOADS = {
    "seq-read 1M QD8": (["--rw=read", "--bs=1M", "--iodepth=8"], "bw", "MB/s", True),
    "seq-write 1M QD8": (["--rw=write", "--bs=1M", "--iodepth=8"], "bw", "MB/s", True),
    "rand-read 4K QD1": (["--rw=randread", "--bs=4k", "--iodepth=1"], "p50", "us", False),
    "rand-read 4K QD32": (["--rw=randread", "--bs=4k", "--iodepth=32"], "iops", "IOPS", True),
}
# The loads under which ismd's memory is watched.
MEMORY_LOADS = ("seq-read 1M QD8", "seq-write 1M QD8", "rand-read 4K QD32")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class RssWatch:
    """Samples the peak VmRSS of some processes while a load runs."""

    def __init__(self, pids):
        self.pids = pids
        self.peak = {p: 0 for p in pids}
        self.stop_ = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_.is_set():
            for p in self.pids:
                self.peak[p] = max(self.peak[p], rss_kib(p))
            self.stop_.wait(0.05)

    def stop(self):
        self.stop_.set()
        self.thread.join()
        return self.peak


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


class NbdServer:
    """Debian's nbd-server with a config file of its own, on a UNIX socket or loopback TCP."""

    def __init__(self, work, name, image, unix):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.pidfile = os.path.join(self.dir, "pid")
        cfg = os.path.join(self.dir, "config")
        generic = ["[generic]"]
        if unix:
            self.sock = os.path.join(self.dir, "nbd.sock")
            generic.append(f"unixsock = {self.sock}")
            self.uri = f"nbd+unix:///data?socket={self.sock}"
        else:
            port = free_port()
            generic += ["listenaddr = 127.0.0.1", f"port = {port}"]
            self.uri = f"nbd://127.0.0.1:{port}/data"
        with open(cfg, "w") as f:
            f.write("\n".join(generic) + f"\n[data]\nexportname = {image}\nflush = true\nfua = true\ntrim = true\n")
        subprocess.run(["nbd-server", "-C", cfg, "-p", self.pidfile], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.pidfile) and os.path.getsize(self.pidfile) > 0, 10, "nbd-server's pid")
        with open(self.pidfile) as f:
            self.pid = int(f.read().strip())
        if unix:
            wait_for(lambda: os.path.exists(self.sock), 10, "nbd-server's socket")
        else:
            time.sleep(0.3)

    def stop(self):
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            return
        wait_for(lambda: not os.path.exists(f"/proc/{self.pid}"), 10, "nbd-server to exit")


class IsmdPair:
    """lpar2 exports the image to lpar1; lpar1 serves it on its NBD socket."""

    def __init__(self, build, work, fabric, image, poll, channels=None):
        self.build = build
        self.dirs = {}
        self.procs = {}
        for me, other in (("lpar1", "lpar2"), ("lpar2", "lpar1")):
            d = os.path.join(work, me)
            os.makedirs(os.path.join(d, "peers.d"))
            self.dirs[me] = d
            with open(os.path.join(d, "ismd.json"), "w") as f:
                json.dump({"device": {"emulated": {"fabric": fabric, "function": me}},
                           "link": {"poll": poll, **({"channels": channels} if channels else {})},
                           "control": {"socket": os.path.join(d, "control.sock")},
                           "log_level": "warning"}, f)
            block = {"import": {"enabled": me == "lpar1"}}
            if me == "lpar2":
                block["exports"] = [{"name": "data", "path": image, "read_only": False,
                                     "description": "benchmark image in tmpfs"}]
            with open(os.path.join(d, "peers.d", other + ".json"), "w") as f:
                json.dump({"name": other, "emulated_function": other, "block": block}, f)
        for me in ("lpar1", "lpar2"):
            self.procs[me] = subprocess.Popen(
                [os.path.join(build, "daemon", "ismd"), "-c", os.path.join(self.dirs[me], "ismd.json")],
                stdin=subprocess.DEVNULL, stderr=open(os.path.join(self.dirs[me], "log"), "w"))
        self.sock = os.path.join(self.dirs["lpar1"], "nbd", "lpar2", "data.sock")
        self.uri = f"nbd+unix:///data?socket={self.sock}"
        wait_for(lambda: os.path.exists(self.sock), 30, f"ismd's NBD socket {self.sock}")

    def pids(self):
        return {name: p.pid for name, p in self.procs.items()}

    def status(self):
        r = subprocess.run([os.path.join(self.build, "daemon", "ismctl"), "-s",
                            os.path.join(self.dirs["lpar1"], "control.sock"), "status", "--json"],
                           capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(10)


class LocalEndpoint:
    """--endpoint: ismd's NBD endpoint alone over the file (tests/nbd/nbd-local-server), no
    link: with it beside ismd the report shows how much of ismd's time is the link's."""

    def __init__(self, program, work, image):
        self.sock = os.path.join(work, "endpoint.sock")
        self.proc = subprocess.Popen([program, "--file", image, "--socket", self.sock, "--name", "data"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.sock), 10, "nbd-local-server's socket")
        self.uri = f"nbd+unix:///data?socket={self.sock}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def block_service_absent(build):
    """Why ismd cannot serve block exports, or None when it can."""
    with tempfile.TemporaryDirectory(prefix="ismd-block-probe-") as d:
        os.makedirs(os.path.join(d, "peers.d"))
        with open(os.path.join(d, "ismd.json"), "w") as f:
            json.dump({"device": {"emulated": {"fabric": "probe", "function": "a"}},
                       "control": {"socket": os.path.join(d, "control.sock")}}, f)
        with open(os.path.join(d, "peers.d", "b.json"), "w") as f:
            json.dump({"name": "b", "emulated_function": "b", "block": {"exports": []}}, f)
        r = subprocess.run([os.path.join(build, "daemon", "ismd"), "--check-config", "-c",
                            os.path.join(d, "ismd.json")], capture_output=True, text=True)
        return None if r.returncode == 0 else (r.stderr or r.stdout).strip()


def fio(work, uri, options, size, runtime, tag):
    out = os.path.join(work, f"fio-{tag}.json")
    subprocess.run(["fio", "--name=bench", "--ioengine=nbd", f"--uri={uri}", f"--size={size}",
                    "--time_based", f"--runtime={runtime}", "--ramp_time=1", "--numjobs=1",
                    "--output-format=json", f"--output={out}", *options],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=runtime + 120, cwd=work)
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    if job["error"]:
        raise RuntimeError(f"fio {tag}: error {job['error']}")
    return job


def metric(job, kind):
    side = job["write"] if job["write"]["io_bytes"] > job["read"]["io_bytes"] else job["read"]
    if kind == "bw":
        return side["bw_bytes"] / 1e6
    if kind == "iops":
        return side["iops"]
    return side["clat_ns"]["percentile"]["50.000000"] / 1000


def plot(path, servers, results, ratios, memory, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ismd": "#1f77b4", "endpoint": "#8c564b", "unix": "#ff7f0e", "tcp": "#2ca02c"}
    names = {"ismd": "ismd", "endpoint": "endpoint\nalone", "unix": "nbd-server\nunix", "tcp": "nbd-server\ntcp"}
    fig, axes = plt.subplots(1, len(WORKLOADS) + (1 if memory else 0),
                             figsize=(4.2 * (len(WORKLOADS) + (1 if memory else 0)), 5.0))
    for ax, (wl, (_, _, unit, higher)) in zip(axes, WORKLOADS.items()):
        for i, s in enumerate(servers):
            vals = results[wl][s]
            ax.bar(i, statistics.median(vals), color=colors[s], alpha=0.8)
            ax.scatter([i] * len(vals), vals, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(servers)), [names[s] for s in servers])
        head = wl + ("" if higher else " (p50)")
        if wl in ratios:
            head += "\n" + "\n".join(f"median of ratios {k}: {v:.2f}x" for k, v in ratios[wl].items())
        ax.set_title(head, fontsize=8)
        ax.set_ylabel(unit + (" (higher is better)" if higher else " (lower is better)"))
    if memory:
        # Grouped: one group per ismd, one bar per condition (idle, then each load's peak).
        ax = axes[-1]
        conditions = ["idle", *MEMORY_LOADS]
        width = 0.8 / len(conditions)
        for j, cond in enumerate(conditions):
            vals = [memory.get(f"{n} {cond}", 0) / 1024 for n in ("lpar1", "lpar2")]
            ax.bar([i + (j - (len(conditions) - 1) / 2) * width for i in range(2)], vals, width,
                   label=cond if cond == "idle" else f"peak, {cond}")
        ax.set_xticks(range(2), ["lpar1 (importer)", "lpar2 (exporter)"])
        ax.set_ylabel("VmRSS MiB")
        ax.set_title("ismd memory", fontsize=10)
        ax.set_ylim(0, max(memory.values()) / 1024 * 1.6)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "dev"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=5, help="seconds per fio run (after 1 s of ramp)")
    ap.add_argument("--size-mib", type=int, default=512, help="backing file in /dev/shm")
    ap.add_argument("--poll", default="adaptive", choices=["interrupt", "adaptive", "polling"])
    ap.add_argument("--link-channels", type=int, help="ismd's link channels (default: ismd's own); "
                    "fewer channels give each ring a larger share of the 1 MiB DMB")
    ap.add_argument("--only-yardsticks", action="store_true", help="nbd-server over UNIX and TCP only")
    ap.add_argument("--endpoint", metavar="NBD_LOCAL_SERVER",
                    help="also measure ismd's NBD endpoint alone (tests/nbd/nbd-local-server)")
    ap.add_argument("--png", default=os.path.join(HERE, "..", "docs", "block_bench.png"))
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    for tool in ("fio", "nbd-server"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: tools/install-deps installs it")

    servers = ["ismd", "unix", "tcp"]
    if args.only_yardsticks:
        servers = ["unix", "tcp"]
        print("ismd left out (--only-yardsticks)")
    else:
        why = block_service_absent(build)
        if why:
            servers = ["unix", "tcp"]
            print(f"ismd left out: it has no block service ({why})")

    work = tempfile.mkdtemp(prefix="ismd-block-bench-")
    shm = tempfile.mkdtemp(prefix="ismd-block-bench-", dir="/dev/shm")
    fabric = f"bbench-{os.getpid()}"
    cleanup = []
    try:
        image = os.path.join(shm, "disk.img")
        size = args.size_mib * MiB
        chunk = os.urandom(MiB)
        with open(image, "wb") as f:  # every block allocated: reads find data, not holes
            for _ in range(args.size_mib):
                f.write(chunk)
        uris = {}
        if "ismd" in servers:
            pair = IsmdPair(build, work, fabric, image, args.poll, args.link_channels)
            cleanup.append(pair.stop)
            uris["ismd"] = pair.uri
            time.sleep(1.0)
            idle = {n: rss_kib(p) for n, p in pair.pids().items()}
        if args.endpoint:
            servers.insert(servers.index("unix"), "endpoint")
            ep = LocalEndpoint(os.path.abspath(args.endpoint), work, image)
            cleanup.append(ep.stop)
            uris["endpoint"] = ep.uri
        for name in ("unix", "tcp"):
            s = NbdServer(work, name, image, unix=name == "unix")
            cleanup.append(s.stop)
            uris[name] = s.uri

        load = os.getloadavg()[0]
        print(f"fio nbd engine, {args.rounds} rounds x {args.runtime} s per run, interleaved "
              f"{' '.join(servers)}; backing file {args.size_mib} MiB in tmpfs; ismd link: {args.poll}; "
              f"{os.cpu_count()} CPUs, load average {load:.2f}")
        results = {wl: {s: [] for s in servers} for wl in WORKLOADS}
        peaks = {wl: {} for wl in MEMORY_LOADS}
        for rnd in range(args.rounds):
            for wl, (options, kind, unit, _) in WORKLOADS.items():
                row = []
                for s in servers:
                    watch = RssWatch(list(pair.pids().values())) if s == "ismd" and wl in MEMORY_LOADS else None
                    job = fio(work, uris[s], options, size, args.runtime, f"{rnd}-{s}")
                    if watch:
                        peak = watch.stop()
                        for n, p in pair.pids().items():
                            peaks[wl][n] = max(peaks[wl].get(n, 0), peak[p])
                    v = metric(job, kind)
                    results[wl][s].append(v)
                    row.append(f"{s} {v:10.1f}")
                print(f"round {rnd} {wl:<18} {unit:>5}: " + "   ".join(row))

        print()
        ratios = {}
        disturbed = []
        summary = {"servers": servers, "results": results, "rounds": args.rounds, "runtime": args.runtime,
                   "load_average": load}
        for wl, (_, _, unit, higher) in WORKLOADS.items():
            med = {s: statistics.median(results[wl][s]) for s in servers}
            line = f"{wl:<18} median: " + ", ".join(f"{s} {med[s]:.1f} {unit}" for s in servers)
            pairs = [(a, b) for a in ("ismd", "endpoint") if a in servers for b in ("unix", "tcp")]
            if "ismd" in servers and "endpoint" in servers:
                pairs.append(("ismd", "endpoint"))
            pairs = pairs or [("tcp", "unix")]
            ratios[wl] = {}
            for a, b in pairs:
                rs = [x / y for x, y in zip(results[wl][a], results[wl][b])]
                m = statistics.median(rs)
                ratios[wl][f"{a}/{b}"] = m
                spread = max(rs) / min(rs)
                line += f"; median of ratios {a}/{b}: {m:.2f}x"
                if spread > 1.5:
                    line += f" (disturbed: ratios spread {spread:.2f}x)"
                    disturbed.append(f"{wl} {a}/{b}")
            print(line)
        summary["ratios"] = ratios
        summary["disturbed"] = disturbed

        memory = {}
        if "ismd" in servers:
            print()
            for n in ("lpar1", "lpar2"):
                memory[f"{n} idle"] = idle[n]
                line = f"ismd {n} ({'importer' if n == 'lpar1' else 'exporter'}): VmRSS idle {idle[n] / 1024:.1f} MiB"
                for wl in MEMORY_LOADS:
                    memory[f"{n} {wl}"] = peaks[wl][n]
                    over = (peaks[wl][n] - idle[n]) / 1024
                    line += f"; peak under {wl} {peaks[wl][n] / 1024:.1f} MiB (+{over:.1f}" \
                            f"{', over the 64 MiB budget' if over > 64 else ''})"
                print(line)
            summary["rss_kib"] = memory
            st = pair.status()
            if st:
                summary["ismd_status"] = st

        title = (f"fio nbd engine, {args.rounds} rounds x {args.runtime} s interleaved, {args.size_mib} MiB "
                 f"in tmpfs, {os.cpu_count()} vCPUs, load {load:.2f}"
                 + ("" if "ismd" in servers else " (nbd-server only: ismd has no block service)"))
        plot(args.png, servers, results, ratios, memory, title)
        print(f"\nplot: {args.png}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=1)
    finally:
        for c in reversed(cleanup):
            try:
                c()
            except Exception as e:  # cleanup goes on; say what was left
                print(f"cleanup: {e}", file=sys.stderr)
        if os.path.exists(f"/dev/shm/ism-sim-{fabric}"):
            os.unlink(f"/dev/shm/ism-sim-{fabric}")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
