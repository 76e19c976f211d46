"""Fixtures for the session tests: policies with small budgets, verdicts, runs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from statetrace_guard.audit.chain import rfc3339_ms
from statetrace_guard.audit.trail import CommandFacts, Trail
from statetrace_guard.decision import Verdict
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import CompiledPolicy, compile_policy, load_policy
from statetrace_guard.sessions import gate
from statetrace_guard.sessions.lifecycle import StartRequest, start_session


def make_policy(**settings: Any) -> CompiledPolicy:
    """The built-in policy with some settings replaced."""
    base = load_policy(None)
    model = base.model.model_copy(
        update={"settings": base.model.settings.model_copy(update=settings)}
    )
    return compile_policy(model, "<test>", "0" * 64)


class Harness:
    """Plays the part of `guard run` around the session gate, in process."""

    def __init__(self, workspace: Path, policy: CompiledPolicy) -> None:
        self.workspace = workspace
        self.log_dir = workspace / "Logs"
        self.policy = policy

    def verdict(
        self, argv: tuple[str, ...], level: Level, enforcement: str = "none"
    ) -> Verdict:
        place = make_place(
            self.workspace,
            self.workspace,
            self.log_dir,
            None,
            {},
            enforcement=enforcement,  # type: ignore[arg-type]
        )
        return evaluate(argv, level, self.policy, place).verdict

    def facts(self, ctx: gate.SessionContext, verdict: Verdict, argv) -> CommandFacts:
        return CommandFacts(
            session_id=ctx.session_id,
            task_id=ctx.task_ids[0] if ctx.task_ids else None,
            level=ctx.level.name,
            argv=tuple(argv),
            cwd=str(self.workspace),
            pid=1,
            effects=tuple(sorted(e.value for e in verdict.effects)),
            decision="allow" if verdict.allowed else "block",
            reasons=verdict.reasons,
            rules=verdict.rules,
            policy_sha256=self.policy.sha256,
            network=False,
            urls=(),
            env={},
        )

    def run(
        self,
        session_id: str,
        argv: tuple[str, ...],
        *,
        exit_code: int = 0,
        requested: Level | None = None,
        env: Mapping[str, str] | None = None,
        now: datetime | None = None,
        test_programs: dict[str, Any] | None = None,
    ) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        """Return ('ran'|'blocked'|'refused: reason', events written).

        ``test_programs`` is put in ``command.finished`` as the runner does.
        """
        ctx = gate.join_session(self.log_dir, session_id, requested, env or {}, now)
        verdict = self.verdict(argv, ctx.level)
        trail = Trail(self.log_dir, session_id)
        facts = self.facts(ctx, verdict, argv)
        result = "ran"
        outcome: dict[str, Any] | None = None
        if not verdict.allowed:
            trail.blocked(facts)
            result = "blocked"
        else:
            reason = gate.admit(ctx, self.log_dir, self.policy, verdict, now)
            if reason is not None:
                trail.blocked(facts)
                result = f"refused: {reason}"
            else:
                trail.started(facts, {})
                outcome = {"exit_code": exit_code, "duration_ms": 1}
                if test_programs is not None:
                    outcome["test_programs"] = test_programs
                trail.finished(facts, outcome)
        events = gate.note_outcome(
            ctx, self.log_dir, self.policy, verdict, outcome, now
        )
        for name, fields in events:
            trail.event(name, fields)
        return result, events


@pytest.fixture
def policy() -> CompiledPolicy:
    return make_policy(max_retries_of_blocked=2, max_commands=50, max_blocked=20)


@pytest.fixture
def harness(workspace: Path, policy: CompiledPolicy) -> Harness:
    (workspace / "docs" / "plans").mkdir(parents=True)
    (workspace / "docs" / "plans" / "PlanA.md").write_text("plan\n")
    return Harness(workspace, policy)


def now_text(moment: datetime | None = None) -> str:
    return rfc3339_ms(moment or datetime.now(UTC))


@pytest.fixture
def policy_factory():
    return make_policy


@pytest.fixture
def start(harness: Harness):
    """Start a managed session in the harness workspace; return its id."""

    def _start(policy: CompiledPolicy | None = None, **fields: Any) -> str:
        request = StartRequest(
            task_ids=fields.pop("task_ids", ("ST-A-001",)),
            plan=harness.workspace / "docs" / "plans" / "PlanA.md",
            **fields,
        )
        return start_session(
            harness.workspace, harness.log_dir, policy or harness.policy, request
        )

    return _start
