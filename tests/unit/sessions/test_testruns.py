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


def seen(*runs, unread=0, unobserved=None):
    """A command.finished ``test_programs`` field: (program, exit, signal) runs."""
    return {
        "runs": [
            {"program": name, "exit_code": code, "signal": sig}
            for name, code, sig in runs
        ],
        "unread": unread,
        "unobserved": unobserved,
    }


class TestOwnStatus:
    """The test program's own status, as the kernel saw it, decides a masked 0."""

    @pytest.mark.parametrize(
        ("argv", "code", "observed", "result"),
        [
            (bash("pytest -q | tail -1"), 0, seen(("pytest", 1, None)), FAIL),
            (bash("pytest -q | tail -1"), 0, seen(("pytest", None, 9)), FAIL),
            (bash("pytest -q | tail -1"), 0, seen(("pytest", 0, None)), PASS),
            (bash("pytest -q || true"), 0, seen(("pytest", 2, None)), FAIL),
            (("pytest", "-q"), 0, seen(("pytest", 1, None)), FAIL),
            (bash("pytest -q | tail -1"), 0, None, UNKNOWN),
            (bash("pytest -q | tail -1"), 0, seen(), UNKNOWN),
            (
                bash("pytest -q | tail -1"),
                0,
                seen(("pytest", 0, None), unobserved="events lost"),
                UNKNOWN,
            ),
            (
                bash("sed -i s/a/b/ x; pytest | tail -1"),
                0,
                seen(("pytest", 0, None), unread=1),
                PASS,
            ),
            (
                bash("pytest a | tail -1; pytest b | tail -1"),
                0,
                seen(("pytest", 0, None), unread=1),
                UNKNOWN,
            ),
            (
                bash("for t in a b; do pytest $t; done | tail -1"),
                0,
                seen(("pytest", 0, None), unread=1),
                UNKNOWN,
            ),
            (
                bash("pwsh -Command Invoke-Pester | tail -1"),
                0,
                seen(("invoke-pester", 0, None)),
                UNKNOWN,
            ),
            (
                bash("pwsh -Command Invoke-Pester -CI | tail -1"),
                0,
                seen(("invoke-pester", 0, None)),
                PASS,
            ),
        ],
    )
    def test_outcome(self, argv, code, observed, result):
        """A failing test program fails the run; a masked 0 passes only on full view."""
        assert outcome_of(argv, code, PROGRAMS, observed=observed).result == result

    def test_fail_names_the_programs_own_status(self):
        """FAIL says whose status it is and what it was."""
        found = outcome_of(
            bash("pytest | tail -1"), 0, PROGRAMS, observed=seen(("pytest", 1, None))
        )
        assert found.why == "pytest's own status: exit 1"
        killed = outcome_of(
            bash("pytest | tail -1"), 0, PROGRAMS, observed=seen(("pytest", None, 9))
        )
        assert killed.why == "pytest's own status: killed by signal 9"

    def test_pass_says_the_kernel_saw_it(self):
        """A masked PASS is marked as the kernel's word, not the pipeline's."""
        found = outcome_of(
            bash("pytest | tail -1"), 0, PROGRAMS, observed=seen(("pytest", 0, None))
        )
        assert found.why == "pytest's own status 0, seen by the kernel"

    @pytest.mark.parametrize(
        ("observed", "reason"),
        [
            (None, "its own status was not recorded"),
            (
                seen(unobserved="the kernel's process events are not readable here"),
                "its own status was not seen: the kernel's process events",
            ),
            (seen(), "no test program was seen ending"),
        ],
    )
    def test_unknown_says_why_the_own_status_is_missing(self, observed, reason):
        """Where the kernel gave no view, UNKNOWN names the mask and the reason."""
        found = outcome_of(bash("pytest | tail -1"), 0, PROGRAMS, observed=observed)
        assert found.result == UNKNOWN
        assert found.why is not None
        assert "`tail -1`" in found.why
        assert reason in found.why


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
