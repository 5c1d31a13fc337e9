# SPDX-License-Identifier: MIT
"""What ships: the unit as systemd reads it (verify, and the sandbox's exposure score),
the man pages (mandoc lint), the example configuration, and `cmake --install`."""
import os
import re
import subprocess
import tempfile
import unittest

from ismd_env import BUILD, ISMD, need

SOURCE = os.environ.get("ISMD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
UNIT = os.path.join(SOURCE, "units", "ismd.service")


def read(path):
    with open(path) as f:
        return f.read()


class Packaging(unittest.TestCase):
    def test_unit_verifies(self):
        need("systemd-analyze")
        with tempfile.TemporaryDirectory() as d:
            # verify checks that the commands exist: point them at this build.
            text = read(UNIT).replace("/usr/sbin/ismd", os.path.abspath(ISMD))
            path = os.path.join(d, "ismd.service")
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_unit_exposure_is_at_most_2(self):
        need("systemd-analyze")
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for ismd.service: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)
        # The sandbox still lets ismd reach its device.
        unit = read(UNIT)
        for line in ("DeviceAllow=char-vfio rw", "DeviceAllow=/dev/vfio/vfio rw", "DeviceAllow=/dev/iommu rw",
                     "Type=notify", "WatchdogSec="):
            self.assertIn(line, unit)

    def test_man_pages_lint_clean(self):
        need("mandoc")
        for page in ("ismd.8", "ismctl.8", "ism-console.1", "ismd.json.5"):
            r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", os.path.join(SOURCE, "man", page)],
                               capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), page)

    def test_example_configuration_is_valid(self):
        r = subprocess.run([ISMD, "--check-config", "--config", os.path.join(SOURCE, "configs", "ismd.json")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("good, 1 peer(s)", r.stdout)

    def test_install_layout(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], capture_output=True, text=True,
                               env={**os.environ, "DESTDIR": d})
            self.assertEqual(r.returncode, 0, r.stderr)
            for path in ("usr/sbin/ismd", "usr/sbin/ismctl", "usr/bin/ism-console",
                         "usr/lib/systemd/system/ismd.service", "usr/share/man/man8/ismd.8",
                         "usr/share/man/man8/ismctl.8", "usr/share/man/man1/ism-console.1",
                         "usr/share/man/man5/ismd.json.5", "usr/share/doc/ismd/examples/ismd.json",
                         "usr/share/doc/ismd/examples/peers.d/lpar2.json",
                         "usr/share/doc/ismd/examples/90-ism-vfio.rules",
                         "usr/share/doc/ismd/examples/ismd.service.d/exports.conf"):
                self.assertTrue(os.path.exists(os.path.join(d, path)), path)


if __name__ == "__main__":
    unittest.main()
