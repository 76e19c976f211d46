"""Load: 32 agents x 50 commands through the resident helper, at once.

Each agent is a thread that runs ``guard run -- true`` 50 times in a row,
as an agent runtime does (a fresh process each time, stdio on /dev/null).
Two layouts: every agent in one shared session, and each agent in its own.
Reports throughput (commands per second over the whole run), the per-command
latency p50 and p99, and what the logs hold afterwards: every command must
have exactly one start and one finish (lost = 0), every line must verify
(torn = 0), and every client must exit 0.

Usage: python benchmarks/bench_load.py [--agents 32] [--commands 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GUARD = [sys.executable, "-m", "statetrace_guard"]


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    ).returncode


def _session(env: dict[str, str], cwd: Path, policy: Path) -> str:
    start = [*GUARD, "session", "start", "--policy", str(policy)]
    done = subprocess.run(
        [*start, "--task", "ST-A-001", "--plan", "plan.md"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()[0]


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


def layout(shared: bool, agents: int, commands: int) -> dict[str, object]:
    """Run one layout in a fresh workspace and guard home; return its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        subprocess.run(["git", "init", "-q", str(ws)], check=True)
        (ws / "plan.md").write_text("plan\n")
        policy = _budget_policy(root)
        env = {
            **os.environ,
            "STATETRACE_GUARD_HOME": str(root / "home"),
            "STATETRACE_GUARD_DAEMON": "on",
            "STATETRACE_GUARD_DAEMON_IDLE": "60",
        }
        for _ in range(2):  # the second run starts the helper
            _run([*GUARD, "run", "--", "true"], env, ws)
        time.sleep(2)
        sessions = (
            [_session(env, ws, policy)] * agents
            if shared
            else [_session(env, ws, policy) for _ in range(agents)]
        )
        latencies: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()

        def agent(session: str) -> None:
            for _ in range(commands):
                began = time.perf_counter()
                status = _run(
                    [
                        *GUARD,
                        "run",
                        "--policy",
                        str(policy),
                        "--session",
                        session,
                        "--",
                        "true",
                    ],
                    env,
                    ws,
                )
                took = time.perf_counter() - began
                with lock:
                    latencies.append(took)
                    if status:
                        failures.append(status)

        threads = [threading.Thread(target=agent, args=(s,)) for s in sessions]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        lost, torn = _audit(ws / "Logs", set(sessions), agents * commands, env, ws)
        _stop_helper(env)
        latencies.sort()
        return {
            "layout": "shared session" if shared else "separate sessions",
            "commands": agents * commands,
            "per_second": agents * commands / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
            "failed": len(failures),
            "lost": lost,
            "torn": torn,
        }


def _audit(
    logs: Path, sessions: set[str], expected: int, env: dict[str, str], ws: Path
) -> tuple[int, int]:
    """Commands without a start and finish (lost), and lines that do not verify."""
    starts = finishes = 0
    for session in sessions:
        path = logs / "Sessions" / f"{session}.jsonl"
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            starts += record["event"] == "command.started"
            finishes += record["event"] == "command.finished"
    verify = subprocess.run(
        [*GUARD, "verify", str(logs)], cwd=ws, env=env, capture_output=True, check=False
    )
    lost = (expected - starts) + (starts - finishes)
    return lost, 0 if verify.returncode == 0 else 1


def _stop_helper(env: dict[str, str]) -> None:
    os.environ["STATETRACE_GUARD_HOME"] = env["STATETRACE_GUARD_HOME"]
    try:
        sys.path.insert(
            0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e")
        )
        from resident_helper import ping  # noqa: PLC0415

        from statetrace_guard.daemon import protocol  # noqa: PLC0415

        pid = ping(protocol.socket_path())
        if pid:
            os.kill(pid, signal.SIGTERM)
    finally:
        del os.environ["STATETRACE_GUARD_HOME"]


def main() -> None:
    """Both layouts, one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = [layout(shared, args.agents, args.commands) for shared in (True, False)]
    for row in rows:
        if args.json:
            print(json.dumps(row))
            continue
        print(
            f"{row['layout']:18} {row['commands']:5} commands  "
            f"{row['per_second']:6.1f}/s  p50 {row['p50_ms']:6.0f} ms  "
            f"p99 {row['p99_ms']:6.0f} ms  failed {row['failed']}  "
            f"lost {row['lost']}  torn {row['torn']}"
        )


if __name__ == "__main__":
    main()
