# SPDX-License-Identifier: MIT
"""The console in a real terminal (tmux): reach the program, resize, detach with the
terminal restored, scrollback on re-attach, a read-only watcher, the writer's seat,
and the far ismd killed and restarted while attached."""
import os
import re
import time
import unittest

from ismd_env import ISM_CONSOLE, IsmdTestCase, Tmux, wait_for


class Console(IsmdTestCase):
    def setUp(self):
        super().setUp()
        self.a, self.b = self.pair()
        self.tmux = Tmux(self.work)
        self.addCleanup(self.tmux.kill)

    def attach_cmd(self, *flags):
        return f"{ISM_CONSOLE} --socket {self.a.socket} attach lpar2 {' '.join(flags)}"

    def saved_stty(self):
        """The local terminal's settings, as `stty -g` prints them, in the tmux shell."""
        marker = f"STTY{time.monotonic_ns()}"
        self.tmux.type(f"echo {marker}=$(stty -g)")
        found = wait_for(lambda: re.findall(marker + r"=([0-9a-f]+:\S+)", self.tmux.screen()), 10,
                         "stty -g output")
        return found[-1]

    def attach(self, *flags):
        self.tmux.type(self.attach_cmd(*flags))
        self.tmux.wait_screen("[ism-console] attached to lpar2")

    def run_remote(self, command, expect):
        self.tmux.type(command)
        return self.tmux.wait_screen(expect)

    def detach(self):
        self.tmux.send("C-]")
        self.tmux.wait_screen("[ism-console] detached from lpar2")

    def test_session_resize_detach_scrollback(self):
        before = self.saved_stty()
        self.attach()
        self.run_remote("echo answer-$((6*7))", "answer-42")
        self.assertEqual(self.a.peer_status("lpar2")["console"]["attached"][0]["mode"], "rw")
        wait_for(lambda: "console: 1 attached" in self.a.statuses()[-1], what="STATUS with the client")

        # The far side's terminal follows the window.
        self.run_remote("stty size | sed 's/^/size-/'", "size-30 100")
        self.tmux.resize(120, 40)
        time.sleep(0.3)
        self.run_remote("stty size | sed 's/^/size-/'", "size-40 120")

        self.detach()
        self.assertEqual(self.saved_stty(), before)

        # Re-attach: the scrollback shows what happened before.
        self.tmux.type("clear")
        time.sleep(0.2)
        self.attach()
        self.tmux.wait_screen("answer-42")
        self.run_remote("echo again-$((2+3))", "again-5")
        self.detach()
        self.assertEqual(self.saved_stty(), before)

    def test_read_only_watcher_and_the_writers_seat(self):
        self.attach()
        watcher = Tmux(self.work, "watcher")
        self.addCleanup(watcher.kill)
        watcher.type(self.attach_cmd("--read-only"))
        watcher.wait_screen("attached to lpar2 (read-only)")
        self.run_remote("echo seen-by-both-$((3*3))", "seen-by-both-9")
        watcher.wait_screen("seen-by-both-9")

        # The watcher's keys go nowhere.
        watcher.type("echo from-watcher")
        watcher.wait_screen("read-only: your keys are not sent")
        time.sleep(0.3)
        self.assertNotIn("from-watcher\r", self.tmux.screen())

        # A second writer is refused unless it forces; forcing tells the old writer.
        third = Tmux(self.work, "third")
        self.addCleanup(third.kill)
        third.type(self.attach_cmd())
        third.wait_screen("the writer's seat on lpar2 is taken by uid 0")
        third.type(self.attach_cmd("--force"))
        third.wait_screen("attached to lpar2")
        self.tmux.wait_screen("took the writer's seat: you are read-only now")
        third.type("echo forced-$((5*5))")
        third.wait_screen("forced-25")
        watcher.wait_screen("forced-25")

    def test_far_ismd_killed_and_restarted_while_attached(self):
        before = self.saved_stty()
        self.attach()
        self.run_remote("echo first-$((1+1))", "first-2")
        self.b.kill9()
        self.tmux.wait_screen("the link to lpar2 is down", timeout=10)
        self.b.start()
        self.tmux.wait_screen("the link to lpar2 is up again", timeout=15)
        self.tmux.wait_screen("is a new one (its ismd restarted)")
        self.run_remote("echo second-$((2*2))", "second-4")
        self.detach()
        self.assertEqual(self.saved_stty(), before)

    def test_ismd_stopped_under_the_client(self):
        before = self.saved_stty()
        self.attach()
        self.run_remote("echo up-$((4+4))", "up-8")
        self.a.stop()
        self.tmux.wait_screen("ismd closed the connection")
        self.assertEqual(self.saved_stty(), before)

    def test_no_wait_exits_when_the_peer_is_lost(self):
        self.attach("--no-wait")
        self.run_remote("echo x-$((9-2))", "x-7")
        self.b.kill9()
        self.tmux.wait_screen("not reachable (--no-wait)", timeout=10)
        self.tmux.type("echo status=$?")
        self.tmux.wait_screen("status=2")


if __name__ == "__main__":
    unittest.main()


class ConsoleServing(IsmdTestCase):
    """What the serving side is configured to do: the default login prompt, the
    transcript, a break, and the client's signals."""

    def start_pair(self, serve):
        a = self.ismd("lpar1")
        b = self.ismd("lpar2")
        a.add_peer("lpar2", console={"attach": True})
        b.add_peer("lpar1", console={"serve": serve})
        a.start()
        b.start()
        a.wait_link("lpar2")
        self.a = a
        self.tmux = Tmux(self.work)
        self.addCleanup(self.tmux.kill)

    def attach(self):
        self.tmux.type(f"{ISM_CONSOLE} --socket {self.a.socket} attach lpar2")
        self.tmux.wait_screen("[ism-console] attached to lpar2")

    def test_default_program_is_a_login_prompt(self):
        if os.geteuid() != 0:
            self.skipTest("agetty needs root")
        self.start_pair(True)
        self.attach()
        self.tmux.wait_screen("login:")

    def test_transcript_and_break(self):
        transcript = os.path.join(self.work, "console.log")
        self.start_pair({"program": ["/bin/bash", "--norc", "--noprofile", "-i"], "unauthenticated": True,
                         "launcher": "direct", "transcript": transcript})
        self.attach()
        self.tmux.type("echo logged-$((8*8))")
        self.tmux.wait_screen("logged-64")
        wait_for(lambda: "logged-64" in open(transcript).read(), what="the transcript")
        # A break interrupts the foreground job when the terminal asks for it (BRKINT).
        self.tmux.type("stty brkint; sleep 60")
        time.sleep(0.5)
        r = __import__("subprocess").run([ISM_CONSOLE, "--socket", self.a.socket, "break", "lpar2"],
                                         capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        # bash drops the rest of a line whose job was interrupted: ask for $? anew.
        time.sleep(0.5)
        self.tmux.type("echo after-sleep-$?")
        self.tmux.wait_screen("after-sleep-130")

    def test_signals_detach_and_restore_the_terminal(self):
        self.start_pair({"program": ["/bin/bash", "--norc", "--noprofile", "-i"], "unauthenticated": True,
                         "launcher": "direct"})
        marker = "STTYSIG"
        self.tmux.type(f"echo {marker}A=$(stty -g)")
        before = wait_for(lambda: re.findall(marker + r"A=([0-9a-f]+:\S+)", self.tmux.screen()), 10)[-1]
        for sig, name in (("TERM", "Terminated"), ("HUP", "Hangup")):
            # The last round's lines must not answer this round's waits: a signal sent
            # before the client is attached tests nothing (and kills it silently).
            self.tmux.type("clear")
            wait_for(lambda: "attached to lpar2" not in self.tmux.screen(), 10, "a cleared screen")
            self.attach()
            self.tmux.type(f"echo in-{sig}-$((1+1))")
            self.tmux.wait_screen(f"in-{sig}-2")
            __import__("subprocess").run(["pkill", f"-{sig}", "-f", f"ism-console --socket {self.a.socket}"])
            self.tmux.wait_screen(f"detached on {name}")
            self.tmux.type(f"echo {marker}{sig}=$(stty -g)")
            after = wait_for(lambda: re.findall(marker + sig + r"=([0-9a-f]+:\S+)", self.tmux.screen()), 10)[-1]
            self.assertEqual(after, before, sig)
