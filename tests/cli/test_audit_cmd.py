"""guard verify and guard log through click."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from click.testing import CliRunner

from statetrace_guard.audit.trail import CommandFacts, Trail, session_path
from statetrace_guard.cli import main
from statetrace_guard.paths import guard_home


def facts(argv, **changes) -> CommandFacts:
    values: dict[str, Any] = {
        "session_id": "s1",
        "task_id": "ST-1",
        "level": "L1",
        "argv": tuple(argv),
        "cwd": "/w",
        "pid": 1,
        "effects": ("read",),
        "decision": "allow",
        "reasons": (),
        "rules": (),
        "policy_sha256": "0" * 64,
        "network": False,
        "urls": (),
        "env": {},
    }
    values.update(changes)
    return CommandFacts(**values)


@pytest.fixture
def logs(tmp_path):
    log_dir = tmp_path / "Logs"
    trail = Trail(log_dir, "s1", front="direct")
    ok = facts(["pytest", "-q"])
    trail.started(ok, {})
    trail.finished(ok, {"exit_code": 0, "duration_ms": 1200})
    trail.blocked(
        facts(
            ["curl", "https://example.com"],
            decision="block",
            effects=("network",),
            network=True,
            urls=("https://example.com",),
            reasons=("needs L3",),
        )
    )
    return log_dir


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class TestVerify:
    def test_intact_exit_0(self, logs):
        """Every file intact: one ok line per file, exit 0."""
        result = invoke("verify", "--log-dir", str(logs))
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) == 2
        assert all(": ok (" in line for line in lines)

    def test_default_log_dir_from_workspace(self, logs, monkeypatch):
        """Without PATH or --log-dir, Logs/ at the workspace root is checked."""
        (logs.parent / ".git").mkdir()
        monkeypatch.chdir(logs.parent)
        assert invoke("verify").exit_code == 0

    def test_tampered_exit_1(self, logs):
        """An edited record: exit 1 and the bad line named."""
        path = session_path(logs, "s1")
        path.write_bytes(path.read_bytes().replace(b"pytest", b"pwtest"))
        result = invoke("verify", str(path))
        assert result.exit_code == 1
        assert f"{path}:2:" in result.stdout

    def test_unreadable_exit_4(self, tmp_path):
        """A file that cannot be read: exit 4."""
        result = invoke("verify", str(tmp_path / "missing.jsonl"))
        assert result.exit_code == 4
        assert "error:" in result.stderr

    def test_anchor_and_expect(self, logs):
        """--anchor prints heads; --expect catches a truncated tail."""
        path = session_path(logs, "s1")
        head = invoke("verify", "--anchor", str(path)).stdout.split()[0]
        assert len(head) == 64
        assert invoke("verify", "--expect", head, str(path)).exit_code == 0
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:-1]))
        # guard's home anchors every log's head itself ...
        assert invoke("verify", str(path)).exit_code == 1
        # ... and elsewhere only the head the operator kept shows the cut.
        shutil.rmtree(guard_home() / "heads")
        assert invoke("verify", str(path)).exit_code == 0
        result = invoke("verify", "--expect", head, str(path))
        assert result.exit_code == 1
        assert "anchor" in result.stdout

    def test_expect_file(self, logs, tmp_path):
        """Anchors saved with --anchor are checked with --expect-file."""
        anchors = tmp_path / "anchors.txt"
        anchors.write_text(invoke("verify", "--anchor", "--log-dir", str(logs)).stdout)
        assert invoke("verify", "--expect-file", str(anchors), str(logs)).exit_code == 0
        missing = invoke("verify", "--expect-file", str(tmp_path / "nope"), str(logs))
        assert missing.exit_code == 2

    def test_expect_needs_one_file(self, logs):
        """--expect with a directory is a usage error."""
        assert invoke("verify", "--expect", "0" * 64, str(logs)).exit_code == 2

    def test_json(self, logs):
        """--json prints one object per file."""
        result = invoke("verify", "--json", str(logs))
        assert [json.loads(line)["ok"] for line in result.stdout.splitlines()] == [
            True,
            True,
        ]

    def test_no_files(self, tmp_path):
        """An empty log directory: nothing to check, exit 0 with a note."""
        result = invoke("verify", "--log-dir", str(tmp_path))
        assert result.exit_code == 0
        assert "no log files" in result.stderr


def rows_of(result):
    """The table's lines without its header row."""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("TIME ")
    return lines[1:]


class TestLog:
    def test_listing(self, logs):
        """A header row, one line per command; blocked marked with the reason."""
        result = invoke("log", "--log-dir", str(logs))
        lines = rows_of(result)
        assert result.exit_code == 0
        assert len(lines) == 2
        assert "pytest -q" in lines[0]
        assert "BLOCK" in lines[1]
        assert lines[1].endswith("<- needs L3")

    def test_filters_and_json(self, logs):
        """--decision and --json give one object per matching row, with its record."""
        result = invoke("log", "--log-dir", str(logs), "--decision", "block", "--json")
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [r["record"]["event"] for r in rows] == ["command.blocked"]
        assert rows[0]["reason"] == "needs L3"
        assert rows[0]["schema_version"] == 1
        listing = invoke(
            "log", "--log-dir", str(logs), "--since", "1h", "--session", "s1"
        )
        assert len(rows_of(listing)) == 2

    def test_csv(self, logs):
        """--format csv: a header and one line per row."""
        result = invoke("log", "--log-dir", str(logs), "--format", "csv")
        lines = result.stdout.splitlines()
        assert lines[0].startswith("ts,session_id,level,row,event")
        assert len(lines) == 3
        assert lines[2].endswith(",needs L3")

    def test_bad_time(self, logs):
        """An unparseable --since is a usage error."""
        assert invoke("log", "--log-dir", str(logs), "--since", "soon").exit_code == 2

    def test_malformed_line_reported(self, logs):
        """A malformed line is reported on stderr and the listing continues."""
        path = session_path(logs, "s1")
        with path.open("ab") as handle:
            handle.write(b"oops\n")
        result = invoke("log", "--log-dir", str(logs))
        assert result.exit_code == 0
        assert f"{path}:5:" in result.stderr
        assert len(rows_of(result)) == 2

    def test_summary(self, logs):
        """The summary names blocked reasons and hosts."""
        result = invoke("log", "--log-dir", str(logs), "summary")
        assert result.exit_code == 0
        assert "needs L3" in result.stdout
        assert "example.com" in result.stdout

    def test_summary_json_and_session(self, logs):
        """summary --json, with --session before or after the subcommand."""
        for args in (
            ("log", "--log-dir", str(logs), "--session", "s1", "summary", "--json"),
            ("log", "--log-dir", str(logs), "summary", "--session", "s1", "--json"),
        ):
            payload = json.loads(invoke(*args).stdout)
            assert payload["blocked"] == [
                {
                    "command": "curl https://example.com",
                    "deciding_reason": "needs L3",
                    "count": 1,
                }
            ]

    def test_tail(self, logs):
        """tail shows the newest records."""
        result = invoke("log", "--log-dir", str(logs), "tail", "-n", "2")
        assert result.exit_code == 0
        assert len(result.stdout.splitlines()) == 2
        assert "BLOCK" in result.stdout

    def test_tail_takes_the_filters(self, logs):
        """--decision before tail filters the records tail shows."""
        result = invoke("log", "--log-dir", str(logs), "--decision", "allow", "tail")
        assert result.exit_code == 0
        assert "BLOCK" not in result.stdout
        assert "pytest" in result.stdout
        records = invoke("log", "--log-dir", str(logs), "tail", "--json", "-n", "1")
        assert json.loads(records.stdout)["event"] == "command.blocked"

    def test_empty_log_dir(self, tmp_path):
        """No sessions: a header only; tail says so."""
        assert rows_of(invoke("log", "--log-dir", str(tmp_path))) == []
        assert "no sessions" in invoke("log", "--log-dir", str(tmp_path), "tail").stderr


class TestLogErrors:
    """A filter naming what is not there is an error, never an empty listing."""

    @pytest.mark.parametrize(
        "args",
        [
            ("--session", "nope"),
            ("--session", "nope", "summary"),
            ("--session", "nope", "tail"),
            ("summary", "--session", "nope"),
            ("tail", "--session", "nope"),
            ("--effect", "bogus"),
            ("--decision", "maybe"),
            ("--decision", "maybe", "tail"),
            ("--session", "s1", "summary", "--session", "s2"),
            ("--format", "csv", "summary"),
        ],
    )
    def test_usage_errors_exit_2(self, logs, args):
        result = invoke("log", "--log-dir", str(logs), *args)
        assert result.exit_code == 2, result.output
        assert result.stdout == ""

    @pytest.mark.parametrize("sub", [(), ("summary",), ("tail",)])
    def test_missing_log_dir_exit_4(self, tmp_path, sub):
        result = invoke("log", "--log-dir", str(tmp_path / "nonexistent"), *sub)
        assert result.exit_code == 4
        assert "no log directory" in result.stderr
        assert "hint:" in result.stderr

    def test_missing_session_names_known_ones(self, logs):
        result = invoke("log", "--log-dir", str(logs), "--session", "s9")
        assert "no session s9" in result.stderr
        assert "s1" in result.stderr


def test_unreadable_prints_hint(tmp_path):
    """The error comes with a hint."""
    result = invoke("verify", str(tmp_path / "missing.jsonl"))
    assert "hint:" in result.stderr


def test_tail_reports_malformed_line(logs):
    """tail names a malformed line instead of stopping."""
    path = session_path(logs, "s1")
    with path.open("ab") as handle:
        handle.write(b"oops\n")
    result = invoke("log", "--log-dir", str(logs), "tail", "-n", "1")
    assert f"{path}:5:" in result.stderr


def test_tail_follow_prints_new_records(logs):
    """tail -f prints records appended after it started."""
    import queue  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import threading  # noqa: PLC0415

    code = "from statetrace_guard.cli import main; main()"
    argv = [sys.executable, "-c", code, "log", "--log-dir", str(logs), "tail", "-f"]
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [*argv, "-n", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            trail = Trail(logs, "s1", front="direct")
            for _ in range(40):  # keep appending until the follower shows one
                trail.event("session.note", {"text": "hello"})
                try:
                    assert "session.note" in lines.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            else:
                raise AssertionError("tail -f printed nothing")
        finally:
            proc.kill()
