"""Soak: 5,000 commands through one resident helper; its memory and descriptors.

Runs ``guard run -- true`` (4 at a time, in one session) and samples the
helper's and its launcher's resident memory (VmRSS) and open descriptors at
the start, the middle and the end, from ``/proc``. A leak shows as growth
between the middle and the end.

Usage: python benchmarks/bench_soak.py [--commands 5000] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GUARD = [sys.executable, "-m", "statetrace_guard"]


def _figures(pid: int) -> tuple[float, int]:
    """(RSS in MB, open descriptors) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _helper(env: dict[str, str]) -> tuple[int, int]:
    os.environ["STATETRACE_GUARD_HOME"] = env["STATETRACE_GUARD_HOME"]
    try:
        sys.path.insert(
            0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e")
        )
        from resident_helper import wait_for_helper  # noqa: PLC0415

        helper = wait_for_helper()
    finally:
        del os.environ["STATETRACE_GUARD_HOME"]
    children = Path(f"/proc/{helper}/task/{helper}/children").read_text().split()
    launcher = next(
        int(pid)
        for pid in children
        if b"daemon.launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    return helper, launcher


def _budget_policy(root: Path) -> Path:
    """The built-in policy with a session budget the run cannot reach.

    The default ``max_commands`` (500) would block the rest of a shared
    session's commands: the figures are about the helper, not the budget.
    """
    path = root / "policy.toml"
    path.write_text(
        'name = "bench"\nextends = "builtin:statetrace"\n'
        "[settings]\nmax_commands = 1000000\n"
    )
    return path


def main() -> None:
    """Run the soak and print the samples."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        subprocess.run(["git", "init", "-q", str(ws)], check=True)
        policy = _budget_policy(root)
        env = {
            **os.environ,
            "STATETRACE_GUARD_HOME": str(root / "home"),
            "STATETRACE_GUARD_DAEMON": "on",
            "STATETRACE_GUARD_DAEMON_IDLE": "120",
            "STATETRACE_GUARD_SESSION": "2026-01-31_session-0001",
        }
        (ws / "Logs" / "Sessions").mkdir(parents=True)
        (ws / "Logs" / "Sessions" / "2026-01-31_session-0001.jsonl.lock").touch()

        def one(_: int) -> int:
            return subprocess.run(
                [*GUARD, "run", "--policy", str(policy), "--", "true"],
                cwd=ws,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            ).returncode

        one(0)
        one(0)
        helper, launcher = _helper(env)
        print(
            f"load average {os.getloadavg()[0]:.2f}; helper {helper}, launcher {launcher}"
        )
        marks = {0: "start", args.commands // 2: "middle", args.commands: "end"}
        failed = 0
        began = time.perf_counter()
        with ThreadPoolExecutor(args.parallel) as pool:
            done = 0
            for index in sorted(marks):
                failed += sum(
                    1 for status in pool.map(one, range(done, index)) if status
                )
                done = index
                h_rss, h_fds = _figures(helper)
                l_rss, l_fds = _figures(launcher)
                print(
                    f"{marks[index]:6} after {index:5} commands: helper {h_rss:5.1f} MB "
                    f"{h_fds:3} fds; launcher {l_rss:5.1f} MB {l_fds:3} fds"
                )
        elapsed = time.perf_counter() - began
        print(f"{args.commands} commands in {elapsed:.0f} s, {failed} failed")
        os.kill(helper, signal.SIGTERM)


if __name__ == "__main__":
    main()
