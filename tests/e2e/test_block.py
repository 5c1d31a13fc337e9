# SPDX-License-Identifier: MIT
"""The block device with real clients: lpar2 exports a sparse file, lpar1's ismd serves
it as an NBD socket, and nbdinfo, qemu-img, nbdcopy, fio, an ext4 filesystem through
nbdfuse and a loop device, and nbd-client use it unmodified. Then what a user relies on
when things go wrong: a read-only export refuses writes, an export not offered to a peer
does not exist for it, malformed requests get an error or a clean disconnect and disturb
no other client, and a lost peer costs no acknowledged write and hangs no client.

ISMD_BLOCK_TARGET=qemu-nbd runs the same clients against qemu-nbd, and
ISMD_BLOCK_TARGET=endpoint against the NBD endpoint alone (see block_env.py)."""
import filecmp
import hashlib
import os
import random
import struct
import subprocess
import sys
import threading
import time
import unittest

from block_env import (CI, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, EINVAL, EIO, EPERM,
                       ESHUTDOWN, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REQUEST_MAGIC, TARGET, TFLAG_CAN_MULTI_CONN,
                       TFLAG_READ_ONLY, TFLAG_SEND_FLUSH, TFLAG_SEND_FUA, BlockTestCase, FuseFile, Mount, NbdClient,
                       NbdOptionError, block_entry, block_service_absent, bytes_moved, connect, fio, free_port,
                       nbdinfo_json, need, run, uri)
from ismd_env import wait_for

MiB = 1 << 20
SIZE = 256 * MiB
# Where the backing file holds data; everything else is a hole.
DATA_AT = ((8 * MiB, 2 * MiB), (100 * MiB, 1 * MiB))
DESCRIPTION = "lpar2 scratch disk"


def sha256_file(path, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left is None or left > 0:
            chunk = f.read(MiB if left is None else min(MiB, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h.hexdigest()


class BlockClients(BlockTestCase):
    """One read-write export, driven by the clients administrators already use."""

    def setUp(self):
        super().setUp()
        self.backing = self.image("data", SIZE, DATA_AT)
        export = {"name": "data", "path": self.backing, "read_only": False, "description": DESCRIPTION}
        self.sock = self.serve([export])["data"]
        self.uri = uri(self.sock, "data")

    def test_nbdinfo_size_flags_list_and_map(self):
        info = nbdinfo_json(self.uri)["exports"][0]
        self.assertEqual(info["export-size"], SIZE)
        self.assertFalse(info["is_read_only"])
        for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
            self.assertTrue(info[flag], flag)

        listed = nbdinfo_json("--list", f"nbd+unix:///?socket={self.sock}")["exports"]
        entry = next((e for e in listed if e["export-name"] == "data"), None)
        self.assertIsNotNone(entry, listed)
        if TARGET != "endpoint":  # nbd-local-server's description is fixed
            self.assertEqual(entry.get("description"), DESCRIPTION)

        # base:allocation: data where the file has data, holes (reading as zeroes) elsewhere.
        extents = nbdinfo_json("--map", self.uri)
        self.assertEqual(sum(e["length"] for e in extents), SIZE)
        self.assertEqual(extents[0]["offset"], 0)

        def kind_at(offset):
            e = next(e for e in extents if e["offset"] <= offset < e["offset"] + e["length"])
            return e["type"]

        for offset, length in DATA_AT:
            for at in (offset, offset + length - 1):
                self.assertEqual(kind_at(at) & 1, 0, f"{at} is data in the file, the map says a hole")
        for hole in (0, 4 * MiB, 50 * MiB, 200 * MiB, SIZE - 1):
            self.assertEqual(kind_at(hole), 3, f"{hole} is a hole in the file, the map says otherwise")

    def test_qemu_img_convert_and_compare_both_directions(self):
        need("qemu-img")
        source = self.image("source", SIZE, [(random.randrange(0, SIZE // MiB) * MiB, MiB) for _ in range(24)])
        # Local image -> export: the exporter's file becomes the source, byte for byte.
        run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, self.uri], timeout=180)
        run(["qemu-img", "compare", "-f", "raw", "-F", "raw", source, self.uri], timeout=180)
        self.assertEqual(sha256_file(self.backing), sha256_file(source))
        # Export -> a new local image.
        back = os.path.join(self.work, "back.img")
        run(["qemu-img", "convert", "-f", "raw", "-O", "raw", self.uri, back], timeout=180)
        run(["qemu-img", "compare", "-f", "raw", "-F", "raw", self.uri, back], timeout=180)
        self.assertTrue(filecmp.cmp(source, back, shallow=False))

    def test_nbdcopy_both_directions(self):
        need("nbdcopy")
        source = self.image("source", SIZE, [(random.randrange(0, SIZE // MiB) * MiB, MiB) for _ in range(24)])
        run(["nbdcopy", source, self.uri], timeout=180)
        self.assertEqual(sha256_file(self.backing), sha256_file(source))
        back = os.path.join(self.work, "back.img")
        with open(back, "wb") as f:
            f.truncate(SIZE)
        run(["nbdcopy", self.uri, back], timeout=180)
        self.assertTrue(filecmp.cmp(source, back, shallow=False))

    def test_fio_random_read_write_verified(self):
        job = fio(self.work, "randrw", self.uri, "--rw=randrw", "--bsrange=4k-128k", "--size=64M",
                  "--iodepth=16", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--fsync=32",
                  "--randseed=1234")
        self.assertGreater(job["write"]["io_bytes"], 0)
        self.assertGreater(job["read"]["io_bytes"], 0)

    def test_ext4_mounted_written_remounted(self):
        need("mkfs.ext4")
        if os.geteuid() != 0:
            self.skipTest("mount needs root")
        # 64 MiB of old data, which mkfs's discard must punch out of lpar2's file.
        c = connect(self.sock, "data")
        for i in range(16):
            self.assertEqual(c.write(128 * MiB + i * 4 * MiB, os.urandom(4 * MiB)), 0)
        self.assertEqual(c.flush(), 0)
        c.disconnect()
        self.assertGreater(os.stat(self.backing).st_blocks * 512, 64 * MiB)
        fuse = FuseFile(self.work, self.uri)
        self.addCleanup(fuse.close)
        self.assertEqual(os.path.getsize(fuse.file), SIZE)
        run(["mkfs.ext4", "-q", "-F", fuse.file], timeout=120)
        # mkfs discarded the whole file: TRIM reached the exporter as punched holes.
        self.assertLess(os.stat(self.backing).st_blocks * 512, 32 * MiB)
        mnt = Mount(fuse.file, os.path.join(self.work, "mnt"))
        self.addCleanup(mnt.close)
        mnt.mount()
        written = {}
        for i in range(12):
            data = os.urandom(random.randrange(1, 3 * MiB))
            name = f"file{i}"
            with open(os.path.join(mnt.where, name), "wb") as f:
                f.write(data)
            written[name] = hashlib.sha256(data).hexdigest()
        os.makedirs(os.path.join(mnt.where, "dir/sub"))
        with open(os.path.join(mnt.where, "dir/sub/note"), "w") as f:
            f.write("written through ismd\n")
        mnt.umount()
        run(["e2fsck", "-f", "-n", fuse.file], timeout=120)
        mnt.mount()
        for name, digest in written.items():
            self.assertEqual(sha256_file(os.path.join(mnt.where, name)), digest, name)
        with open(os.path.join(mnt.where, "dir/sub/note")) as f:
            self.assertEqual(f.read(), "written through ismd\n")
        mnt.umount()

    def test_kernel_nbd_client(self):
        need("nbd-client")
        if not os.path.exists("/sys/module/nbd") and \
                subprocess.run(["modprobe", "nbd"], capture_output=True).returncode != 0:
            # Allowed under CI=true too: the kernel of these machines has no nbd module.
            why = f"the kernel ({os.uname().release}) has no nbd module: /dev/nbd0 cannot exist here"
            print(f"\nskipping nbd-client: {why}")
            self.skipTest(why)
        wait_for(lambda: os.path.exists("/dev/nbd0"), 5, "/dev/nbd0")
        run(["nbd-client", "-unix", self.sock, "/dev/nbd0", "-name", "data"], timeout=30)
        self.addCleanup(subprocess.run, ["nbd-client", "-d", "/dev/nbd0"], capture_output=True)
        size = int(run(["blockdev", "--getsize64", "/dev/nbd0"]).stdout)
        self.assertEqual(size, SIZE)
        offset, length = DATA_AT[0]
        with open("/dev/nbd0", "rb") as dev:
            dev.seek(offset)
            got = dev.read(length)
        with open(self.backing, "rb") as f:
            f.seek(offset)
            self.assertEqual(got, f.read(length))
        payload = os.urandom(MiB)
        fd = os.open("/dev/nbd0", os.O_WRONLY)
        try:
            os.pwrite(fd, payload, 64 * MiB)
            os.fsync(fd)  # the kernel sends NBD_CMD_FLUSH
        finally:
            os.close(fd)
        with open(self.backing, "rb") as f:
            f.seek(64 * MiB)
            self.assertEqual(f.read(MiB), payload)
        run(["nbd-client", "-d", "/dev/nbd0"], timeout=30)

    def test_trim_and_write_zeroes_reach_the_file(self):
        c = connect(self.sock, "data")
        self.addCleanup(c.close)
        at = 32 * MiB
        old = os.urandom(4 * MiB)
        self.assertEqual(c.write(at, old), 0)
        self.assertEqual(c.flush(), 0)
        allocated = os.stat(self.backing).st_blocks * 512
        self.assertEqual(c.call(CMD_WRITE_ZEROES, at, MiB)[0], 0)
        self.assertEqual(c.call(CMD_TRIM, at + 2 * MiB, 2 * MiB)[0], 0)
        self.assertEqual(c.flush(), 0)
        self.assertEqual(c.read(at, MiB), bytes(MiB))
        self.assertEqual(c.read(at + MiB, MiB), old[MiB:2 * MiB])
        with open(self.backing, "rb") as f:
            f.seek(at)
            self.assertEqual(f.read(2 * MiB), bytes(MiB) + old[MiB:2 * MiB])
        # TRIM punched its 2 MiB out of lpar2's file.
        self.assertLessEqual(os.stat(self.backing).st_blocks * 512, allocated - 2 * MiB)
        c.disconnect()

    def test_32_mib_payloads_and_several_connections(self):
        # The largest payload a client may send, written on one connection, pipelined
        # with small reads on it, and read back on two others (CAN_MULTI_CONN: what one
        # connection had acknowledged, every other one sees).
        a, b, c = (connect(self.sock, "data") for _ in range(3))
        for x in (a, b, c):
            self.addCleanup(x.close)
        self.assertTrue(a.flags & TFLAG_CAN_MULTI_CONN)
        big = os.urandom(32 * MiB)
        cookies = {a.submit(CMD_WRITE, 64 * MiB, data=big): "write"}
        for i in range(8):
            cookies[a.submit(CMD_READ, DATA_AT[0][0] + i * 4096, 4096)] = "read"
        for _ in cookies:
            cookie, err, _ = a.reply()
            self.assertEqual(err, 0, cookies[cookie])
        self.assertEqual(b.read(64 * MiB, 32 * MiB), big)
        self.assertEqual(c.read(64 * MiB + 7 * MiB, MiB), big[7 * MiB:8 * MiB])
        # And the other way round, while a still holds its connection.
        small = os.urandom(65536)
        self.assertEqual(c.write(64 * MiB + 5 * MiB, small, fua=True), 0)
        self.assertEqual(a.read(64 * MiB + 5 * MiB, len(small)), small)
        for x in (a, b, c):
            x.disconnect()

    def test_status_shows_the_export_and_the_import_with_bytes_moved(self):
        self.needs_ismd("ismctl status")
        c = connect(self.sock, "data")
        payload = os.urandom(4 * MiB)
        self.assertEqual(c.write(16 * MiB, payload), 0)
        self.assertEqual(c.flush(), 0)
        self.assertEqual(c.read(16 * MiB, len(payload)), payload)
        imp = block_entry(self.importer.peer_status("lpar2"), "imports", "data")
        exp = block_entry(self.exporter.peer_status("lpar1"), "exports", "data")
        self.assertGreaterEqual(bytes_moved(imp), 2 * len(payload), imp)
        self.assertGreaterEqual(bytes_moved(exp), 2 * len(payload), exp)
        self.assertGreaterEqual(imp.get("connections", 0), 1, f"this client is connected: {imp}")
        self.assertEqual(imp.get("errors"), 0, imp)
        c.disconnect()


class BlockAccess(BlockTestCase):
    """What a peer may see and do."""

    def test_read_only_export_refuses_writes(self):
        backing = self.image("ro", 16 * MiB, [(0, MiB)])
        sock = self.serve([{"name": "ro", "path": backing, "read_only": True, "description": "read only"}])["ro"]
        self.assertTrue(nbdinfo_json(uri(sock, "ro"))["exports"][0]["is_read_only"])
        c = connect(sock, "ro")
        self.addCleanup(c.close)
        self.assertTrue(c.flags & TFLAG_READ_ONLY)
        before = sha256_file(backing)
        # The specification's error is EPERM; qemu-nbd 7.2 (the reference mode) says EINVAL.
        self.assertIn(c.write(0, b"x" * 4096), (EPERM,) if TARGET == "ismd" else (EPERM, EINVAL))
        with open(backing, "rb") as f:
            self.assertEqual(c.read(0, MiB), f.read(MiB))
        c.disconnect()
        self.assertEqual(sha256_file(backing), before)

    def test_loopback_tcp_import(self):
        self.needs_ismd("an import on loopback TCP")
        need("qemu-img")
        backing = self.image("data", 16 * MiB, [(0, MiB)])
        port = free_port()
        self.serve([{"name": "data", "path": backing}], tcp={"data": f"127.0.0.1:{port}"})
        tcp_uri = f"nbd://127.0.0.1:{port}/data"
        wait_for(lambda: run(["nbdinfo", "--size", tcp_uri], check=False).returncode == 0, 10,
                 "the import on TCP")
        self.assertEqual(nbdinfo_json(tcp_uri)["exports"][0]["export-size"], 16 * MiB)
        back = os.path.join(self.work, "back.img")
        run(["qemu-img", "convert", "-f", "raw", "-O", "raw", tcp_uri, back], timeout=60)
        self.assertTrue(filecmp.cmp(backing, back, shallow=False))

    def test_export_not_offered_to_a_peer_does_not_exist_for_it(self):
        self.needs_ismd("a per-peer access list")
        data = self.image("data", 16 * MiB)
        secret = self.image("secret", 16 * MiB, [(0, MiB)])
        socks = self.serve([{"name": "data", "path": data, "description": "for lpar1"}],
                           other_peers={"lpar3": [{"name": "secret", "path": secret, "description": "lpar3's"}]})
        lpar3 = self.others["lpar3"]
        wait_for(lambda: os.path.exists(lpar3.nbd_socket("lpar2", "secret")), 10, "lpar3's socket for secret")

        self.assertFalse(os.path.exists(self.importer.nbd_socket("lpar2", "secret")))
        # The list names the socket's own export and every reachable one as peer/export.
        c = NbdClient(socks["data"])
        self.addCleanup(c.close)
        names = [n for n, _ in c.list_exports()]
        self.assertIn("data", names)
        self.assertEqual([n for n in names if n.split("/")[-1] == "secret"], [], names)
        for name in ("secret", "lpar2/secret"):
            with self.assertRaises(NbdOptionError) as refused:
                c.go(name)
            self.assertEqual(refused.exception.reply_type, REP_ERR_UNKNOWN, name)
        # lpar3 sees its own export, not lpar1's.
        c = NbdClient(lpar3.nbd_socket("lpar2", "secret"))
        self.addCleanup(c.close)
        names = [n for n, _ in c.list_exports()]
        self.assertIn("secret", names)
        self.assertEqual([n for n in names if n.split("/")[-1] == "data"], [], names)
        c.go("secret")
        with open(secret, "rb") as f:
            self.assertEqual(c.read(0, MiB), f.read(MiB))
        c.disconnect()

    def test_list_leaves_out_a_peer_that_is_down(self):
        # lpar1 imports from lpar2 and lpar3. While lpar3 is stopped, lpar2's socket neither
        # lists nor gives lpar3's export; lpar3's own socket stays and offers its own export
        # (requests on it would wait for lpar3); once lpar3 is back, it is listed again.
        self.needs_ismd("peers that come and go")
        data = self.image("data", 16 * MiB)
        spare = self.image("spare", 16 * MiB)
        lpar1, lpar2, lpar3 = self.ismd("lpar1"), self.ismd("lpar2"), self.ismd("lpar3")
        lpar1.add_peer("lpar2", block={"import": {"enabled": True}})
        lpar1.add_peer("lpar3", block={"import": {"enabled": True}})
        lpar2.add_peer("lpar1", block={"exports": [{"name": "data", "path": data}], "import": {"enabled": False}})
        lpar3.add_peer("lpar1", block={"exports": [{"name": "spare", "path": spare}], "import": {"enabled": False}})
        for d in (lpar1, lpar2, lpar3):
            d.start()
        lpar1.wait_link("lpar2")
        lpar1.wait_link("lpar3")
        on_lpar2, on_lpar3 = lpar1.nbd_socket("lpar2", "data"), lpar1.nbd_socket("lpar3", "spare")
        for path in (on_lpar2, on_lpar3):
            wait_for(lambda p=path: os.path.exists(p), 10, f"the NBD socket {path}")

        def listed(sock):
            return sorted(e["export-name"] for e in nbdinfo_json("--list", f"nbd+unix:///?socket={sock}")["exports"])

        wait_for(lambda: listed(on_lpar2) == ["data", "lpar3/spare"], 10, "lpar3/spare listed on lpar2's socket")
        self.assertEqual(listed(on_lpar3), ["lpar2/data", "spare"])

        lpar3.stop()
        lpar1.wait_link("lpar3", "down")
        wait_for(lambda: listed(on_lpar2) == ["data"], 10, "lpar3/spare gone from lpar2's socket")
        c = NbdClient(on_lpar2)
        self.addCleanup(c.close)
        with self.assertRaises(NbdOptionError) as refused:
            c.go("lpar3/spare")
        self.assertEqual(refused.exception.reply_type, REP_ERR_UNKNOWN)
        c.close()
        self.assertTrue(os.path.exists(on_lpar3), "lpar3's socket went with its link")
        self.assertEqual(listed(on_lpar3), ["lpar2/data", "spare"])
        self.assertEqual(nbdinfo_json(uri(on_lpar3, "spare"))["exports"][0]["export-size"], 16 * MiB)

        lpar3.start()
        lpar1.wait_link("lpar3")
        wait_for(lambda: listed(on_lpar2) == ["data", "lpar3/spare"], 10, "lpar3/spare listed again")
        c = connect(on_lpar2, "lpar3/spare")
        self.addCleanup(c.close)
        with open(spare, "rb") as f:
            self.assertEqual(c.read(0, MiB), f.read(MiB))
        c.disconnect()


class BlockHostileClient(BlockTestCase):
    """Malformed requests get an error or a clean disconnect; the server survives them
    and the other clients of the export do not notice."""

    def setUp(self):
        super().setUp()
        self.backing = self.image("data", 16 * MiB, [(0, MiB)])
        self.sock = self.serve([{"name": "data", "path": self.backing}])["data"]
        self.witness = connect(self.sock, "data", timeout=10)
        self.addCleanup(self.witness.close)

    def tearDown(self):
        # The connection opened before the abuse still works, and so does a new one.
        with open(self.backing, "rb") as f:
            first = f.read(4096)
        self.assertEqual(self.witness.read(0, 4096), first)
        c = connect(self.sock, "data", timeout=10)
        self.assertEqual(c.read(0, 4096), first)
        c.disconnect()

    def hostile(self):
        c = connect(self.sock, "data", timeout=10)
        self.addCleanup(c.close)
        return c

    def error_or_close(self, c):
        """The server's answer to the last request: an NBD error, or None for a closed
        connection. A success or a hang fails."""
        try:
            _, err, _ = c.reply()
        except ConnectionError:
            return None
        self.assertNotEqual(err, 0, "a malformed request succeeded")
        return err

    def test_bad_request_magic(self):
        c = self.hostile()
        c.sock.sendall(struct.pack(">IHHQQI", 0x12345678, 0, CMD_READ, 1, 0, 4096))
        c.pending[1] = (CMD_READ, 4096)
        self.error_or_close(c)

    def test_oversized_requests(self):
        c = self.hostile()
        c.submit(CMD_READ, 0, 64 * MiB)  # past the 32 MiB maximum payload
        self.error_or_close(c)
        c = self.hostile()
        c.submit(CMD_READ, 15 * MiB, 2 * MiB)  # past the end of the export
        self.assertIn(self.error_or_close(c), (None, EINVAL))
        c = self.hostile()
        # A write header announcing 1 GiB: the server must not wait for (or buffer) it.
        c.sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 0, 1 << 30))
        c.pending[1] = (CMD_WRITE, 0)
        self.error_or_close(c)

    def test_unknown_command(self):
        c = self.hostile()
        c.submit(99, 0, 4096)
        err = self.error_or_close(c)
        self.assertIn(err, (None, EINVAL))

    def test_disconnect_in_the_middle_of_a_write(self):
        c = self.hostile()
        c.sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 0, MiB) + b"x" * (MiB // 2))
        c.close()

    def test_option_haggling(self):
        c = NbdClient(self.sock, timeout=10)
        self.addCleanup(c.close)
        answered = 0
        try:
            for i in range(2000):
                c.option(1000 + i % 50, b"x" * 16)
                rtype, _ = c.option_reply(1000 + i % 50)
                self.assertEqual(rtype, REP_ERR_UNSUP)
                answered += 1
        except ConnectionError:
            pass  # a server may end a client that only haggles
        if answered == 2000:
            # Unknown options leave the handshake going: GO still works.
            c.go("data")
            with open(self.backing, "rb") as f:
                self.assertEqual(c.read(0, 4096), f.read(4096))


BLOCK = 16 * 1024


class WriteLog:
    """Pipelined 16 KiB writes to random blocks with a FLUSH every few writes, recording
    which writes were acknowledged before the last FLUSH that completed. Two writes to
    one block are never in flight together (their order would be undefined)."""

    def __init__(self, client, blocks, qd=8, flush_every=16):
        self.c = client
        self.blocks = blocks
        self.qd = qd
        self.flush_every = flush_every
        self.last = {}        # block -> the data of its last acknowledged write
        self.durable = {}     # block -> data, as of the last completed FLUSH
        self.errors = []      # (command, block, NBD error, seconds it took)
        self.slowest = 0.0
        self.flushes = 0

    def run(self, seconds):
        inflight = {}  # cookie -> (command, block, data, sent at, durable snapshot)
        busy = set()
        since_flush = 0
        end = time.monotonic() + seconds
        rng = random.Random(7)
        while time.monotonic() < end or inflight:
            while len(inflight) < self.qd and time.monotonic() < end:
                now = time.monotonic()
                if since_flush >= self.flush_every:
                    # Covers exactly the writes acknowledged before it is sent.
                    cookie = self.c.submit(CMD_FLUSH)
                    inflight[cookie] = ("flush", None, None, now, dict(self.last))
                    since_flush = 0
                    continue
                block = rng.randrange(self.blocks)
                if block in busy:
                    break
                data = os.urandom(BLOCK)
                cookie = self.c.submit(CMD_WRITE, block * BLOCK, data=data)
                inflight[cookie] = ("write", block, data, now, None)
                busy.add(block)
                since_flush += 1
            if not inflight:
                break
            cookie, err, _ = self.c.reply()
            cmd, block, data, sent, snapshot = inflight.pop(cookie)
            took = time.monotonic() - sent
            self.slowest = max(self.slowest, took)
            if cmd == "write":
                busy.discard(block)
            if err:
                self.errors.append((cmd, block, err, took))
            elif cmd == "write":
                self.last[block] = data
            else:
                self.durable = snapshot
                self.flushes += 1


class BlockPeerLoss(BlockTestCase):
    """kill -9 of either ismd while clients are busy."""

    def start(self, deadline_ms):
        self.needs_ismd("re-driving requests across a lost peer")
        self.backing = self.image("data", 64 * MiB)
        self.deadline = deadline_ms / 1000
        self.sock = self.serve([{"name": "data", "path": self.backing}], deadline_ms=deadline_ms)["data"]
        # A client call that takes longer than the deadline plus this is a hang.
        self.client = connect(self.sock, "data", timeout=self.deadline + 5)
        self.addCleanup(self.client.close)
        self.assertTrue(self.client.flags & TFLAG_SEND_FLUSH and self.client.flags & TFLAG_SEND_FUA)

    def try_connect(self):
        try:
            return connect(self.sock, "data", timeout=5)
        except (ConnectionError, FileNotFoundError, NbdOptionError):
            return None

    def check_reads_back(self, expected):
        # Right after the exporter came back the import may still be re-opening.
        c = wait_for(self.try_connect, 10, "a new connection to the export")
        with open(self.backing, "rb") as f:
            for block, data in expected.items():
                self.assertEqual(c.read(block * BLOCK, BLOCK), data, f"block {block} through NBD")
                f.seek(block * BLOCK)
                self.assertEqual(f.read(BLOCK), data, f"block {block} in the exporter's file")
        c.disconnect()

    def test_exporter_killed_and_restarted_during_flushed_writes(self):
        self.start(deadline_ms=10000)
        log = WriteLog(self.client, blocks=1024)
        failed = []

        def crash_and_restart():
            try:
                time.sleep(0.8)
                self.exporter.kill9()
                time.sleep(1.0)
                self.exporter.start()
            except Exception as e:  # reported by the test's thread below
                failed.append(e)

        t = threading.Thread(target=crash_and_restart)
        t.start()
        try:
            log.run(4.0)
        finally:
            t.join()
        self.assertEqual(failed, [])
        self.assertGreater(log.flushes, 2)
        self.assertGreater(len(log.durable), 100)
        # Every block holds its last acknowledged write (a block whose later write failed
        # may hold either, and is left out). That covers every write acknowledged before
        # the last completed FLUSH, and shows that no re-driven write landed behind a
        # later write to its block.
        uncertain = {block for cmd, block, _, _ in log.errors if cmd == "write"}
        self.check_reads_back({b: d for b, d in log.last.items() if b not in uncertain})
        # The exporter came back well within the deadline: nothing failed, nothing hung.
        self.assertEqual(log.errors, [])
        self.assertLess(log.slowest, self.deadline + 2)
        self.assertEqual(self.client.flush(), 0)

    def test_fio_writes_with_fsync_across_an_exporter_restart(self):
        self.start(deadline_ms=10000)
        need("fio")
        # 32 MiB of 16 KiB random writes at 8 MiB/s (about 4 s), a FLUSH every 16 writes;
        # each block carries a crc32c header that a second, read-only pass verifies.
        pattern = ["--rw=randwrite", "--bs=16k", "--size=32M", "--iodepth=8", "--verify=crc32c",
                   "--randseed=42"]
        writer = subprocess.Popen(["fio", "--name=w", "--ioengine=nbd", f"--uri={uri(self.sock, 'data')}",
                                   "--fsync=16", "--rate=8m", "--do_verify=0", "--output-format=json",
                                   f"--output={self.work}/fio-w.json", *pattern],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=self.work)
        self.addCleanup(lambda: writer.poll() is None and writer.kill())
        time.sleep(0.8)
        self.exporter.kill9()
        time.sleep(1.0)
        self.exporter.start()
        # No request may wait past the deadline: fio ends within its own time plus it.
        _, err = writer.communicate(timeout=4 + self.deadline + 10)
        self.assertEqual(writer.returncode, 0, err)
        fio(self.work, "v", uri(self.sock, "data"), "--verify_only", *pattern)

    def test_exporter_lost_requests_fail_after_the_deadline(self):
        self.start(deadline_ms=3000)
        data = os.urandom(BLOCK)
        self.assertEqual(self.client.write(0, data), 0)
        self.assertEqual(self.client.flush(), 0)
        self.exporter.kill9()
        sent = time.monotonic()
        cookies = [self.client.submit(CMD_WRITE, (1 + i) * BLOCK, data=data) for i in range(4)]
        cookies.append(self.client.submit(CMD_READ, 0, BLOCK))
        cookies.append(self.client.submit(CMD_FLUSH))
        for _ in cookies:
            try:
                cookie, err, _ = self.client.reply()
            except ConnectionError:
                break  # a closed connection is an answer too (a timeout is not)
            self.assertIn(err, (EIO, ESHUTDOWN), f"request {cookie} got {err}")
        self.assertLess(time.monotonic() - sent, self.deadline + 3, "requests hung past the deadline")
        # The exporter back: new connections work and the acknowledged write is there.
        self.exporter.start()
        self.importer.wait_link("lpar2")
        wait_for(lambda: os.path.exists(self.sock), 10, "the NBD socket")
        self.check_reads_back({0: data})

    def test_importer_killed_clients_see_it_at_once(self):
        self.start(deadline_ms=10000)
        c = self.client
        self.assertEqual(c.write(0, os.urandom(BLOCK)), 0)
        c.sock.settimeout(3)
        for i in range(8):
            c.submit(CMD_READ, 0, BLOCK)
        self.importer.kill9()
        killed = time.monotonic()
        with self.assertRaises(ConnectionError):
            for _ in range(8):
                c.reply()
            # Everything answered before the kill: the next request finds no server.
            c.submit(CMD_READ, 0, BLOCK)
            c.reply()
        self.assertLess(time.monotonic() - killed, 2.0)
        with self.assertRaises(OSError):
            NbdClient(self.sock, timeout=2)


if __name__ == "__main__":
    if TARGET == "ismd" and not CI:
        why = block_service_absent()
        if why:
            print(f"SKIP: ismd has no block service: {why}")
            sys.exit(77)
    unittest.main()
