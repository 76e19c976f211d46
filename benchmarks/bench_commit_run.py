"""What the commit guard adds to ``guard run -- git commit``, end to end.

Builds the repository of ``bench_commit_guard`` (10,000 tracked files, 200
staged changes) twice (the second one with ``guard install git-hooks``) and
times, as medians of ``--runs`` interleaved runs (each commit undone with
``git reset --soft HEAD~1`` outside the timing):

* ``python -c pass``: the baseline every ratio is against;
* ``git commit -q -m x`` on its own (no hooks; with the hooks installed);
* ``guard run --level L1 -- git commit -q -m x`` with this tree's guard (the
  commit guard inspects the index and scans the 200 files first);
* the same with the hooks installed (decision-time check plus the
  ``pre-commit`` and ``reference-transaction`` hook processes);
* the same with the guard of ``--before DIR`` (a source tree without the
  commit guard, imported through ``PYTHONPATH`` by this interpreter);
* ``guard run --level L1 -- git status --short`` with both trees (no commit:
  the guardrail step only looks at the command's words).

Each tree gets its own guard home (its own helper process). The repository
lives outside the system temp directory, as bench_run's workspace does.

Usage: ``python benchmarks/bench_commit_run.py --before DIR [--runs N]
[--files N] [--staged N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_commit_guard import build, change, git

HOOKS_OFF = ("-c", "core.hooksPath=/dev/null")
SCRATCH = Path.home() / ".cache" / "statetrace-guard-bench"


def guard_script() -> list[str]:
    script = Path(sys.executable).with_name("guard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "statetrace_guard"]


def environment(before: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATETRACE_")}
    env.pop("PYTHONPATH", None)
    if before is not None:
        env["PYTHONPATH"] = str(before)
    env["STATETRACE_GUARD_HOME"] = tempfile.mkdtemp(prefix="home-", dir=SCRATCH)
    env["STATETRACE_GUARD_DAEMON"] = "on"
    env["STATETRACE_GUARD_DAEMON_IDLE"] = "120"
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{argv!r} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--staged", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="commit-run-", dir=SCRATCH))
    plain, hooked = top / "plain", top / "hooked"
    plain.mkdir()
    git(plain, "init", "-q", "-b", "main")
    git(plain, "config", "gc.auto", "0")  # no gc moving objects while copying
    build(plain, args.files)
    change(plain, args.staged, args.files)
    git(plain, "add", "-A")
    shutil.copytree(plain, hooked, symlinks=True)
    now, before = environment(None), environment(args.before.resolve())
    guard = guard_script()
    subprocess.run([*guard, "install", "git-hooks"], cwd=hooked, env=now, check=True)
    commit = ["git", "commit", "-q", "-m", "x"]
    status = ["git", "status", "--short"]
    run = [*guard, "run", "--level", "L1", "--"]
    table: dict[str, tuple[list[str], Path, dict[str, str], bool]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], plain, now, False),
        "git commit (no hooks)": (commit, plain, now, True),
        "git commit (hooks installed)": (commit, hooked, now, True),
        "guard run git commit (before)": ([*run, *commit], plain, before, True),
        "guard run git commit (with)": ([*run, *commit], plain, now, True),
        "guard run git commit (with + hooks)": ([*run, *commit], hooked, now, True),
        "guard run git status (before)": ([*run, *status], plain, before, False),
        "guard run git status (with)": ([*run, *status], plain, now, False),
    }
    samples: dict[str, list[float]] = {name: [] for name in table}
    try:
        for rnd in range(args.runs + 1):
            for name, (argv, cwd, env, undo) in table.items():
                value = timed(argv, cwd, env)
                if rnd:  # the first round warms helpers and caches
                    samples[name].append(value)
                if undo:
                    git(cwd, *HOOKS_OFF, "reset", "-q", "--soft", "HEAD~1")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["python -c pass"]
    if args.json:
        print(json.dumps({"files": args.files, "staged": args.staged, "ms": medians}))
        return
    print(
        f"{args.files} tracked files, {args.staged} staged, {args.runs} runs (medians)"
    )
    for name, value in medians.items():
        print(f"  {name:38} {value:8.1f} ms  {value / base:5.2f}x python -c pass")


if __name__ == "__main__":
    main()
