"""A test run's real outcome: the test program's own status (issue 19.4)."""

from __future__ import annotations

import re

import pytest

from statetrace_guard.policy import load_policy
from statetrace_guard.sessions import report as rp
from statetrace_guard.sessions.testruns import (
    FAIL,
    PASS,
    UNKNOWN,
    TestPrograms,
    outcome_of,
)

PROGRAMS = TestPrograms.of(load_policy(None))


def bash(script: str) -> tuple[str, ...]:
    return ("bash", "-c", script)


@pytest.mark.parametrize(
    ("argv", "code", "result"),
    [
        (("pytest", "-q"), 0, PASS),
        (("pytest", "-q"), 1, FAIL),
        (("python3", "-m", "pytest"), 0, PASS),
        (bash("pytest -q | tail -1"), 0, UNKNOWN),
        (bash("pytest -q | tail -1"), 1, FAIL),
        (bash("set -o pipefail; pytest -q | tail -1"), 0, PASS),
        (bash("set -o pipefail; pytest -q | tail -1"), 1, FAIL),
        (bash("set -euo pipefail\npytest -q | tail -1"), 0, PASS),
        (bash("cd src && python -m pytest -q"), 0, PASS),
        (bash("pytest -q && echo ok"), 0, PASS),
        (bash("pytest -q || true"), 0, UNKNOWN),
        (bash("pytest -q; echo done"), 0, UNKNOWN),
        (bash("set -e; pytest -q; echo done"), 0, PASS),
        (bash("FOO=1 pytest -q > out.txt 2>&1"), 0, PASS),
        (bash("timeout 600 pytest -q 2>&1 | tee out.txt"), 0, UNKNOWN),
        (bash("! pytest -q"), 0, UNKNOWN),
        (bash("if pytest -q; then echo y; fi"), 0, UNKNOWN),
        (bash("(pytest -q)"), 0, PASS),
        (("pwsh", "-Command", "Invoke-Pester Modules/Tests"), 0, UNKNOWN),
        (("pwsh", "-Command", "Invoke-Pester Modules/Tests"), 1, FAIL),
        (("pwsh", "-Command", "Invoke-Pester Modules/Tests -CI"), 0, PASS),
        (("pwsh", "-Command", "Invoke-Pester -Path t -EnableExit"), 0, PASS),
        (("pwsh", "-NoProfile", "-File", "Tools/Invoke-AllChecks.ps1"), 0, PASS),
    ],
)
def test_outcome(argv, code, result):
    """Whose status the command's exit status is decides what 0 proves."""
    assert outcome_of(argv, code, PROGRAMS).result == result


def test_unknown_names_what_masked_it():
    """The reason names the command whose status was recorded and the fix."""
    found = outcome_of(bash("pytest -q | tail -1"), 0, PROGRAMS)
    assert found.why is not None
    assert "`tail -1`" in found.why
    assert "pytest" in found.why
    assert "pipefail" in found.why
    wrapped = outcome_of(bash("timeout 60 pytest | tee x"), 0, PROGRAMS)
    assert wrapped.why is not None
    assert "not from pytest" in wrapped.why


def test_timeouts_and_lost_statuses_fail():
    """A timed-out run or one without a status is no pass."""
    assert outcome_of(("pytest",), 0, PROGRAMS, timed_out=True).result == FAIL
    assert outcome_of(("pytest",), None, PROGRAMS).result == FAIL


class TestMarkdown:
    @pytest.mark.parametrize(
        "text", ["plain", "a `tick`", "``double``", "`edge", "x ``` y", ""]
    )
    def test_code_span_holds_any_backticks(self, text):
        """The span's fence is longer than any backtick run inside."""
        span = rp.md_code(text)
        fence = re.match(r"`+", span)
        assert fence is not None
        inner = span[len(fence.group()) : -len(fence.group())]
        assert inner.strip(" ") == text.strip(" ") or inner == f" {text} "
        runs = [len(r) for r in re.findall(r"`+", inner)]
        assert all(run != len(fence.group()) for run in runs)

    def test_fence_outgrows_the_block(self):
        """A code block holding ``` gets a longer fence."""
        assert rp.md_fence("a\n```\nb") == "````"
        assert rp.md_fence("plain") == "```"
