"""Every status 0..255 comes back as itself, on both paths, and is recorded so.

125 means "nothing ran" and 2 "usage error" only when guard says so: a
program's own 2, 123..127 or 255 passes through untouched (issue 14.1).
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

STATUSES = range(256)
# The statuses are the subject here, not the sandbox: at L3 with the network
# opted in, no network namespace is made per command (the slow part).
_FAST = ("--level", "L3")
_OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1"}


def _recorded(fleet) -> dict[str, int]:
    """Each command's recorded exit code, by the token in its argv."""
    found = {}
    for records in fleet.records().values():
        for record in records:
            token = (record.get("argv") or ["-"])[-1]
            if record["event"] == "command.finished" and token[1:].isdigit():
                found[token] = record["exit_code"]
    return found


def _status_command(status: int) -> list[str]:
    return ["sh", "-c", f"exit {status}", "tok", f"s{status}"]


def test_every_status_through_the_helper(fleet):
    """Status N of the program is the client's status N and the record's."""
    fleet.start_helper()

    def one(status: int) -> tuple[int, int]:
        result = fleet.guard("run", *_FAST, "--", *_status_command(status), **_OPT_IN)
        return status, result.returncode

    with ThreadPoolExecutor(4) as pool:
        results = dict(pool.map(one, STATUSES))
    assert results == {status: status for status in STATUSES}
    recorded = _recorded(fleet)
    assert {int(k[1:]): v for k, v in recorded.items()} == results
    vias = {
        record["extra"]["via"]
        for records in fleet.records().values()
        for record in records
        if record["event"] == "command.started" and record["argv"][-1].startswith("s")
    }
    assert vias == {"daemon"}


def _in_process(status: int) -> int:
    """``guard run`` in a forked process: the real entry point, in-process."""
    from statetrace_guard import entry  # noqa: PLC0415

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            sys.argv = ["guard", "run", *_FAST, "--", *_status_command(status)]
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            entry.main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_every_status_in_process(fleet, monkeypatch):
    """The same with the helper off (every first run, every fallback)."""
    for name, value in fleet.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "off")
    monkeypatch.setenv("STATETRACE_AGENT_ALLOW_NET", "1")
    monkeypatch.chdir(fleet.workspace)
    import statetrace_guard.cli.run_cmd  # noqa: PLC0415 - warm: each fork reuses it
    import statetrace_guard.runner  # noqa: F401, PLC0415

    results = {status: _in_process(status) for status in STATUSES}
    assert results == {status: status for status in STATUSES}
    recorded = _recorded(fleet)
    assert {int(k[1:]): v for k, v in recorded.items()} == results


@pytest.mark.parametrize("status", [2, 123, 125, 126, 127, 255])
def test_guard_codes_from_the_program_pass_through(fleet, status):
    """A real in-process guard run (no fork tricks) for the codes guard also uses."""
    result = fleet.guard(
        "run", "--", *_status_command(status), STATETRACE_GUARD_DAEMON="off"
    )
    assert result.returncode == status, result.stderr
    (finished,) = [
        r
        for records in fleet.records().values()
        for r in records
        if r["event"] == "command.finished"
    ]
    assert finished["exit_code"] == status
    assert finished["supervised_by"] == "client"
    assert json.dumps(finished)  # a whole record
