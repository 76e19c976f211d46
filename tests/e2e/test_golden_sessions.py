"""Golden sessions: every recorded example replays unchanged under the built-in policy.

A failure here means a change to the policy or the classifier changes a
decision in recorded history: either a bug, or a deliberate change that
regenerates ``examples/sessions/`` (``python examples/make_sessions.py``) in
the same commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statetrace_guard.audit.verify import verify_file
from statetrace_guard.policy import load_policy
from statetrace_guard.replay import Change, Replayer, ReplaySettings, Row, read_session

REPO = Path(__file__).resolve().parent.parent.parent
GOLDEN = REPO / "examples" / "sessions"
SESSIONS = sorted((GOLDEN / "Sessions").glob("*.jsonl"))
SCENARIOS = {"l0-observe", "l1-edit-test", "l2-pipeline", "l3-download", "denial-loop"}


def describe(rows: tuple[Row, ...]) -> str:
    return "\n".join(
        f"{row.recorded.source}:{row.recorded.line} {row.change.value} "
        f"{' '.join(row.recorded.argv)} {row.fields}"
        for row in rows
        if row.change is not Change.UNCHANGED
    )


def test_every_scenario_is_there():
    """index.json names the five scenarios and each names a session file."""
    index = json.loads((GOLDEN / "index.json").read_text())
    assert set(index) == SCENARIOS
    for entry in index.values():
        assert (GOLDEN / entry["file"]).is_file()


@pytest.mark.parametrize("path", SESSIONS, ids=lambda path: path.stem)
def test_golden_session_chain_is_intact(path):
    """Every golden log passes guard verify."""
    report = verify_file(path)
    assert report.ok, report.describe()


@pytest.mark.parametrize("path", SESSIONS, ids=lambda path: path.stem)
def test_golden_session_replays_unchanged(path):
    """Replaying under the built-in policy changes no decision, level, effect or rule."""
    commands = read_session(path)
    result = Replayer(ReplaySettings(load_policy(None))).replay(commands)
    assert result.summary.unchanged == result.summary.commands, describe(result.rows)


def _replay_directory(tmp_path, *options):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATETRACE_")}
    env["STATETRACE_GUARD_HOME"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "statetrace_guard", "replay", *options, str(GOLDEN)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_guard_replay_over_the_directory_exits_0(tmp_path):
    """The CLI form CI would run: `guard replay --enforcement none` exits 0.

    Judged as a machine without kernel enforcement would (as the API's
    default above), the golden sessions replay unchanged on any machine.
    """
    done = _replay_directory(tmp_path, "--enforcement", "none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 now blocked, 0 now allowed" in done.stdout


def test_kernel_enforcement_only_frees_loopback_requests(tmp_path):
    """Where the kernel fences the session's network, the only drift is loopback.

    The sessions were recorded before loopback requests became L1 traffic
    under kernel enforcement (issue 15.5): a `curl http://127.0.0.1:PORT/`
    recorded as blocked network is now allowed, and nothing else moves.
    """
    done = _replay_directory(tmp_path, "--enforcement", "kernel")
    assert " 0 now blocked," in done.stdout, done.stdout
    drifted = [line for line in done.stdout.splitlines() if "now allowed " in line]
    assert drifted, done.stdout
    assert all("http://127.0.0.1:" in line for line in drifted), done.stdout


def test_scenarios_show_what_they_claim():
    """Each scenario holds the blocks and levels the README walks through."""
    index = json.loads((GOLDEN / "index.json").read_text())
    commands = {
        name: read_session(GOLDEN / entry["file"]) for name, entry in index.items()
    }
    assert {c.level.name for c in commands["l0-observe"]} == {"L0"}
    blocked_l1 = [c for c in commands["l1-edit-test"] if c.decision == "block"]
    assert any("network" in c.effects for c in blocked_l1)
    assert any("self-protect" in c.rules for c in blocked_l1)
    assert any(c.level.name == "L2" for c in commands["l2-pipeline"])
    l3 = commands["l3-download"]
    curls = [c for c in l3 if c.argv[0] == "curl"]
    assert [c.decision for c in curls] == ["block", "block"]
    assert "network:address" in curls[0].rules  # opted in, refused by the host
    assert any(c.decision == "block" for c in commands["denial-loop"])


def events(name: str) -> list[str]:
    index = json.loads((GOLDEN / "index.json").read_text())
    lines = (GOLDEN / index[name]["file"]).read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


def test_denial_loop_is_halted():
    """The denial-loop session records the halt, and refuses the next command."""
    names = events("denial-loop")
    assert "session.halted" in names
    halted_at = names.index("session.halted")
    assert "command.blocked" in names[halted_at:]


def test_l2_records_overrides_and_approval():
    """The L2 session records its overrides and the approval it used."""
    names = events("l2-pipeline")
    assert "session.escalated" in names
    assert "session.override" in names
    assert "approval.used" in names
