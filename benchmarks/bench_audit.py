"""Audit trail throughput: chained appends per second.

Cases:
  1. one process, non-durable, through the Trail facade (direct pipeline:
     redaction + chaining + locked append) -- the issue-8 target is >= 5,000/s;
  2. the same through structlog (the default front end);
  3. one process, durable (fsync per record);
  4. 16 processes appending to one file at once (total records/s).

Usage: python benchmarks/bench_audit.py [--records N] [--procs P] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from statetrace_guard.audit.trail import Trail, CommandFacts
    log_dir, count, front = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    durable = sys.argv[4] == "1"
    facts = CommandFacts(session_id="bench", task_id="ST-1", level="L1",
        argv=("git", "status", "--short"), cwd="/work/ws", pid=1, effects=("read",),
        decision="allow", reasons=(), rules=("default",), policy_sha256="0" * 64,
        network=False, urls=(), env={"STATETRACE_AGENT_ALLOW_NET": None,
        "STATETRACE_AGENT_ALLOW_INSTALL": None})
    trail = Trail(Path(log_dir), "bench", front=front, durable=durable)
    trail.started(facts, {})  # warm up: key, imports, header
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        trail.started(facts, {"landlock": "on"})
    print(time.perf_counter() - start, time.process_time() - cpu, flush=True)
""")


def run_case(count: int, procs: int, front: str, durable: bool) -> tuple[float, float]:
    """Return records per second for one case (total over all processes).

    The second figure is records per CPU second of one writer: it moves much
    less than wall time when other work shares the machine.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "STATETRACE_GUARD_HOME": str(Path(tmp) / "home")}
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(Path(tmp) / "Logs"),
                    str(count),
                    front,
                    "1" if durable else "0",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(procs)
        ]
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        cpu = 0.0
        for worker in workers:
            out, _ = worker.communicate()
            assert worker.returncode == 0
            cpu = max(cpu, float(out.split()[1]))
        elapsed = time.perf_counter() - start
        check = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import sys; from pathlib import Path;"
                    "from statetrace_guard.audit.verify import verify_file;"
                    "r = verify_file(Path(sys.argv[1])); print(r.ok, r.verdict.records)"
                ),
                str(Path(tmp) / "Logs" / "Sessions" / "bench.jsonl"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,  # the writers' guard home: its key authenticates the log
        )
        ok, records = check.stdout.split()
        assert ok == "True", check.stdout
        assert int(records) == 1 + procs * (count + 1), check.stdout
    return procs * count / elapsed, count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--procs", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.records
    results = {
        "single_direct_nondurable": run_case(n, 1, "direct", durable=False),
        "single_structlog_nondurable": run_case(n, 1, "structlog", durable=False),
        "single_direct_durable": run_case(max(n // 10, 100), 1, "direct", durable=True),
        f"procs{args.procs}_direct_nondurable": run_case(
            max(n // args.procs, 50), args.procs, "direct", durable=False
        ),
    }
    if args.json:
        print(json.dumps({k: [round(v) for v in pair] for k, pair in results.items()}))
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for name, (rate, cpu_rate) in results.items():
        print(f"{name:32} {rate:10,.0f} records/s  ({cpu_rate:,.0f} per CPU-second)")


if __name__ == "__main__":
    main()
