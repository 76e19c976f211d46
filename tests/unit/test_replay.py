"""Replay core: reading session logs, verifying chains, re-judging, comparing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import statetrace_guard.replay as replay_module
from statetrace_guard.audit.trail import CommandFacts, Trail, session_path
from statetrace_guard.audit.verify import verify_file
from statetrace_guard.errors import AuditError
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import OPT_IN_NET, Level
from statetrace_guard.policy import load_policy
from statetrace_guard.replay import (
    SESSION_BLOCK_NOTE,
    SESSION_RULE,
    Change,
    RecordedCommand,
    Replayer,
    ReplayResult,
    ReplaySettings,
    Summary,
    read_session,
    records_to_commands,
    summarize,
)

SESSION = "2026-01-31_session-0001"
POLICY = load_policy(None)


class Recorder:
    """Writes a real chained session log the way ``guard run`` does."""

    def __init__(self, workspace: Path, session: str = SESSION) -> None:
        self.workspace = workspace
        self.log_dir = workspace / "Logs"
        self.trail = Trail(self.log_dir, session, front="direct")
        self.session = session

    @property
    def path(self) -> Path:
        return session_path(self.log_dir, self.session)

    def facts(
        self,
        argv: tuple[str, ...],
        level: Level = Level.L1,
        env: dict[str, str] | None = None,
        **override: Any,
    ) -> CommandFacts:
        """Facts judged now, with any field overridden (a 'recorded' drift)."""
        place = make_place(
            self.workspace, self.workspace, self.log_dir, None, env or {}
        )
        verdict = evaluate(argv, level, POLICY, place).verdict
        fields: dict[str, Any] = {
            "session_id": self.session,
            "task_id": None,
            "level": level.name,
            "argv": argv,
            "cwd": str(self.workspace),
            "pid": 4242,
            "effects": tuple(sorted(e.value for e in verdict.effects)),
            "decision": verdict.decision.label,
            "reasons": verdict.reasons,
            "rules": verdict.rules,
            "policy_sha256": POLICY.sha256,
            "network": False,
            "urls": (),
            "env": {OPT_IN_NET: (env or {}).get(OPT_IN_NET)},
            "required_level": None
            if verdict.required_level is None
            else verdict.required_level.name,
        }
        fields.update(override)
        return CommandFacts(**fields)

    def ran(self, facts: CommandFacts, exit_code: int = 0) -> None:
        self.trail.started(facts, {})
        self.trail.finished(
            facts, {"exit_code": exit_code, "signal": None, "duration_ms": 1.0}
        )

    def blocked(self, facts: CommandFacts) -> None:
        self.trail.blocked(facts)

    def record(self, argv: tuple[str, ...], **kwargs: Any) -> None:
        facts = self.facts(argv, **kwargs)
        if facts.decision == "allow":
            self.ran(facts)
        else:
            self.blocked(facts)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return Recorder(workspace)


def replay(path: Path, **settings: Any) -> ReplayResult:
    commands = read_session(path)
    return Replayer(ReplaySettings(POLICY, **settings)).replay(commands)


class TestReadSession:
    def test_one_command_per_started_or_blocked_record(self, recorder):
        """Started and blocked records become commands, finished ones pair up."""
        recorder.ran(recorder.facts(("ls", "-la")), exit_code=3)
        recorder.blocked(recorder.facts(("curl", "http://example.com")))
        commands = read_session(recorder.path)
        assert [c.argv for c in commands] == [
            ("ls", "-la"),
            ("curl", "http://example.com"),
        ]
        assert commands[0].exit_status == 3
        assert commands[1].exit_status is None
        assert commands[1].decision == "block"
        assert commands[0].session_id == SESSION
        assert commands[0].seq == 1

    def test_signal_gives_128_plus_n(self):
        """A finished record with a signal and no exit code reads as 128+N."""
        base = {"argv": ["sleep", "9"], "pid": 1, "level": "L1", "decision": "allow"}
        records = [
            (2, {**base, "event": "command.started"}),
            (3, {**base, "event": "command.finished", "exit_code": None, "signal": 9}),
        ]
        (command,) = records_to_commands(records, "x.jsonl")
        assert command.exit_status == 137

    def test_pairs_interleaved_processes_by_pid(self):
        """Two guards writing one session at once are paired by pid and argv."""
        a = {"argv": ["make"], "pid": 1, "level": "L1", "decision": "allow"}
        b = {"argv": ["make"], "pid": 2, "level": "L1", "decision": "allow"}
        records = [
            (2, {**a, "event": "command.started"}),
            (3, {**b, "event": "command.started"}),
            (4, {**b, "event": "command.finished", "exit_code": 2}),
            (5, {**a, "event": "command.finished", "exit_code": 0}),
        ]
        commands = records_to_commands(records, "x.jsonl")
        assert [c.exit_status for c in commands] == [0, 2]

    def test_skips_malformed_command_records(self):
        """Records without argv, with a bad level or decision are skipped."""
        records: list[tuple[int, dict[str, Any]]] = [
            (1, {"event": "command.blocked", "argv": [], "level": "L1"}),
            (2, {"event": "command.blocked", "argv": ["ls"], "level": "L9"}),
            (3, {"event": "command.blocked", "argv": ["ls"], "level": "L1"}),
            (
                4,
                {
                    "event": "command.blocked",
                    "argv": [1],
                    "level": "L1",
                    "decision": "block",
                },
            ),
            (5, {"event": "session.started", "argv": ["ls"]}),
        ]
        assert records_to_commands(records, "x") == []

    def test_missing_required_level_is_not_compared(self):
        """Older records without required_level compare the other fields only."""
        record = {
            "event": "command.blocked",
            "argv": ["ls"],
            "level": "L1",
            "decision": "block",
        }
        (command,) = records_to_commands([(1, record)], "x")
        assert "required_level" not in command.compared

    def test_recorded_env_keeps_set_variables_only(self, recorder):
        """The opt-in variables as seen: unset (null) ones are dropped."""
        recorder.record(("ls",), env={OPT_IN_NET: "1"})
        recorder.record(("ls",))
        first, second = read_session(recorder.path)
        assert first.env == ((OPT_IN_NET, "1"),)
        assert second.env == ()


class TestVerify:
    def test_intact_log_reads(self, recorder):
        """An intact log is read and agrees with guard verify."""
        recorder.record(("ls",))
        assert verify_file(recorder.path).ok
        assert len(read_session(recorder.path)) == 1

    def test_refuses_a_tampered_line_naming_it(self, recorder):
        """An edited record is refused with the file and line named."""
        recorder.record(("ls",))
        recorder.record(("cat", "README.md"))
        lines = recorder.path.read_text().splitlines(keepends=True)
        lines[3] = lines[3].replace("README.md", "secrets.md")
        recorder.path.write_text("".join(lines))
        with pytest.raises(AuditError) as caught:
            read_session(recorder.path)
        assert f"{recorder.path}:4:" in caught.value.message
        assert caught.value.exit_code == 4

    def test_no_verify_reads_a_broken_log(self, recorder):
        """--no-verify reads what it can and skips lines that are not JSON."""
        recorder.record(("ls",))
        with recorder.path.open("a") as stream:
            stream.write("garbage\n")
        with pytest.raises(AuditError):
            read_session(recorder.path)
        assert len(read_session(recorder.path, verify=False)) == 1

    def test_refuses_deleted_and_reordered_lines(self, recorder):
        """Deleting or swapping records breaks the chain."""
        for word in ("a", "b", "c"):
            recorder.record(("echo", word))
        lines = recorder.path.read_bytes().splitlines(keepends=True)
        for broken in (
            lines[:2] + lines[3:],
            [lines[0], lines[2], lines[1], *lines[3:]],
        ):
            recorder.path.write_bytes(b"".join(broken))
            with pytest.raises(AuditError):
                read_session(recorder.path)

    def test_refuses_empty_and_torn_files(self, recorder):
        """An empty file or a torn last line is not an intact log."""
        recorder.record(("ls",))
        data = recorder.path.read_bytes()
        for broken in (b"", data[:-1], data + b'{"event":'):
            recorder.path.write_bytes(broken)
            with pytest.raises(AuditError):
                read_session(recorder.path)

    def test_unreadable_file_is_an_audit_error(self, tmp_path):
        """A missing file is exit 4, not a traceback."""
        with pytest.raises(AuditError):
            read_session(tmp_path / "missing.jsonl")

    def test_every_byte_flip_is_caught_like_guard_verify(self, recorder):
        """Flipping any byte fails replay's fast check exactly when verify fails."""
        recorder.record(("ls",))
        recorder.record(("curl", "http://example.com"))
        data = recorder.path.read_bytes()
        for index in range(0, len(data), 3):
            tampered = bytearray(data)
            tampered[index] ^= 0x01
            recorder.path.write_bytes(bytes(tampered))
            assert not verify_file(recorder.path).ok
            with pytest.raises(AuditError):
                read_session(recorder.path)

    def test_json_that_is_not_an_object_is_refused(self, recorder):
        """A line holding a JSON array is not a record."""
        recorder.record(("ls",))
        with recorder.path.open("a") as stream:
            stream.write("[1, 2]\n")
        with pytest.raises(AuditError):
            read_session(recorder.path)

    def test_replay_and_verify_name_the_same_line(self, recorder):
        """One chain verifier: replay refuses at the line guard verify names."""
        recorder.record(("ls",))
        recorder.record(("cat", "a"))
        data = recorder.path.read_bytes()
        for index in range(0, len(data), 7):
            tampered = bytearray(data)
            tampered[index] ^= 0x04
            recorder.path.write_bytes(bytes(tampered))
            report = verify_file(recorder.path)
            with pytest.raises(AuditError) as caught:
                read_session(recorder.path)
            assert f":{report.verdict.error_line}:" in caught.value.message

    def test_non_canonical_but_equal_line_is_refused(self, recorder):
        """A record re-serialised with spaces is refused (not canonical)."""
        recorder.record(("ls",))
        lines = recorder.path.read_text().splitlines()
        lines[1] = json.dumps(json.loads(lines[1]), sort_keys=True)
        recorder.path.write_text("\n".join(lines) + "\n")
        with pytest.raises(AuditError):
            read_session(recorder.path)


class TestReplay:
    def test_unchanged_session(self, recorder):
        """A session replayed under the policy it was recorded with is unchanged."""
        recorder.record(("ls", "-la"))
        recorder.record(("curl", "http://example.com"))
        recorder.record(("bash", "-c", "git status --short | grep -c M"))
        result = replay(recorder.path)
        assert result.summary.line() == (
            "3 commands, 3 unchanged, 0 now blocked, 0 now allowed"
        )
        assert not result.summary.gated("any")

    def test_now_blocked_and_now_allowed(self, recorder):
        """A recorded allow that is blocked now, and the reverse, are reported."""
        recorder.ran(
            recorder.facts(
                ("curl", "http://example.com"),
                decision="allow",
                required_level="L1",
                rules=("effect:read",),
            )
        )
        recorder.blocked(
            recorder.facts(
                ("ls",), decision="block", required_level=None, rules=("old-deny",)
            )
        )
        result = replay(recorder.path)
        changes = [row.change for row in result.rows]
        assert changes == [Change.NOW_BLOCKED, Change.NOW_ALLOWED]
        first = result.rows[0]
        assert first.fields == ("decision", "required_level", "rules")
        assert first.now.required_level == "L3"
        assert first.now.why is not None
        assert "curl" in first.now.why
        assert result.summary.line() == (
            "2 commands, 0 unchanged, 1 now blocked, 1 now allowed"
        )

    def test_session_block_is_not_policy_drift(self, recorder):
        """A command the policy allowed but the session gate blocked is unchanged."""
        facts = recorder.facts(("ls",))
        recorder.blocked(
            recorder.facts(
                ("ls",),
                decision="block",
                rules=(*facts.rules, SESSION_RULE),
                reasons=(*facts.reasons, "session is halted"),
            )
        )
        (row,) = replay(recorder.path).rows
        assert row.change is Change.UNCHANGED
        assert row.note == SESSION_BLOCK_NOTE
        assert row.recorded.decision == "allow"
        assert row.as_json()["note"] == SESSION_BLOCK_NOTE

    def test_session_block_now_blocked_by_policy(self, recorder):
        """If the policy now blocks what only the session blocked, that is drift."""
        recorder.blocked(
            recorder.facts(
                ("curl", "http://example.com"),
                decision="block",
                required_level="L1",
                effects=("read",),
                rules=("effect:read", SESSION_RULE),
            )
        )
        (row,) = replay(recorder.path).rows
        assert row.change is Change.NOW_BLOCKED
        assert row.note == SESSION_BLOCK_NOTE

    def test_plain_block_without_session_rule_is_compared(self, recorder):
        """A block without the session rule is the policy's and is compared."""
        recorder.blocked(recorder.facts(("ls",), decision="block"))
        (row,) = replay(recorder.path).rows
        assert row.change is Change.NOW_ALLOWED
        assert row.note is None

    def test_changed_without_decision(self, recorder):
        """A moved rule or effect with the same decision counts as changed."""
        recorder.record(("ls",), rules=("old-rule",), effects=("read", "write"))
        result = replay(recorder.path)
        (row,) = result.rows
        assert row.change is Change.CHANGED
        assert row.fields == ("effects", "rules")
        assert result.summary.line().endswith(", 1 changed otherwise")

    def test_level_override(self, recorder):
        """--level judges every command at that level instead of the recorded one."""
        recorder.record(("bash", "-c", "echo hi > out.txt"))
        assert replay(recorder.path).summary.unchanged == 1
        result = replay(recorder.path, level=Level.L0)
        assert result.rows[0].change is Change.NOW_BLOCKED

    def test_recorded_opt_in_is_used(self, recorder):
        """An L3 download recorded with the opt-in stays allowed on replay."""
        recorder.record(
            ("curl", "-o", "x.bin", "https://files.pythonhosted.org/x"),
            level=Level.L3,
            env={OPT_IN_NET: "1"},
        )
        recorder.record(
            ("curl", "-o", "x.bin", "https://files.pythonhosted.org/x"), level=Level.L3
        )
        result = replay(recorder.path)
        assert [row.now.decision for row in result.rows] == ["allow", "block"]
        assert result.summary.unchanged == 2

    def test_write_to_log_dir_is_judged_against_the_recorded_log_dir(self, recorder):
        """A blocked write into Logs/Sessions keeps its self-protect rule."""
        recorder.record(("bash", "-c", "echo x > Logs/Sessions/fake.jsonl"))
        result = replay(recorder.path)
        assert "self-protect" in result.rows[0].now.rules
        assert result.summary.unchanged == 1

    def test_replays_after_the_workspace_is_gone(self, recorder, tmp_path):
        """A golden session replays the same once its workspace was deleted."""
        recorder.record(("bash", "-c", "echo x > Logs/Sessions/fake.jsonl"))
        recorder.record(("bash", "-c", "echo x > notes.txt"))
        recorder.record(("touch", "/etc/passwd"))
        kept = tmp_path / "kept.jsonl"
        kept.write_bytes(recorder.path.read_bytes())
        shutil.rmtree(recorder.workspace)
        result = replay(kept)
        assert result.summary.unchanged == 3
        assert "self-protect" in result.rows[0].now.rules

    def test_judgements_are_reused(self, recorder, monkeypatch):
        """Identical commands are judged once per replay."""
        for _ in range(5):
            recorder.record(("ls",))
        calls = []
        real = evaluate

        def counting(*args):
            calls.append(args[0])
            return real(*args)

        monkeypatch.setattr(replay_module, "evaluate", counting)
        assert replay(recorder.path).summary.unchanged == 5
        assert len(calls) == 1

    def test_parallel_judging_gives_the_same_rows(self, recorder, monkeypatch):
        """Forked workers judge distinct commands exactly as the serial path."""
        for index in range(12):
            recorder.record(("cat", f"file{index}.txt"))
            recorder.record(("curl", f"http://example.com/{index}"))
        commands = read_session(recorder.path)
        serial = Replayer(ReplaySettings(POLICY)).replay(commands)
        monkeypatch.setattr(replay_module, "PARALLEL_FROM", 2)
        monkeypatch.setattr(replay_module, "_CHUNK", 5)
        parallel = Replayer(ReplaySettings(POLICY)).replay(commands, workers=2)
        assert parallel.rows == serial.rows
        assert parallel.summary.unchanged == 24

    def test_prefetch_while_reading(self, recorder, monkeypatch):
        """Commands offered while reading are judged by workers and cached."""
        for index in range(10):
            recorder.record(("cat", f"file{index}.txt"))
        monkeypatch.setattr(replay_module, "PARALLEL_FROM", 2)
        monkeypatch.setattr(replay_module, "_CHUNK", 3)
        replayer = Replayer(ReplaySettings(POLICY))
        with replayer.prefetching(2) as offer:
            commands = read_session(recorder.path, sink=offer)
        assert all(replayer.known(replayer.key_of(c)) for c in commands)
        result = replayer.replay(commands)
        assert result.summary.unchanged == 10

    def test_prefetch_stops_workers_on_a_broken_log(self, recorder, monkeypatch):
        """A chain error while reading ends the workers and propagates."""
        for index in range(10):
            recorder.record(("cat", f"file{index}.txt"))
        with recorder.path.open("a") as stream:
            stream.write("not json\n")
        monkeypatch.setattr(replay_module, "PARALLEL_FROM", 2)
        monkeypatch.setattr(replay_module, "_CHUNK", 3)
        replayer = Replayer(ReplaySettings(POLICY))
        with pytest.raises(AuditError), replayer.prefetching(2) as offer:
            read_session(recorder.path, sink=offer)

    def test_prefetch_below_threshold_starts_no_workers(self, recorder):
        """Few distinct commands are left to the serial path."""
        recorder.record(("ls",))
        replayer = Replayer(ReplaySettings(POLICY))
        with replayer.prefetching(2) as offer:
            (command,) = read_session(recorder.path, sink=offer)
        assert not replayer.known(replayer.key_of(command))
        assert replayer.judge(command).decision == "allow"

    def test_progress_is_reported(self):
        """The progress callback sees every 10,000th command."""
        command = RecordedCommand(
            source="x",
            line=1,
            argv=("ls",),
            level=Level.L1,
            cwd="/tmp",
            decision="allow",
            compared=("decision",),
        )
        seen: list[int] = []
        Replayer(ReplaySettings(POLICY)).replay([command] * 20_001, seen.append)
        assert seen == [10_000, 20_000]

    def test_transcript_env_applies_when_none_recorded(self):
        """Settings env stands in for commands that carry no env."""
        command = RecordedCommand(
            source="x",
            line=1,
            argv=("curl", "https://pypi.org/simple/"),
            level=Level.L3,
            cwd="/tmp",
            decision="allow",
            compared=("decision",),
        )
        with_opt_in = Replayer(ReplaySettings(POLICY, env={OPT_IN_NET: "1"}))
        assert with_opt_in.row(command).change is Change.UNCHANGED
        assert Replayer(ReplaySettings(POLICY)).row(command).change is (
            Change.NOW_BLOCKED
        )


class TestSummary:
    @pytest.mark.parametrize(
        ("summary", "fail_on", "expected"),
        [
            (Summary(3, 3, 0, 0, 0), "any", False),
            (Summary(3, 2, 1, 0, 0), "any", True),
            (Summary(3, 2, 1, 0, 0), "allowed", False),
            (Summary(3, 2, 1, 0, 0), "blocked", True),
            (Summary(3, 2, 0, 1, 0), "blocked", False),
            (Summary(3, 2, 0, 1, 0), "allowed", True),
            (Summary(3, 2, 0, 0, 1), "any", True),
            (Summary(3, 2, 0, 0, 1), "blocked", False),
        ],
    )
    def test_gated(self, summary, fail_on, expected):
        """--fail-on gates on its direction only."""
        assert summary.gated(fail_on) is expected

    def test_summarize_empty(self):
        """No rows, no changes."""
        assert summarize([]).line() == (
            "0 commands, 0 unchanged, 0 now blocked, 0 now allowed"
        )

    def test_json_forms(self, recorder):
        """Rows and the summary carry schema_version and both sides."""
        recorder.record(("ls",))
        result = replay(recorder.path)
        row = result.rows[0].as_json()
        assert row["schema_version"] == 1
        assert row["recorded"]["decision"] == row["now"]["decision"] == "allow"
        assert row["recorded"]["exit_status"] == 0
        assert result.summary.as_json()["commands"] == 1

    def test_json_keys_are_frozen(self, recorder):
        """The --json row and summary keys are a contract CI tooling parses."""
        recorder.record(("ls",))
        result = replay(recorder.path)
        row = result.rows[0].as_json()
        assert set(row) == {
            "schema_version",
            "kind",
            "source",
            "line",
            "seq",
            "session_id",
            "argv",
            "cwd",
            "level",
            "change",
            "changed",
            "note",
            "recorded",
            "now",
        }
        assert set(row["recorded"]) == {
            "decision",
            "required_level",
            "effects",
            "rules",
            "exit_status",
        }
        assert set(row["now"]) == {
            "decision",
            "required_level",
            "effects",
            "rules",
            "reasons",
            "why",
        }
        assert set(result.summary.as_json()) == {
            "schema_version",
            "kind",
            "commands",
            "unchanged",
            "now_blocked",
            "now_allowed",
            "changed",
            "summary",
        }
