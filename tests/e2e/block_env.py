# SPDX-License-Identifier: MIT
"""Helpers for the block device's end-to-end tests: a small NBD client of our own (for
what no packaged client reports: which writes were acknowledged before a FLUSH, the exact
error of one request, how long a request waited), the real clients (nbdinfo, qemu-img,
nbdcopy, fio, nbdfuse + mount), and the exports under test.

The exports are served by two ismd on an emulated fabric (lpar2 exports, lpar1 imports).
With ISMD_BLOCK_TARGET=qemu-nbd they are served by Debian's qemu-nbd instead, one
process per export on a socket of its own, as ismd does: that proves the helpers and the
tests' expectations against a reference server. ISMD_BLOCK_TARGET=endpoint serves them
with tests/nbd/nbd-local-server (ismd's NBD endpoint over a local file, no link; another
binary with $NBD_LOCAL_SERVER). The tests that need ismd itself (status, peer loss, the
per-peer access list, TCP) skip in those modes.
"""
import json
import os
import socket
import struct
import subprocess
import unittest

from ismd_env import BUILD, CI, ISMD, IsmdTestCase, need, wait_for

TARGET = os.environ.get("ISMD_BLOCK_TARGET", "ismd")

# NBD protocol constants (NetworkBlockDevice/nbd doc/proto.md).
NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPT_REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_ABORT, OPT_LIST, OPT_GO = 2, 3, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP = 0x80000001
REP_ERR_UNKNOWN = 0x80000006
INFO_EXPORT = 0
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
CMD_FLAG_FUA = 1
TFLAG_READ_ONLY, TFLAG_SEND_FLUSH, TFLAG_SEND_FUA, TFLAG_CAN_MULTI_CONN = 1 << 1, 1 << 2, 1 << 3, 1 << 8
EPERM, EIO, EINVAL, ENOSPC, ESHUTDOWN = 1, 5, 22, 28, 108


class NbdOptionError(Exception):
    def __init__(self, option, reply_type, message):
        super().__init__(f"option {option}: reply {reply_type:#x}: {message}")
        self.reply_type = reply_type


class NbdClient:
    """Fixed newstyle, NO_ZEROES, simple replies; requests may be pipelined (submit, then
    reply). Every socket operation has a timeout: a server that hangs fails the test."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        magic, opt, flags = struct.unpack(">QQH", self.recv(18))
        if magic != NBDMAGIC or opt != IHAVEOPT or not flags & FLAG_FIXED_NEWSTYLE:
            raise AssertionError(f"not a fixed newstyle NBD server: {magic:#x} {opt:#x} {flags:#x}")
        self.sock.sendall(struct.pack(">I", FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)))
        self.size = None
        self.flags = 0
        self.cookie = 0
        self.pending = {}  # cookie -> (cmd, length)

    def recv(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"the server closed the connection ({len(out)} of {n} bytes read)")
            out += chunk
        return bytes(out)

    def option(self, opt, data=b""):
        self.sock.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def option_reply(self, opt):
        magic, got_opt, rtype, length = struct.unpack(">QIII", self.recv(20))
        if magic != OPT_REPLY_MAGIC or got_opt != opt:
            raise AssertionError(f"bad option reply {magic:#x} for option {got_opt} (asked {opt})")
        return rtype, self.recv(length)

    def list_exports(self):
        """NBD_OPT_LIST: [(name, description)]."""
        self.option(OPT_LIST)
        out = []
        while True:
            rtype, data = self.option_reply(OPT_LIST)
            if rtype == REP_ACK:
                return out
            if rtype != REP_SERVER:
                raise NbdOptionError(OPT_LIST, rtype, data.decode(errors="replace"))
            (n,) = struct.unpack(">I", data[:4])
            out.append((data[4:4 + n].decode(), data[4 + n:].decode()))

    def go(self, name):
        """NBD_OPT_GO: enters transmission; returns (size, transmission flags)."""
        raw = name.encode()
        self.option(OPT_GO, struct.pack(">I", len(raw)) + raw + struct.pack(">H", 0))
        while True:
            rtype, data = self.option_reply(OPT_GO)
            if rtype == REP_ACK:
                if self.size is None:
                    raise AssertionError("GO acknowledged without NBD_INFO_EXPORT")
                return self.size, self.flags
            if rtype == REP_INFO:
                (info,) = struct.unpack(">H", data[:2])
                if info == INFO_EXPORT:
                    self.size, self.flags = struct.unpack(">QH", data[2:12])
            else:
                raise NbdOptionError(OPT_GO, rtype, data.decode(errors="replace"))

    def submit(self, cmd, offset=0, length=0, data=b"", flags=0):
        self.cookie += 1
        if cmd == CMD_WRITE:
            length = len(data)
        self.pending[self.cookie] = (cmd, length)
        self.sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, self.cookie, offset, length) + data)
        return self.cookie

    def reply(self):
        """The next reply: (cookie, NBD error, data for a READ)."""
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        if magic != SIMPLE_REPLY_MAGIC or cookie not in self.pending:
            raise AssertionError(f"bad reply: magic {magic:#x}, cookie {cookie}")
        cmd, length = self.pending.pop(cookie)
        data = self.recv(length) if cmd == CMD_READ and err == 0 else b""
        return cookie, err, data

    def call(self, cmd, offset=0, length=0, data=b"", flags=0):
        cookie = self.submit(cmd, offset, length, data, flags)
        got, err, out = self.reply()
        if got != cookie:
            raise AssertionError(f"reply for cookie {got}, expected {cookie}")
        return err, out

    def read(self, offset, length):
        err, data = self.call(CMD_READ, offset, length)
        if err:
            raise OSError(err, f"NBD READ at {offset}: error {err}")
        return data

    def write(self, offset, data, fua=False):
        return self.call(CMD_WRITE, offset, data=data, flags=CMD_FLAG_FUA if fua else 0)[0]

    def flush(self):
        return self.call(CMD_FLUSH)[0]

    def disconnect(self):
        try:
            self.sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        self.sock.close()


def connect(path, export, timeout=30.0):
    c = NbdClient(path, timeout)
    c.go(export)
    return c


def uri(sock, export):
    return f"nbd+unix:///{export}?socket={sock}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, timeout=120, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def nbdinfo_json(*args):
    need("nbdinfo")
    return json.loads(run(["nbdinfo", "--json", *args]).stdout)


def fio(work, name, uri_, *options, timeout=120):
    """fio's nbd engine; returns the job's JSON (fio writes it to a file, not stdout)."""
    need("fio")
    out = os.path.join(work, f"fio-{name}.json")
    # In the test's directory: fio leaves its verify state files in the current one.
    run(["fio", f"--name={name}", "--ioengine=nbd", f"--uri={uri_}", f"--output={out}",
         "--output-format=json", *options], timeout=timeout, cwd=work)
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    if job["error"]:
        raise AssertionError(f"fio {name}: error {job['error']}")
    return job


class FuseFile:
    """nbdfuse turns an export into a file (<dir>/nbd) that mount -o loop can use."""

    def __init__(self, work, uri_):
        need("nbdfuse")
        need("fusermount3")
        self.dir = os.path.join(work, "fuse")
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(work, "nbdfuse.log"), "w")
        self.proc = subprocess.Popen(["nbdfuse", self.dir, uri_], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        self.file = os.path.join(self.dir, "nbd")
        wait_for(lambda: self.proc.poll() is not None or os.path.ismount(self.dir), 10, "nbdfuse's mount")
        if self.proc.poll() is not None:
            raise AssertionError(f"nbdfuse exited with {self.proc.returncode}")

    def close(self):
        if os.path.ismount(self.dir):
            subprocess.run(["fusermount3", "-u", "-z", self.dir], capture_output=True)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Mount:
    """An ext4 filesystem on a file, through mount -o loop."""

    def __init__(self, image, where):
        self.image = image
        self.where = where
        os.makedirs(where, exist_ok=True)

    def mount(self):
        run(["mount", "-t", "ext4", "-o", "loop", self.image, self.where], timeout=60)

    def umount(self):
        run(["umount", self.where], timeout=120)

    def close(self):
        if os.path.ismount(self.where):
            subprocess.run(["umount", "-l", self.where], capture_output=True, timeout=60)


def block_service_absent():
    """Why ismd cannot serve block exports, or None when it can (its configuration must
    know the peer file's "block" section)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ismd-block-probe-") as d:
        os.makedirs(os.path.join(d, "peers.d"))
        with open(os.path.join(d, "ismd.json"), "w") as f:
            json.dump({"device": {"emulated": {"fabric": "probe", "function": "a"}},
                       "control": {"socket": os.path.join(d, "control.sock")}}, f)
        with open(os.path.join(d, "peers.d", "b.json"), "w") as f:
            json.dump({"name": "b", "emulated_function": "b",
                       "block": {"exports": [], "import": {"enabled": True}}}, f)
        r = subprocess.run([ISMD, "--check-config", "-c", os.path.join(d, "ismd.json")], capture_output=True,
                           text=True, timeout=30)
        if r.returncode == 0:
            return None
        return (r.stderr or r.stdout).strip()


class QemuNbd:
    """The reference server (ISMD_BLOCK_TARGET=qemu-nbd): one export on its own socket."""

    def __init__(self, work, export):
        need("qemu-nbd")
        self.sock = os.path.join(work, "qemu-nbd", export["name"] + ".sock")
        os.makedirs(os.path.dirname(self.sock), exist_ok=True)
        argv = ["qemu-nbd", "-f", "raw", "-x", export["name"], "-k", self.sock, "--persistent", "-e", "16",
                "--cache=writeback", "--discard=unmap"]
        if export.get("description"):
            argv += ["-D", export["description"]]
        if export.get("read_only"):
            argv.append("-r")
        self.proc = subprocess.Popen(argv + [export["path"]], stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.sock), 10, "qemu-nbd's socket")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class LocalServer:
    """ISMD_BLOCK_TARGET=endpoint: the NBD endpoint alone (tests/nbd/nbd-local-server)."""

    def __init__(self, work, export):
        self.sock = os.path.join(work, "endpoint", export["name"] + ".sock")
        os.makedirs(os.path.dirname(self.sock), exist_ok=True)
        argv = [os.environ.get("NBD_LOCAL_SERVER", os.path.join(BUILD, "tests", "nbd", "nbd-local-server")),
                "--file", export["path"], "--socket", self.sock, "--name", export["name"]]
        if export.get("read_only"):
            argv.append("--read-only")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.sock), 10, "nbd-local-server's socket")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class BlockTestCase(IsmdTestCase):
    """lpar2 exports files to lpar1; lpar1's ismd serves them as NBD sockets."""

    def setUp(self):
        super().setUp()
        if TARGET == "ismd":
            why = block_service_absent()
            if why:
                message = f"ismd has no block service: {why}"
                if CI:
                    raise AssertionError(message)
                raise unittest.SkipTest(message)
        elif TARGET not in ("qemu-nbd", "endpoint"):
            raise AssertionError(f"ISMD_BLOCK_TARGET={TARGET}: expected ismd or qemu-nbd")

    def needs_ismd(self, what):
        if TARGET != "ismd":
            self.skipTest(f"{what}: only ismd does this (ISMD_BLOCK_TARGET={TARGET})")

    def image(self, name, size, data_at=()):
        """A sparse backing file of `size` bytes with random data at each (offset, length)."""
        path = os.path.join(self.work, name + ".img")
        with open(path, "wb") as f:
            f.truncate(size)
            for offset, length in data_at:
                f.seek(offset)
                f.write(os.urandom(length))
        return path

    def serve(self, exports, deadline_ms=30000, other_peers=None, link=None, tcp=None):
        """Starts the exporting side and the importing side. `exports`: the block section's
        export objects offered to lpar1; `other_peers`: {peer: exports} offered to other
        peers of lpar2 (each is started too); `tcp`: lpar1's import "tcp" map. Returns
        {export name: NBD socket on lpar1}."""
        if TARGET in ("qemu-nbd", "endpoint"):
            out = {}
            for e in exports:
                server = QemuNbd(self.work, e) if TARGET == "qemu-nbd" else LocalServer(self.work, e)
                self.addCleanup(server.close)
                out[e["name"]] = server.sock
            return out
        kw = {"link": link} if link else {}
        self.importer = self.ismd("lpar1", **kw)
        self.exporter = self.ismd("lpar2", **kw)
        imports = {"enabled": True, "deadline_ms": deadline_ms}
        if tcp:
            imports["tcp"] = tcp
        self.importer.add_peer("lpar2", block={"import": imports})
        self.exporter.add_peer("lpar1", block={"exports": exports, "import": {"enabled": False}})
        self.others = {}
        for peer, offered in (other_peers or {}).items():
            self.exporter.add_peer(peer, block={"exports": offered, "import": {"enabled": False}})
            d = self.ismd(peer, **kw)
            d.add_peer("lpar2", block={"import": {"enabled": True, "deadline_ms": deadline_ms}})
            self.others[peer] = d
        for d in (self.importer, self.exporter, *self.others.values()):
            d.start()
        self.importer.wait_link("lpar2")
        for d in self.others.values():
            d.wait_link("lpar2")
        out = {e["name"]: self.importer.nbd_socket("lpar2", e["name"]) for e in exports}
        for path in out.values():
            wait_for(lambda p=path: os.path.exists(p), 10, f"the NBD socket {path}")
        return out


def block_entry(peer_status, kind, name):
    """The status of one export or import ("exports"/"imports") in a peer's "block" part."""
    block = peer_status.get("block")
    if not isinstance(block, dict):
        raise AssertionError(f"no \"block\" part in the peer's status: {peer_status}")

    def lists(node):  # the list under `kind`, at whatever depth the block part nests it
        for key, value in node.items():
            if key == kind and isinstance(value, list):
                yield value
            elif isinstance(value, dict):
                yield from lists(value)

    for entries in lists(block):
        for entry in entries:
            if entry.get("name") == name:
                return entry
    raise AssertionError(f"no {kind[:-1]} {name!r} in {block}")


def bytes_moved(entry):
    """Bytes read plus written, whatever the counters are called (every key with "bytes")."""
    return sum(v for k, v in entry.items() if "bytes" in k and isinstance(v, int))
