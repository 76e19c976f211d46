"""Time ``guard replay`` on a generated 100,000-command session log.

The log is a real chained session file (header, then one ``command.blocked``
record per blocked command and a ``command.started`` / ``command.finished``
pair per allowed one), sealed with the audit chain code, with every record's
decision, required level, effects and rules taken from the built-in policy, so
an intact replay reports no change. Commands are a mix of plain programs,
``bash -c`` pipelines and network commands; ``--distinct`` makes every argv
unique (no judgement can be reused), the default repeats a realistic working
set of about 2,000 distinct command lines.

Usage::

    python benchmarks/bench_replay.py [--commands 100000] [--distinct] [--runs 3]
        [--jobs N] [--no-verify] [--log FILE]

Prints the log size and the wall time of each ``guard replay`` run (a fresh
``python -m statetrace_guard replay`` process each time, so imports count).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from statetrace_guard.audit.chain import ChainState, header_record, render, seal
from statetrace_guard.evaluate import Place, evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import CompiledPolicy, load_policy

SESSION = "2026-01-31_session-0001"
TS = "2026-01-31T12:00:00.000Z"
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("cat", "src/module_{i}.py"),
    ("grep", "-rn", "TODO_{i}", "src"),
    ("ls", "-la", "dir_{i}"),
    ("git", "status", "--short"),
    ("git", "diff", "--stat", "HEAD~{i}"),
    ("pytest", "-q", "tests/test_{i}.py"),
    ("bash", "-c", "git status --short | grep -c M{i}; ls"),
    ("bash", "-c", "echo {i} > out/result_{i}.txt"),
    ("bash", "-c", "find . -name '*_{i}.py' | xargs wc -l"),
    ("curl", "-s", "https://example.com/item/{i}"),
    ("pwsh", "-NoProfile", "-Command", "Get-ChildItem -Path src{i} | Measure-Object"),
    ("rm", "-rf", "/etc/x{i}"),
)


def argv_at(index: int, working_set: int | None) -> tuple[str, ...]:
    """The argv of command ``index``: a template filled with a number."""
    template = TEMPLATES[index % len(TEMPLATES)]
    number = index if working_set is None else index % working_set
    return tuple(word.replace("{i}", str(number)) for word in template)


def command_fields(
    argv: tuple[str, ...], judged: dict[str, Any], workspace: Path
) -> dict[str, Any]:
    """The fields of a command record for ``argv`` as judged now."""
    return {
        "schema_version": 1,
        "session_id": SESSION,
        "task_id": None,
        "level": "L1",
        "argv": list(argv),
        "cwd": str(workspace),
        "pid": 4242,
        "effects": judged["effects"],
        "decision": judged["decision"],
        "reasons": judged["reasons"],
        "rules": judged["rules"],
        "policy_sha256": judged["policy_sha256"],
        "guard_version": "0.1.0",
        "required_level": judged["required_level"],
        "network": "network" in judged["effects"],
        "urls": [],
        "env": {
            "STATETRACE_AGENT_ALLOW_INSTALL": None,
            "STATETRACE_AGENT_ALLOW_NET": None,
        },
        "task_ids": [],
        "plan_refs": [],
        "extra": {},
    }


def judge(
    argv: tuple[str, ...], policy: CompiledPolicy, place: Place
) -> dict[str, Any]:
    """The recorded judgement fields of ``argv`` under ``policy`` now."""
    verdict = evaluate(argv, Level.L1, policy, place).verdict
    return {
        "decision": verdict.decision.label,
        "required_level": None
        if verdict.required_level is None
        else verdict.required_level.name,
        "effects": sorted(effect.value for effect in verdict.effects),
        "rules": list(verdict.rules),
        "reasons": list(verdict.reasons),
        "policy_sha256": policy.sha256,
    }


def events_for(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """One blocked record, or a started and a finished record."""
    if fields["decision"] == "block":
        return [{**fields, "event": "command.blocked", "ts": TS}]
    finished = {"exit_code": 0, "signal": None, "duration_ms": 3.5, "timed_out": False}
    return [
        {**fields, "event": "command.started", "ts": TS, "enforcement": {}},
        {**fields, **finished, "event": "command.finished", "ts": TS},
    ]


def write_log(
    path: Path, commands: int, workspace: Path, working_set: int | None
) -> None:
    """Write a chained session log of ``commands`` commands to ``path``."""
    policy = load_policy(None)
    place = make_place(workspace, workspace, workspace / "Logs", None, {})
    cache: dict[tuple[str, ...], dict[str, Any]] = {}
    state = ChainState.empty()
    header = seal(header_record("session", TS, "0.1.0", session_id=SESSION), state)
    chunks = [render(header)]
    state = ChainState.after(header)
    for index in range(commands):
        argv = argv_at(index, working_set)
        judged = cache.get(argv)
        if judged is None:
            judged = cache[argv] = judge(argv, policy, place)
        for event in events_for(command_fields(argv, judged, workspace)):
            record = seal(event, state)
            chunks.append(render(record))
            state = ChainState.after(record)
    path.write_bytes(b"".join(chunks))


def time_replay(log: Path, cwd: Path, extra: list[str]) -> tuple[float, float, str]:
    """Run ``guard replay`` on ``log`` once; return wall and CPU seconds, summary."""
    argv = [sys.executable, "-m", "statetrace_guard", "replay", str(log), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in {0, 1}:
        print(done.stderr, file=sys.stderr)
        msg = f"guard replay exited {done.returncode}"
        raise SystemExit(msg)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return seconds, cpu, last


def parse_args() -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--distinct", action="store_true")
    parser.add_argument("--working-set", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--jobs", type=int, default=0, help="guard replay --jobs")
    parser.add_argument(
        "--log", type=Path, default=None, help="reuse (or create) this log file"
    )
    return parser.parse_args()


def main() -> None:
    """Generate the log, time the replays, print the figures."""
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        workspace = Path(tmp)
        log = args.log or workspace / f"{SESSION}.jsonl"
        if not log.exists():
            start = time.perf_counter()
            working_set = None if args.distinct else args.working_set
            gc.disable()  # a long collector pause would trip the classifier's budget
            write_log(log, args.commands, log.parent, working_set)
            gc.enable()
            print(f"generated in {time.perf_counter() - start:.1f} s")
        size = log.stat().st_size / 1e6
        lines = sum(1 for _ in log.open("rb"))
        print(f"log: {args.commands} commands, {lines} records, {size:.1f} MB")
        extra = ["--no-verify"] if args.no_verify else []
        extra += ["--jobs", str(args.jobs)] if args.jobs else []
        times, cpus = [], []
        for run in range(args.runs):
            seconds, cpu, summary = time_replay(log, log.parent, extra)
            times.append(seconds)
            cpus.append(cpu)
            print(f"run {run + 1}: {seconds:.2f} s wall, {cpu:.2f} s CPU ({summary})")
        result = {
            "commands": args.commands,
            "distinct": args.distinct,
            "verify": not args.no_verify,
            "jobs": args.jobs or "auto",
            "median_seconds": round(statistics.median(times), 2),
            "median_cpu_seconds": round(statistics.median(cpus), 2),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
