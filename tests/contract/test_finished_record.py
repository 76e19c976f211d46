"""``command.finished``'s ``test_programs`` field is frozen (reports and tools read it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from statetrace_guard.audit.record import (
    DEFAULT_REGISTRY,
    FinishedRecord,
    TestProgramsSeen,
)

KERNEL_VIEW = sys.platform.startswith("linux") and os.geteuid() == 0


def finished_records(workspace: Path) -> list[dict]:
    found = []
    for path in sorted((workspace / "Logs" / "Sessions").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["event"] == "command.finished":
                found.append(record)
    return found


def guard_run(workspace: Path, script: str) -> dict:
    subprocess.run(
        [sys.executable, "-m", "statetrace_guard", "run", "--", "bash", "-c", script],
        cwd=workspace,
        check=False,
        capture_output=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    return finished_records(workspace)[-1]


def test_a_test_commands_finish_carries_the_test_programs(workspace):
    """A test command's finish has test_programs with exactly these keys; it validates."""
    (workspace / "t").mkdir()
    (workspace / "t/test_x.py").write_text("def test_x():\n    assert False\n")
    record = guard_run(
        workspace, f"{sys.executable} -m pytest -q -p no:cacheprovider t | tail -1"
    )
    tests = record["test_programs"]
    assert set(tests) == {"runs", "unread", "unobserved"}
    parsed = DEFAULT_REGISTRY.parse(record)
    assert isinstance(parsed, FinishedRecord)
    assert isinstance(parsed.test_programs, TestProgramsSeen)
    if not KERNEL_VIEW:
        assert tests["runs"] == []
        assert tests["unobserved"]
        return
    assert tests["unobserved"] is None
    assert [set(run) for run in tests["runs"]] == [{"program", "exit_code", "signal"}]
    assert tests["runs"][0]["exit_code"] == 1


def test_other_commands_have_no_field_and_bad_ones_are_found(workspace):
    """Additive: absent where no test rule decided; a malformed one is a problem."""
    record = guard_run(workspace, "true | tail -1")
    assert "test_programs" not in record
    assert DEFAULT_REGISTRY.problem(record) is None
    for bad in (
        {"runs": "pytest", "unread": 0, "unobserved": None},
        {"runs": [{"program": "pytest", "exit_code": "1"}], "unread": 0},
        {"runs": [], "unread": -1, "unobserved": None},
    ):
        assert DEFAULT_REGISTRY.problem({**record, "test_programs": bad}) is not None
