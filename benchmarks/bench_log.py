"""Peak memory and wall time of ``guard log`` on a large session log.

The log is the one ``bench_replay.py`` writes (a real chained session file
judged by the built-in policy), about 200 MB by default, placed under
``<dir>/Logs/Sessions/``. Each subject runs as a fresh
``python -m statetrace_guard`` process under GNU time, which reports its peak
resident set size; stdout goes to /dev/null, as in a pipe that discards it.

Usage::

    python benchmarks/bench_log.py [--commands 113000] [--dir DIR] [--runs 1]

Run it once with /work/base's interpreter and once with the worktree's, back
to back, on the same ``--dir`` (the log is made once and reused).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_replay import SESSION, write_log

GNU_TIME = "/usr/bin/time"
SUBJECTS: dict[str, list[str]] = {
    "log": ["log"],
    "log --json": ["log", "--json"],
    "log --decision block": ["log", "--decision", "block"],
    "log summary": ["log", "summary"],
    "log tail": ["log", "tail", "-n", "20"],
    "verify": ["verify"],
}


def measure(args: list[str], log_dir: Path) -> tuple[float, int, int]:
    """Run ``guard ARGS --log-dir`` once; return seconds, peak RSS KiB, status."""
    argv = [sys.executable, "-m", "statetrace_guard", *args]
    env = {**os.environ, "STATETRACE_GUARD_LOG_DIR": str(log_dir)}
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.perf_counter()
        done = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", out.name, *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - start
        peak = int(out.read().strip().splitlines()[-1])
    return seconds, peak, done.returncode


def main() -> None:
    """Make the log if needed, run each subject, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=113_000)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-log"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", action="append", help="subject name (repeatable)")
    args = parser.parse_args()
    log_dir = args.dir / "Logs"
    log = log_dir / "Sessions" / f"{SESSION}.jsonl"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        gc.disable()  # a long collector pause would trip the classifier's budget
        write_log(log, args.commands, args.dir, 2_000)
        gc.enable()
    print(f"log: {log.stat().st_size / 1e6:.1f} MB ({sys.executable})")
    for name, subject in SUBJECTS.items():
        if args.only and name not in args.only:
            continue
        runs = [measure(subject, log_dir) for _ in range(args.runs)]
        best = min(runs)
        print(
            json.dumps(
                {
                    "subject": f"guard {name}",
                    "seconds": round(best[0], 2),
                    "peak_rss_mb": round(max(r[1] for r in runs) / 1024, 1),
                    "status": best[2],
                }
            )
        )


if __name__ == "__main__":
    main()
