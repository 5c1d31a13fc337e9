# SPDX-License-Identifier: MIT
"""Real NBD clients against the local NBD endpoint alone.

nbd-local-server (built next to this test, path in $NBD_LOCAL_SERVER) serves a file
through NbdEndpoint with an export that runs each request on the file itself. nbdinfo,
qemu-img, nbdcopy and fio then attach as they would to ismd's import sockets. A missing
tool skips its test on a developer's machine and fails under CI=true.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from ismd_env import need  # noqa: E402

SERVER = os.environ.get("NBD_LOCAL_SERVER",
                        os.path.join(os.path.dirname(__file__), "../../build/dev/tests/nbd/nbd-local-server"))
MiB = 1 << 20


def run(*args, timeout=120, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited with {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


def random_file(path, size, data_bytes):
    """`size` bytes: random data for the first `data_bytes`, then a hole."""
    with open(path, "wb") as f:
        left = data_bytes
        while left > 0:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
        f.truncate(size)


class Server:
    def __init__(self, work, image, name="data", read_only=False, tcp=None):
        self.socket = os.path.join(work, "nbd", "peer", name + ".sock")
        args = [SERVER, "--file", image, "--socket", self.socket, "--name", name]
        if read_only:
            args.append("--read-only")
        if tcp:
            args += ["--tcp", tcp]
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.proc.kill()
            raise AssertionError(f"nbd-local-server did not start: {line}")
        self.port = int(line[2]) if len(line) == 3 else None
        self.uri = f"nbd+unix:///{name}?socket={self.socket}"

    def stop(self):
        """Stops the server; its endpoint's final status (it prints it on SIGTERM)."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.log.close()
        with open(self.log.name) as f:
            log = f.read()
        if self.proc.returncode != 0:
            raise AssertionError(f"nbd-local-server exited with {self.proc.returncode}:\n{log}")
        lines = [l for l in log.splitlines() if l.startswith("nbd-local-server: {")]
        if not lines:
            raise AssertionError(f"nbd-local-server printed no status: see {self.log.name}")
        return json.loads(lines[-1].split(": ", 1)[1])


class NbdClients(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(SERVER):
            self.fail(f"{SERVER} is missing: build the nbd-local-server target")
        self.work = tempfile.mkdtemp(prefix="nbd-clients-")
        self.servers = []

    def tearDown(self):
        statuses = [s.stop() for s in self.servers]
        shutil.rmtree(self.work, ignore_errors=True)
        for status in statuses:
            # Real clients never send anything the endpoint had to cut them off for, and
            # every request was answered.
            self.assertEqual(status["protocol_errors"], 0, status)
            self.assertEqual(status["in_flight"], 0, status)

    def serve(self, size, **kw):
        image = os.path.join(self.work, kw.get("name", "data") + ".img")
        with open(image, "wb") as f:
            f.truncate(size)
        s = Server(self.work, image, **kw)
        self.servers.append(s)
        return s, image

    def test_nbdinfo_reports_size_flags_list_and_map(self):
        need("nbdinfo")
        s, image = self.serve(64 * MiB)
        info = json.loads(run("nbdinfo", "--json", s.uri).stdout)
        export = info["exports"][0]
        self.assertEqual(export["export-size"], 64 * MiB)
        self.assertFalse(export["is_read_only"])
        for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
            self.assertTrue(export[flag], flag)
        self.assertIn("base:allocation", export["contexts"])
        self.assertEqual(export["block_size_maximum"], 32 * MiB)
        listed = run("nbdinfo", "--list", "--json", f"nbd+unix:///?socket={s.socket}").stdout
        names = [e["export-name"] for e in json.loads(listed)["exports"]]
        self.assertEqual(names, ["data"])
        # Data at 1 MiB..2 MiB, a hole elsewhere: --map shows exactly that.
        with open(image, "r+b") as f:
            f.seek(MiB)
            f.write(os.urandom(MiB))
        extents = json.loads(run("nbdinfo", "--map", "--json", s.uri).stdout)
        data = [(e["offset"], e["length"]) for e in extents if e["type"] & 1 == 0]
        self.assertEqual(data, [(MiB, MiB)])
        self.assertEqual(sum(e["length"] for e in extents), 64 * MiB)

    def test_qemu_img_converts_and_compares_both_directions(self):
        need("qemu-img")
        size = 256 * MiB
        s, image = self.serve(size)
        source = os.path.join(self.work, "source.raw")
        random_file(source, size, 192 * MiB)
        run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, s.uri, timeout=300)
        run("qemu-img", "compare", "-f", "raw", "-F", "raw", source, s.uri, timeout=300)
        back = os.path.join(self.work, "back.qcow2")
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", s.uri, back, timeout=300)
        run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", back, source, timeout=300)
        # A difference is found, not papered over.
        with open(source, "r+b") as f:
            f.seek(100 * MiB)
            f.write(b"\xff" * 512)
        r = run("qemu-img", "compare", "-f", "raw", "-F", "raw", source, s.uri, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_nbdcopy_copies_both_directions(self):
        need("nbdcopy")
        size = 128 * MiB
        s, image = self.serve(size)
        source = os.path.join(self.work, "source.raw")
        random_file(source, size, 96 * MiB)
        run("nbdcopy", source, s.uri, timeout=300)
        back = os.path.join(self.work, "back.raw")
        run("nbdcopy", s.uri, back, timeout=300)
        run("cmp", source, back)
        run("cmp", source, image)

    def test_fio_random_read_write_verifies_with_crc32c(self):
        need("fio")
        s, image = self.serve(64 * MiB)
        r = run("fio", "--name=verify", "--ioengine=nbd", f"--uri={s.uri}", "--rw=randrw",
                "--bs=4k,64k", "--iodepth=32", "--size=64M", "--io_size=96M",
                "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--verify_state_save=0",
                "--output-format=json", timeout=300)
        job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
        self.assertEqual(job["error"], 0)
        self.assertGreater(job["write"]["io_bytes"], 0)
        self.assertGreater(job["read"]["io_bytes"], 0)

    def test_a_read_only_export_refuses_writes(self):
        need("nbdinfo")
        need("qemu-img")
        s, image = self.serve(16 * MiB, name="logs", read_only=True)
        export = json.loads(run("nbdinfo", "--json", s.uri).stdout)["exports"][0]
        self.assertTrue(export["is_read_only"])
        source = os.path.join(self.work, "source.raw")
        random_file(source, 16 * MiB, 16 * MiB)
        r = run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, s.uri, check=False)
        self.assertNotEqual(r.returncode, 0)
        with open(image, "rb") as f:
            self.assertEqual(f.read(MiB), bytes(MiB))

    def test_loopback_tcp_serves_the_same_export(self):
        need("nbdinfo")
        s, image = self.serve(8 * MiB, tcp="127.0.0.1:0")
        self.assertIsNotNone(s.port)
        export = json.loads(run("nbdinfo", "--json", f"nbd://127.0.0.1:{s.port}/data").stdout)
        self.assertEqual(export["exports"][0]["export-size"], 8 * MiB)


if __name__ == "__main__":
    unittest.main()
