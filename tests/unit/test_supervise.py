"""The tree tracker when the process it follows is gone before it looks."""

from __future__ import annotations

import subprocess
import time

from statetrace_guard.supervise import TreeTracker


def test_an_init_gone_before_the_first_sample_leaves_nothing_to_track():
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    tracker = TreeTracker(gone.pid, time.time(), None, init=True)
    assert tracker.tree() == []
    assert tracker.sample() == 0


def test_a_living_init_is_followed_to_its_children():
    init = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        tracker = TreeTracker(init.pid, time.time(), None, init=True)
        while not tracker.tree() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [proc.name() for proc in tracker.tree()] == ["sleep"]
    finally:
        subprocess.run(["pkill", "-P", str(init.pid)], check=False)
        init.kill()
        init.wait()
