# SPDX-License-Identifier: MIT
"""ismd as systemd runs it: READY=1, STATUS=, RELOADING=1, WATCHDOG=1, STOPPING=1; the
configuration on the command line and on reload; the control socket's credentials."""
import json
import os
import subprocess
import time
import unittest

from ismd_env import ISMD, ISMCTL, IsmdTestCase, wait_for


class Notify(IsmdTestCase):
    def test_ready_status_reload_stop(self):
        a, b = self.pair()
        # READY=1 came before the peer was up (the link comes up afterwards); the STATUS
        # lines follow every change.
        wait_for(lambda: "1 peer, 1 up; console: 0 attached" in a.statuses(), what="STATUS up")
        self.assertIn("1 peer, 0 up; console: 0 attached", a.statuses()[0])
        b.wait_message("STATUS=1 peer, 1 up; console: 0 attached")

        n = len(a.messages)
        a.proc.send_signal(1)  # SIGHUP
        a.wait_message("RELOADING=1", after=n)
        a.wait_message("READY=1", after=n)
        self.assertIn("reloaded: 1 peer(s) kept", a.log_text())

        n = len(a.messages)
        self.assertEqual(a.stop(), 0)
        a.wait_message("STOPPING=1", after=n)
        # The peer sees the loss quickly (a RESET or failing stores, then keepalive).
        b.wait_link("lpar1", "down", timeout=5)
        self.assertIn("<4>lpar1: link down", b.log_text())

    def test_watchdog_pings_at_half_the_interval(self):
        a = self.ismd("lpar1")
        a.start(env={"WATCHDOG_USEC": "400000"})
        time.sleep(1.0)
        a.drain()
        pings = [m for m in a.messages if m == "WATCHDOG=1"]
        self.assertGreaterEqual(len(pings), 3, a.messages)

    def test_log_lines_carry_priorities(self):
        a, b = self.pair()
        for line in a.log_text().splitlines():
            self.assertRegex(line, r"^<[3-7]>\S")


class Config(IsmdTestCase):
    def test_check_config(self):
        a = self.ismd("lpar1")
        a.add_peer("lpar2")
        r = subprocess.run([ISMD, "--check-config", "--config", a.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("good, 1 peer(s)", r.stdout)
        with open(os.path.join(a.peers_dir, "lpar3.json"), "w") as f:
            f.write('{"name": "lpar3", "gid": 12}')
        r = subprocess.run([ISMD, "-t", "-c", a.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, "peers.d/lpar3.json: /gid: expected a non-empty string, found 12\n")

    def test_refuses_to_start_on_a_bad_configuration(self):
        a = self.ismd("lpar1")
        with open(os.path.join(a.peers_dir, "x.json"), "w") as f:
            f.write('{"name": "lpar2", "emulated_function": "lpar2", "consol": {}}')
        a.start(wait_ready=False)
        self.assertEqual(a.proc.wait(10), 1)
        self.assertIn("<3>peers.d/x.json: /consol: unknown key", a.log_text())
        self.assertEqual([m for m in a.messages if m.startswith("READY")], [])

    def test_reload_keeps_unchanged_peers_and_refuses_a_bad_file(self):
        a = self.ismd("lpar1")
        a.add_peer("lpar2")
        b = self.ismd("lpar2")
        b.add_peer("lpar1")
        c = self.ismd("lpar3")
        c.add_peer("lpar1")
        for d in (a, b, c):
            d.start()
        a.wait_link("lpar2")
        before = a.peer_status("lpar2")

        with open(os.path.join(a.peers_dir, "bad.json"), "w") as f:
            f.write('{"name": "lpar3", "gid": "0xzz"}')
        r = a.ctl("reload", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('bad.json: /gid: expected a 64-bit hex string, found "0xzz"', r.stderr)
        os.unlink(os.path.join(a.peers_dir, "bad.json"))

        a.add_peer("lpar3")
        self.assertIn("reloaded: 2 peer(s)", a.ctl("reload").stdout)
        a.wait_link("lpar3")
        after = a.peer_status("lpar2")
        self.assertEqual((after["epoch"], after["handshakes"], after["link"]),
                         (before["epoch"], before["handshakes"], "up"))

        os.unlink(os.path.join(a.peers_dir, "lpar3.json"))
        a.ctl("reload")
        self.assertEqual([p["name"] for p in a.status()["peers"]], ["lpar2"])
        c.wait_link("lpar1", "down", timeout=5)
        self.assertEqual(a.peer_status("lpar2")["epoch"], before["epoch"])


class Control(IsmdTestCase):
    def test_only_root_and_the_group_may_use_the_socket(self):
        a = self.ismd("lpar1")
        a.global_config["control"]["group"] = "nogroup"
        a.write_global()
        a.start()
        # The file is 0660 root:nogroup; open it up so the daemon's own check is tested.
        st = os.stat(a.socket)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        os.chmod(a.socket, 0o666)
        os.chmod(a.dir, 0o755)
        os.chmod(a.work, 0o755)

        def as_user(uid, gid):
            def drop():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            return subprocess.run([ISMCTL, "--socket", a.socket, "peers"], capture_output=True, text=True,
                                  preexec_fn=drop, timeout=20)

        nobody = 65534
        import grp
        nogroup = grp.getgrnam("nogroup").gr_gid
        refused = as_user(nobody, 65533 if nogroup != 65533 else 65532)
        self.assertEqual(refused.returncode, 1)
        self.assertEqual(refused.stderr,
                         "ismctl: permission denied: uid 65534 is neither root nor in group nogroup\n")
        allowed = as_user(nobody, nogroup)
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        self.assertIn("PEER", allowed.stdout)

    def test_bad_requests_get_errors_and_other_clients_go_on(self):
        import socket as s
        a = self.ismd("lpar1")
        a.start()
        c = s.socket(s.AF_UNIX, s.SOCK_STREAM)
        self.addCleanup(c.close)
        c.connect(a.socket)
        f = c.makefile("rw")
        for line, error in [("not json", "request is not a JSON object"),
                            ('{"v": 2, "op": "status"}', "unsupported protocol version: this ismd speaks version 1"),
                            ('{"v": 1}', 'request has no "op"'),
                            ('{"v": 1, "op": "nope", "id": 7}', 'unknown operation "nope"')]:
            f.write(line + "\n")
            f.flush()
            reply = json.loads(f.readline())
            self.assertEqual((reply["ok"], reply["error"]), (False, error))
        self.assertEqual(reply["id"], 7)
        f.write('{"v": 1, "op": "status"}\n')
        f.flush()
        self.assertTrue(json.loads(f.readline())["ok"])
        self.assertEqual(a.ctl("peers").returncode, 0)


class Check(IsmdTestCase):
    def test_round_trips_and_throughput(self):
        a, b = self.pair()
        out = json.loads(a.ctl("check", "lpar2", "--count", "200", "--json").stdout)
        self.assertEqual(out["round_trips"], 200)
        r = out["rtt_us"]
        self.assertTrue(0 < r["min"] <= r["p50"] <= r["p90"] <= r["p99"] <= r["max"], r)
        self.assertGreater(out["throughput_MBps"], 0)
        text = a.ctl("check", "lpar2", "-n", "10").stdout
        self.assertRegex(text, r"lpar2: 10 round trips of 64 B: min [0-9.]+ us, p50")
        r = a.ctl("check", "nobody", check=False)
        self.assertEqual(r.stderr, 'ismctl: no peer named "nobody"\n')


if __name__ == "__main__":
    unittest.main()
