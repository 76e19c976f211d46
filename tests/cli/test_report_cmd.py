"""guard report without a browser: its data, its options and its errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from statetrace_guard.audit.trail import CommandFacts, Trail
from statetrace_guard.cli import main
from statetrace_guard.report.page import DATA_ELEMENT_ID

GOLDEN = Path(__file__).resolve().parents[2] / "examples" / "sessions"
# Golden session ids change when the examples are regenerated: read the index.
GOLDEN_IDS = {
    name: entry["session_id"]
    for name, entry in json.loads((GOLDEN / "index.json").read_text()).items()
}
SID = "2026-12-01_session-0001"


def invoke(*args: str):
    return CliRunner().invoke(main, ["report", *args])


def facts(argv, **changes: Any) -> CommandFacts:
    values: dict[str, Any] = {
        "session_id": SID,
        "task_id": "ST-A-001",
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
def future_log(tmp_path) -> Path:
    """A session carrying records other workstreams are adding now."""
    log_dir = tmp_path / "Logs"
    trail = Trail(log_dir, SID, front="direct")
    trail.event(
        "session.started", {"level": "L1", "task_ids": ["ST-A-001"], "plan": "p.md"}
    )
    ok = facts(["pytest", "-q"], rules=("pytest",), contained=True)
    trail.started(ok, {"network": "netns", "seccomp": "on", "pid": "ns"})
    outcome = {"exit_code": 1, "duration_ms": 900, "mac": "ab" * 32}
    trail.finished(ok, outcome)
    trail.event(
        "file.edited",
        {
            "tool": "Write",
            "paths": ["src/app.py"],
            "bytes": 12,
            "content_sha256": "c" * 64,
        },
    )
    trail.event("job.started", {"job_id": "job-1", "argv": ["npm", "run", "dev"]})
    trail.event("job.ended", {"job_id": "job-1", "exit_code": 0})
    trail.event("something.new", {"anything": [1, 2]})
    netops = log_dir / "NetOps"
    netops.mkdir(parents=True)
    connection = {
        "event": "netops",
        "Timestamp": "2026-12-01T09:00:00.000Z",
        "SessionId": SID,
        "Action": "connect",
        "Program": "curl",
        "host": "pypi.org",
        "port": 443,
        "bytes_up": 500,
        "bytes_down": 9000,
        "Result": {"Status": "allowed", "DurationMs": 40},
    }
    (netops / "2026-12-01.json").write_text(json.dumps(connection) + "\n")
    return log_dir


def data(log_dir: Path, *args: str) -> dict[str, Any]:
    result = invoke("--log-dir", str(log_dir), "--json", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


class TestData:
    @pytest.mark.parametrize(
        ("own", "result"), [(1, "FAIL"), (0, "PASS"), (None, "UNKNOWN")]
    )
    def test_masked_test_run_takes_the_programs_own_status(self, tmp_path, own, result):
        """`pytest | tail -1` exiting 0: the recorded test_programs decide (19.4)."""
        log_dir = tmp_path / "Logs"
        trail = Trail(log_dir, SID, front="direct")
        run = facts(["bash", "-c", "pytest -q | tail -1"], rules=("pytest",))
        trail.started(run, {})
        seen = [{"program": "pytest", "exit_code": own, "signal": None}]
        tests = {"runs": seen if own is not None else [], "unread": 0}
        tests["unobserved"] = None if own is not None else "not root"
        trail.finished(run, {"exit_code": 0, "duration_ms": 5, "test_programs": tests})
        [command] = data(log_dir, "--no-verify")["commands"]
        assert command["test"]["result"] == result

    def test_tolerates_what_others_add(self, future_log):
        """contained, enforcement layers, mac, edits, jobs, connections, new events."""
        found = data(future_log, "--no-verify")
        [command] = found["commands"]
        assert command["contained"] is True
        assert command["enforcement"]["seccomp"] == "on"
        assert command["exit_code"] == 1
        assert command["test"]["result"] == "FAIL"
        [edit] = found["edits"]
        assert edit["paths"] == ["src/app.py"]
        assert edit["bytes"] == 12
        markers = [event["marker"] for event in found["events"]]
        assert markers == ["start", "edit", "job", "job", "event"]
        [connection] = found["network"]["connections"]
        assert connection["hosts"] == ["pypi.org"]
        assert connection["bytes_down"] == 9000
        assert connection["duration_ms"] == 40
        assert found["network"]["hosts"] == [
            {"host": "pypi.org", "count": 1, "blocked": 0}
        ]

    def test_golden_counts_and_verify(self):
        """The golden denial-loop session: blocked, halted, verified intact."""
        found = data(GOLDEN, "--session", GOLDEN_IDS["denial-loop"])
        assert found["counts"]["by_state"] == {"blocked": 6}
        assert found["sessions"][0]["halts"][0]["kind"] == "denial_loop"
        assert found["sessions"][0]["status"] == "blocked"
        assert [f["ok"] for f in found["files"]] == [True, True]
        first = found["commands"][0]
        assert found["texts"][first["reason"]] == (
            "sh: dynamic needs never: the policy's level for dynamic"
        )

    def test_broken_chain_names_the_first_bad_record(self, tmp_path):
        """A tampered log is reported in the header, with its first bad record."""
        log_dir = tmp_path / "Logs"
        (log_dir / "Sessions").mkdir(parents=True)
        source = GOLDEN / "Sessions" / f"{GOLDEN_IDS['l0-observe']}.jsonl"
        lines = source.read_text().splitlines()
        lines[3] = lines[3].replace('"ls"', '"rm"')
        (log_dir / "Sessions" / source.name).write_text("\n".join(lines) + "\n")
        [report] = data(log_dir)["files"]
        assert report["ok"] is False
        assert report["error_line"] == 4
        assert '"rm"' in report["first_bad"]


class TestCommand:
    def test_writes_a_self_contained_page(self, tmp_path):
        out = tmp_path / "r.html"
        result = invoke(
            "--log-dir", str(GOLDEN), "--session", "#0002", "--out", str(out)
        )
        assert result.exit_code == 0, result.output
        page = out.read_text()
        assert f'id="{DATA_ELEMENT_ID}"' in page
        assert "Content-Security-Policy" in page
        markup = page.split(DATA_ELEMENT_ID)[0]
        for remote in ("http://", "https://", 'src="//'):
            assert remote not in markup

    def test_stdout(self):
        result = invoke("--log-dir", str(GOLDEN), "--out", "-")
        assert result.exit_code == 0
        assert result.stdout.startswith("<!doctype html>")

    def test_default_is_the_newest_session(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        assert len(data(GOLDEN)["sessions"]) == 1

    @pytest.mark.parametrize(
        ("args", "code"),
        [
            (("--session", "nope"), 2),
            (("--since", "soon"), 2),
            (("--log-dir", "/nonexistent"), 4),
        ],
    )
    def test_errors(self, args, code):
        result = invoke("--log-dir", str(GOLDEN), *args)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output

    def test_empty_log_dir_is_an_error(self, tmp_path):
        result = invoke("--log-dir", str(tmp_path))
        assert result.exit_code == 4
        assert "no session logs" in result.output
