"""What guard makes before a program starts: log folders and git placeholders."""

from __future__ import annotations

import pytest

from statetrace_guard import layout
from statetrace_guard.errors import AuditError
from statetrace_guard.levels import Level


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STATETRACE_GUARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_log_folders_and_git_placeholders_are_made_at_l1(tmp_path, home):
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    layout._make_placeholders(Level.L1, str(workspace), str(workspace / "Logs"))
    assert sorted(p.name for p in (workspace / "Logs").iterdir()) == [
        "Approvals",
        "NetOps",
        "Sessions",
    ]
    assert sorted(p.name for p in (workspace / ".git").iterdir()) == [
        "hooks",
        "modules",
        "worktrees",
    ]
    # Made again: nothing changes, nothing fails.
    layout._make_placeholders(Level.L1, str(workspace), str(workspace / "Logs"))


@pytest.mark.parametrize("level", [Level.L0, Level.L2])
def test_no_git_placeholders_outside_l1(tmp_path, home, level):
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    layout._make_placeholders(level, str(workspace), str(workspace / "Logs"))
    assert list((workspace / ".git").iterdir()) == []


def test_a_git_link_gets_no_placeholders(tmp_path, home):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / ".git").symlink_to(elsewhere)
    layout._make_placeholders(Level.L1, str(workspace), str(workspace / "Logs"))
    assert list(elsewhere.iterdir()) == []


def test_a_log_folder_that_cannot_be_made_is_one_audit_error(tmp_path, home):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "Logs").write_text("a file where the folder goes")
    with pytest.raises(AuditError, match=r"cannot create .*Logs/Sessions"):
        layout._make_placeholders(Level.L1, str(workspace), str(workspace / "Logs"))
