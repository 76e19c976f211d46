"""The report ``guard session end`` prints, and the Markdown session log.

The CLI report has the autonomy plan's four sections: ``PATCH SUMMARY``
(``git diff --stat`` against the commit recorded at session start, plus new
untracked files), ``TEST RESULTS`` (the finished commands whose deciding
policy rule has ``test = true``, pass or fail; after ``max_test_failures``
failures it says the session must stop), ``TASKBOARD UPDATE`` and
``NEXT STEP``. The Markdown form follows the StateTrace session template:
Date, Role, Task board card, Plan, Changes, Validation, Outcome.

A test run's result is the test program's own (see :mod:`.testruns`): PASS,
FAIL, or UNKNOWN when the recorded status may be another program's and the
kernel did not show the test program's own. Commands
are shown on one line, heredocs and long scripts shortened with a marker, and
the Markdown stays valid whatever a command holds (code spans and fences are
made longer than any run of backticks inside).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from statetrace_guard.audit.table import brief_command
from statetrace_guard.guardrails.session import (
    GuardrailBlock,
    SessionCommit,
    guardrail_blocks,
    session_commits,
)
from statetrace_guard.policy import CompiledPolicy
from statetrace_guard.sessions.overrides import Change
from statetrace_guard.sessions.store import (
    CommandRun,
    SessionState,
    read_records,
    session_file,
)
from statetrace_guard.sessions.testruns import (
    FAIL,
    PASS,
    Outcome,
    TestPrograms,
    outcome_of,
)

__all__ = [
    "Report",
    "TestResult",
    "base_commit",
    "build_report",
    "default_status",
    "git_changes",
    "md_code",
    "md_fence",
    "must_stop_reason",
    "render_cli",
    "render_markdown",
    "test_results",
]

_GIT_TIMEOUT = 30
_TASK_STATUS = {"done": "Done", "blocked": "Blocked", "failed": "Failed"}


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test command and whether it passed."""

    __test__ = False  # not a pytest class, despite the name

    argv: tuple[str, ...]
    exit_code: int | None
    ts: str
    outcome: Outcome

    @property
    def passed(self) -> bool:
        """True when the test program itself passed (not merely exit 0)."""
        return self.outcome.result == PASS

    @property
    def failed(self) -> bool:
        """True when the run failed (UNKNOWN is neither passed nor failed)."""
        return self.outcome.result == FAIL

    def line(self) -> str:
        """``PASS  pytest -q  (exit 0)``, with the reason when not plain."""
        why = f"; {self.outcome.why}" if self.outcome.why else ""
        code = "-" if self.exit_code is None else self.exit_code
        return f"{self.outcome.result}  {brief_command(self.argv)}  (exit {code}{why})"


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the end-of-session report shows."""

    session_id: str
    date: str
    role: str | None
    task_ids: tuple[str, ...]
    plan: str | None
    status: str
    next_step: str | None
    patch: str
    tests: tuple[TestResult, ...]
    commands: tuple[CommandRun, ...]
    blocked: int
    changes: tuple[Change, ...]
    overrides_used: int
    must_stop: str | None
    halts: tuple[str, ...] = ()
    status_note: str | None = None
    commits: tuple[SessionCommit, ...] = ()
    guardrail_blocks: tuple[GuardrailBlock, ...] = ()


def _git(workspace: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(workspace), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def base_commit(workspace: Path) -> str | None:
    """The commit the workspace is at (recorded when a session starts)."""
    out = _git(workspace, "rev-parse", "--verify", "--quiet", "HEAD")
    return out.strip() or None if out else None


def git_changes(
    workspace: Path, base: str | None, exclude: tuple[str, ...] = ()
) -> str:
    """``git diff --stat`` since ``base`` and the new untracked files.

    Untracked paths under an ``exclude`` prefix (the guard's logs) are left out.
    """
    if base is None:
        return "(no git commit was recorded when the session started)"
    stat = _git(workspace, "diff", "--stat", base, "--")
    if stat is None:
        return f"(git diff against {base[:12]} failed)"
    status = _git(workspace, "status", "--porcelain", "--untracked-files=all") or ""
    new = [
        line[3:]
        for line in status.splitlines()
        if line.startswith("?? ") and not line[3:].startswith(exclude)
    ]
    lines = [line.rstrip() for line in stat.splitlines() if line.strip()]
    lines.extend(f" {path} (new, untracked)" for path in new)
    return "\n".join(lines) if lines else "(no changes)"


def test_results(state: SessionState, policy: CompiledPolicy) -> tuple[TestResult, ...]:
    """The finished commands a ``test = true`` rule decided, with real outcomes."""
    tests = frozenset(rule.id for rule in policy.rules if rule.test)
    programs = TestPrograms.of(policy)
    return tuple(
        TestResult(
            run.argv,
            run.exit_code,
            run.ts,
            outcome_of(
                run.argv,
                run.exit_code,
                programs,
                timed_out=run.timed_out,
                observed=run.test_programs,
            ),
        )
        for run in state.finished
        if tests.intersection(run.rules)
    )


def default_status(
    state: SessionState, tests: tuple[TestResult, ...]
) -> tuple[str, str | None]:
    """The status a session ends with when none is given, and why if not done.

    ``blocked`` when the session is halted (or was, and never resumed),
    ``failed`` when the last test run failed or its result is unknown,
    else ``done``.
    """
    if state.halt is not None:
        return "blocked", f"the session is halted ({state.halt.reason})"
    if tests and not tests[-1].passed:
        last = tests[-1]
        verb = "failed" if last.failed else "has no known result"
        why = f" ({last.outcome.why})" if last.outcome.why else ""
        return (
            "failed",
            f"the last test run {verb}: {brief_command(last.argv, 60)}{why}",
        )
    return "done", None


def must_stop_reason(tests: tuple[TestResult, ...], limit: int) -> str | None:
    """Say the session must stop once ``limit`` test commands have failed."""
    failures = [test for test in tests if test.failed]
    if len(failures) < limit:
        return None
    last = failures[-1]
    return (
        f"{len(failures)} failing test commands (max_test_failures is {limit}): "
        f"stop the session; last failure: {brief_command(last.argv, 80)} "
        f"(exit {last.exit_code}{f'; {last.outcome.why}' if last.outcome.why else ''})"
    )


def build_report(
    state: SessionState,
    policy: CompiledPolicy,
    *,
    workspace: Path,
    status: str | None,
    next_step: str | None,
    changes: tuple[Change, ...],
    exclude: tuple[str, ...] = (),
    log_dir: Path | None = None,
) -> Report:
    """Collect the report's facts from the session's state and the disk.

    ``status`` None means the honest default (:func:`default_status`).
    ``log_dir`` is where the session's log is (for the guardrail blocks).
    """
    start = state.start
    tests = test_results(state, policy)
    derived, note = default_status(state, tests)
    if status is not None and status != derived and note:
        note = f"reported {status} by the operator although {note}"
    elif status is not None:
        note = None
    return Report(
        session_id=state.session_id,
        date=(start.ts if start else state.created or "")[:10],
        role=start.role if start else None,
        task_ids=start.task_ids if start else (),
        plan=start.plan if start else None,
        status=status or derived,
        next_step=next_step,
        patch=git_changes(workspace, start.base_commit if start else None, exclude),
        tests=tests,
        commands=state.finished,
        blocked=state.blocked_total,
        changes=changes,
        overrides_used=len(state.overrides),
        must_stop=must_stop_reason(tests, policy.settings.max_test_failures),
        halts=tuple(f"{halt.ts} {halt.reason}" for halt in state.halts),
        status_note=note,
        commits=session_commits(
            workspace,
            start.base_commit if start else None,
            start.ts if start else (state.created or ""),
            policy.guardrails.commit,
        ),
        guardrail_blocks=_guardrail_blocks(log_dir, state.session_id),
    )


def _guardrail_blocks(
    log_dir: Path | None, session_id: str
) -> tuple[GuardrailBlock, ...]:
    if log_dir is None:
        return ()
    return guardrail_blocks(read_records(session_file(log_dir, session_id)))


def _test_lines(report: Report) -> list[str]:
    lines = [f"  {test.line()}" for test in report.tests]
    if not lines:
        lines.append("  (no test commands ran)")
    if report.must_stop:
        lines.append(f"  MUST STOP: {report.must_stop}")
    return lines


def _next_step(report: Report) -> str:
    if report.must_stop:
        return f"Stop: {report.must_stop}"
    if report.next_step:
        return report.next_step
    return "(none given)"


def _change_lines(report: Report) -> list[str]:
    return [
        f"  watched file {change.path} {change.kind}: reset it"
        for change in report.changes
    ]


_FILES_SHOWN = 5


def _commit_line(commit: SessionCommit) -> str:
    files = ", ".join(commit.files[:_FILES_SHOWN])
    if len(commit.files) > _FILES_SHOWN:
        files += f" and {len(commit.files) - _FILES_SHOWN} more"
    broken = f" BREAKS {', '.join(commit.broken)}" if commit.broken else ""
    return f"{commit.sha[:12]} {commit.subject} ({files or 'no files'}){broken}"


def _guardrail_lines(report: Report) -> list[str]:
    """Commits made and guardrail blocks, as lines without indentation."""
    lines = []
    if report.commits:
        lines.append(f"commits made in the session ({len(report.commits)}):")
        lines.extend(f"  {_commit_line(commit)}" for commit in report.commits)
    else:
        lines.append("commits made in the session: none")
    if report.guardrail_blocks:
        lines.append(f"guardrail blocks ({len(report.guardrail_blocks)}):")
        lines.extend(
            f"  {block.ts[11:19]} {brief_command(block.command, 60)}: {block.reason}"
            for block in report.guardrail_blocks
        )
    return lines


def render_cli(report: Report) -> str:
    """The report in the plan's CLI format (four sections)."""
    task_status = _TASK_STATUS.get(report.status, report.status)
    tasks = [f"  {task}: {task_status}" for task in report.task_ids] or ["  (none)"]
    lines = [
        "PATCH SUMMARY",
        *(f"  {line.strip()}" for line in report.patch.splitlines()),
        *_change_lines(report),
        *(f"  {line}" for line in _guardrail_lines(report)),
        "",
        "TEST RESULTS",
        *_test_lines(report),
        "",
        "TASKBOARD UPDATE",
        *tasks,
        "",
        "NEXT STEP",
        f"  {_next_step(report)}",
        *(f"  (the session was halted at {halt})" for halt in report.halts),
        *(
            [f"  (status {report.status}: {report.status_note})"]
            if report.status_note
            else []
        ),
    ]
    return "\n".join(lines) + "\n"


def md_code(text: str) -> str:
    """A Markdown code span that holds ``text`` whatever backticks it has."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: str) -> str:
    """A fence for a code block: longer than any backtick run in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_test(test: TestResult) -> str:
    why = f"; {test.outcome.why}" if test.outcome.why else ""
    command = md_code(brief_command(test.argv))
    return f"- {test.outcome.result}: {command} (exit {test.exit_code}{why})"


def _validation_lines(report: Report) -> list[str]:
    commands = [
        f"- {md_code(brief_command(run.argv))} (exit {run.exit_code})"
        for run in report.commands
    ] or ["- (no commands ran)"]
    return [
        *commands,
        "",
        "Tests:",
        "",
        *(_md_test(test) for test in report.tests),
        *([] if report.tests else ["- (no test commands ran)"]),
        *([f"- MUST STOP: {report.must_stop}"] if report.must_stop else []),
        (
            f"- Commands blocked: {report.blocked}; runs using overrides: "
            f"{report.overrides_used}"
        ),
    ]


def _md_guardrails(report: Report) -> list[str]:
    lines = [
        f"Commits made in the session: {len(report.commits) or 'none'}",
        "",
    ]
    for commit in report.commits:
        broken = f" **breaks {', '.join(commit.broken)}**" if commit.broken else ""
        files = ", ".join(md_code(name) for name in commit.files[:_FILES_SHOWN])
        more = len(commit.files) - _FILES_SHOWN
        files += f" and {more} more" if more > 0 else ""
        lines.append(
            f"- {md_code(commit.sha[:12])} {md_code(commit.subject)}: "
            f"{files or 'no files'}{broken}"
        )
    if report.guardrail_blocks:
        lines.extend(["", f"Guardrail blocks: {len(report.guardrail_blocks)}", ""])
        lines.extend(
            f"- {md_code(brief_command(block.command, 80))}: {block.reason}"
            for block in report.guardrail_blocks
        )
    return [*lines, ""] if report.commits or report.guardrail_blocks else [*lines]


def render_markdown(report: Report) -> str:
    """The session log in the StateTrace template's form."""
    outcome = f"Status: {_TASK_STATUS.get(report.status, report.status)}."
    lines = [
        f"# Session {report.session_id}",
        "",
        f"- **Date:** {report.date}",
        f"- **Role:** {report.role or '(not given)'}",
        f"- **Task board card:** {', '.join(report.task_ids) or '(none)'}",
        f"- **Plan:** {report.plan or '(none)'}",
        "",
        "## Changes",
        "",
        md_fence(report.patch),
        report.patch,
        md_fence(report.patch),
        *(f"- {line.strip()}" for line in _change_lines(report)),
        "",
        *_md_guardrails(report),
        "## Validation",
        "",
        *_validation_lines(report),
        "",
        "## Outcome",
        "",
        outcome,
        *([f"Status note: {report.status_note}."] if report.status_note else []),
        *(f"Halted at {halt}." for halt in report.halts),
        "",
        f"Next step: {_next_step(report)}",
    ]
    return "\n".join(lines) + "\n"
