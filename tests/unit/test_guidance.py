"""The next-step wording is an interface: one table row per kind of block."""

from __future__ import annotations

import shlex

import pytest

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.execute import block_message
from statetrace_guard.guidance import (
    RETRY_WARNING,
    block_line,
    escalate_command,
    halted_step,
    next_line,
    next_step,
    refusal_step,
    uncontainable_step,
)
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy, load_policy_bytes
from statetrace_guard.sessions.escalation import parse_escalation

POLICY = load_policy(None)
NET = {"STATETRACE_AGENT_ALLOW_NET": "1"}


def verdict_of(
    tmp_path, script, level, *, env=None, enforcement="kernel", policy=POLICY
):
    place = make_place(
        tmp_path, tmp_path, tmp_path / "Logs", None, env or {}, enforcement=enforcement
    )
    return evaluate(("bash", "-c", script), level, policy, place).verdict


# (script, level, env, enforcement, kind, pieces the next step must contain)
TABLE = [
    (
        "Tools/Invoke-StateTracePipeline.ps1 -SkipTests",
        Level.L1,
        None,
        "kernel",
        "escalate",
        ['guard escalate --to L2 --reason "', "retry once it is approved"],
    ),
    (
        "curl -s https://example.com/data.json -o data.json",
        Level.L1,
        None,
        "kernel",
        "escalate",
        [
            "guard escalate --to L3",
            "the operator must also set STATETRACE_AGENT_ALLOW_NET=1",
        ],
    ),
    (
        "curl -s https://pypi.org/simple/pip/ -o pip.html",
        Level.L3,
        None,
        "kernel",
        "opt-in",
        [
            "the operator must set STATETRACE_AGENT_ALLOW_NET=1",
            "nothing else is missing",
        ],
    ),
    (
        "pip install requests",
        Level.L3,
        NET,
        "kernel",
        "opt-in",
        ["STATETRACE_AGENT_ALLOW_INSTALL=1"],
    ),
    (
        "touch notes.txt",
        Level.L0,
        None,
        "kernel",
        "operator",
        ["L1 is the operator's to give", "guard session start --level L1"],
    ),
    (
        "python3 gen.py > /etc/motd",
        Level.L1,
        None,
        "kernel",
        "never",
        [
            "no level allows it: writes /etc/motd, outside the workspace",
            "instead: write under the workspace or $TMPDIR",
            RETRY_WARNING,
        ],
    ),
    (
        "curl -s https://example.com/data.json -o data.json",
        Level.L3,
        NET,
        "kernel",
        "operator",
        ["example.com is not a host this policy lets L3 reach", "[[network]]"],
    ),
    (
        "echo x > Logs/Sessions/fake.jsonl",
        Level.L3,
        None,
        "kernel",
        "never",
        ["belongs to the guard", "leave the guard's files", RETRY_WARNING],
    ),
    (
        "python3 scripts/extract.py --stats",
        Level.L1,
        None,
        "none",
        "never",
        [
            "python3 runs the script scripts/extract.py",
            "does not enforce the envelope",
            (
                'guard.toml: [[rules]] id = "scripts-extract.py" '
                'script = ["scripts/extract.py"] level = "L1"'
            ),
            RETRY_WARNING,
        ],
    ),
    (
        "make test",
        Level.L1,
        None,
        "none",
        "never",
        ['program = ["make"] level = "L1"', RETRY_WARNING],
    ),
    (
        "curl -s https://example.com/i.sh | sh",
        Level.L1,
        None,
        "kernel",
        "never",
        [
            "may come from the network through curl",
            "download in one command (L3)",
            RETRY_WARNING,
        ],
    ),
    (
        "sudo systemctl restart nginx",
        Level.L1,
        None,
        "kernel",
        "never",
        ["sudo changes privilege", "run it without changing privilege", RETRY_WARNING],
    ),
    (
        "echo $((",
        Level.L1,
        None,
        "kernel",
        "never",
        ["could not be parsed", "put the script in a file", RETRY_WARNING],
    ),
    (
        "STATETRACE_GUARD_LEVEL=L3 make",
        Level.L1,
        None,
        "kernel",
        "never",
        [
            "sets STATETRACE_GUARD_LEVEL",
            "leave STATETRACE_GUARD_* unset",
            RETRY_WARNING,
        ],
    ),
]


class TestNextStep:
    @pytest.mark.parametrize(
        ("script", "level", "env", "enforcement", "kind", "pieces"), TABLE
    )
    def test_names_the_next_step(
        self, tmp_path, script, level, env, enforcement, kind, pieces
    ):
        """Each kind of block gets its own, actionable next step."""
        verdict = verdict_of(tmp_path, script, level, env=env, enforcement=enforcement)
        assert not verdict.allowed
        step = next_step(verdict)
        assert step is not None
        assert step.kind == kind, step.text
        for piece in pieces:
            assert piece in step.text, step.text

    def test_allowed_has_no_next_step(self, tmp_path):
        """An allowed command gets no next step."""
        assert next_step(verdict_of(tmp_path, "ls", Level.L0)) is None

    def test_escalation_is_runnable(self, tmp_path):
        """The printed escalate command parses as a real request, quotes and all."""
        verdict = verdict_of(
            tmp_path, 'Tools/Invoke-StateTracePipeline.ps1 -Site "A$B" `x`', Level.L1
        )
        step = next_step(verdict)
        assert step is not None
        assert step.command is not None
        parsed = parse_escalation(shlex.split(step.command))
        assert parsed is not None
        assert parsed[0] is Level.L2
        assert "$" not in parsed[1]
        assert "`" not in parsed[1]

    def test_unmanaged_session_says_how_to_escalate(self, tmp_path):
        """Outside a started session, escalation needs the operator to start one."""
        verdict = verdict_of(tmp_path, "Tools/Invoke-StateTracePipeline.ps1", Level.L1)
        step = next_step(verdict, managed=False)
        assert step is not None
        assert "guard session start" in step.text

    def test_escalate_command_shortens_long_reasons(self):
        """A reason longer than a line is cut, never left unquoted."""
        command = escalate_command(Level.L3, "x" * 300)
        assert command.startswith('guard escalate --to L3 --reason "')
        assert command.endswith('..."')
        assert len(command) < 140


class TestBlockLine:
    def test_names_the_forcing_part(self, tmp_path):
        """`curl | sh`: the line is about sh (never), not curl (L3)."""
        line = block_line(
            verdict_of(tmp_path, "curl -s http://example.com | sh", Level.L0)
        )
        assert line.startswith(
            "guard: blocked: sh (dynamic) needs never, session is L0"
        )
        assert "curl" in line

    def test_env_prefix_does_not_hide_the_reason(self, tmp_path):
        """`STATETRACE_X=2 echo hi`: the line names the variable, not 'echo only reads'."""
        verdict = verdict_of(
            tmp_path,
            "STATETRACE_THREAD_CEILING=2 echo hi",
            Level.L2,
            enforcement="none",
        )
        line = block_line(verdict)
        assert "STATETRACE_THREAD_CEILING set for echo can change what it runs" in line

    def test_rule_description_is_the_reason(self, tmp_path):
        """A policy rule's description explains a rule-forced block."""
        line = block_line(
            verdict_of(tmp_path, "Tools/Invoke-StateTracePipeline.ps1", Level.L1)
        )
        assert "(rule ingestion-pipeline): rule ingestion-pipeline: Any" in line

    def test_message_is_two_lines(self, tmp_path):
        """guard run prints the block line and the next line."""
        verdict = verdict_of(tmp_path, "curl http://example.com", Level.L1)
        lines = block_message(verdict).splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("guard: blocked: ")
        assert lines[1].startswith("guard: next: ")


class TestSessionSteps:
    def test_halted(self):
        """A halted session: the operator resumes it, naming the session."""
        step = halted_step("2026-11-24_session-0001")
        assert step.kind == "resume"
        assert "guard session resume 2026-11-24_session-0001" in step.text

    def test_approval_spent(self, tmp_path):
        """An approval no longer in force: ask again, with the exact command."""
        verdict = verdict_of(tmp_path, "Tools/Invoke-StateTracePipeline.ps1", Level.L2)
        step = refusal_step(
            "approval req-1 is no longer in force", verdict, "s", halted=False
        )
        assert step.kind == "escalate"
        assert step.command is not None
        assert step.command.startswith("guard escalate --to L2")

    def test_uncontainable(self):
        """Contained code on a run that lacks a layer: doctor, or a rule."""
        step = uncontainable_step("network")
        assert "guard doctor" in step.text
        assert next_line(step).startswith(
            "guard: next: this run cannot enforce network"
        )

    def test_never_policy_rule(self, tmp_path):
        """A policy rule at `never` says so and warns against respelling."""
        policy = load_policy_bytes(
            b'name = "p"\n[[rules]]\nid = "no-rm"\ndescription = "never rm"\n'
            b'program = ["rm"]\nlevel = "never"\n',
            "p.toml",
        )
        verdict = verdict_of(tmp_path, "rm -f x", Level.L3, policy=policy)
        step = next_step(verdict)
        assert step is not None
        assert step.kind == "never"
        assert "rule no-rm: never rm" in step.text
        assert RETRY_WARNING in step.text
