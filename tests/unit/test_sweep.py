"""The sweep after a command: what appeared that may not exist, moved away."""

from __future__ import annotations

import os
import time

import pytest

from statetrace_guard.errors import PolicyError
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy
from statetrace_guard.sweep import TreeCache, sweep
from statetrace_guard.workspaces import (
    accept_policy,
    check_policy_pin,
    known_log_dirs,
    register_log_dir,
)

PATTERNS = load_policy(None).protect


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "src" / "deep").mkdir(parents=True)
    (root / ".envrc").write_text("operator's")
    return root


def run_sweep(ws, tmp_path, started_ns, *, level=Level.L1, cache=None, guard_files=()):
    return sweep(
        level=level,
        workspace=str(ws),
        started_ns=started_ns,
        patterns=PATTERNS,
        guard_files=tuple(str(ws / f) for f in guard_files),
        quarantine=str(tmp_path / "home" / "quarantine"),
        cache=cache,
    )


class TestSweep:
    def test_moves_new_protected_entries_and_keeps_old_ones(self, ws, tmp_path):
        """Only what was created after the start is moved; the operator's stays."""
        start = time.time_ns()
        (ws / "src" / "deep" / ".git").write_text("gitdir: /elsewhere\n")
        (ws / ".git" / "commondir").write_text("/elsewhere\n")
        (ws / ".claude").mkdir()
        (ws / ".claude" / "settings.json").write_text("{}")
        (ws / "src" / "ok.py").write_text("")
        found = run_sweep(ws, tmp_path, start)
        assert {p.path for p in found} == {
            "src/deep/.git",
            ".git/commondir",
            ".claude/settings.json",
        }
        for item in found:
            assert not (ws / item.path).exists()
            assert item.kept_at.startswith(str(tmp_path / "home" / "quarantine"))
            assert os.path.exists(item.kept_at)
        assert (ws / ".envrc").read_text() == "operator's"
        assert (ws / "src" / "ok.py").exists()

    def test_empty_directories_are_not_planted(self, ws, tmp_path):
        """An empty .idea/ or sub/.git means what none means: left alone."""
        start = time.time_ns()
        (ws / ".idea").mkdir()
        (ws / "src" / ".git").mkdir()
        assert run_sweep(ws, tmp_path, start) == []

    def test_l2_sweeps_only_guard_files(self, ws, tmp_path):
        """From L2 protected data may be created; the policy file never."""
        start = time.time_ns()
        (ws / "src" / ".git").write_text("gitdir: x\n")
        (ws / "guard.toml").write_text("name = 'x'\n")
        found = run_sweep(
            ws, tmp_path, start, level=Level.L2, guard_files=("guard.toml",)
        )
        assert [p.path for p in found] == ["guard.toml"]
        assert (ws / "src" / ".git").exists()

    def test_cache_relists_only_changed_directories(self, ws, tmp_path, monkeypatch):
        """With a cache, an unchanged (non-racy) directory is not listed again."""
        cache = TreeCache()
        run_sweep(ws, tmp_path, time.time_ns(), cache=cache)
        for listing in cache.listings.values():
            listing.listed_ns += 10_000_000_000  # as if listed long after
        listed = []
        real_scandir = os.scandir

        def spy(path):
            listed.append(path)
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", spy)
        start = time.time_ns()
        (ws / "src" / "deep" / ".git").write_text("gitdir: x\n")
        found = run_sweep(ws, tmp_path, start, cache=cache)
        assert [p.path for p in found] == ["src/deep/.git"]
        assert str(ws / "src" / "deep") in listed
        assert str(ws / "src") not in listed
        assert str(ws) not in listed

    def test_cache_finds_directories_made_between_commands(self, ws, tmp_path):
        """A directory made while no command ran is listed and watched from then on."""
        cache = TreeCache()
        run_sweep(ws, tmp_path, time.time_ns(), cache=cache)
        (ws / "later").mkdir()
        start = time.time_ns()
        (ws / "later" / ".git").write_text("gitdir: x\n")
        assert [p.path for p in run_sweep(ws, tmp_path, start, cache=cache)] == [
            "later/.git"
        ]


class TestRegistry:
    def test_registers_once(self, tmp_path):
        """A log directory is registered once, resolved."""
        register_log_dir(str(tmp_path / "a" / "Logs"))
        register_log_dir(str(tmp_path / "a" / "Logs"))
        register_log_dir(str(tmp_path / "b" / "Logs"))
        assert known_log_dirs() == (
            str(tmp_path / "a" / "Logs"),
            str(tmp_path / "b" / "Logs"),
        )


class TestPin:
    def test_first_use_pins_then_refuses_change(self, tmp_path):
        """Trust on first use; a different digest is refused; accept re-pins."""
        ws = str(tmp_path / "ws")
        check_policy_pin(ws, "guard.toml", "aa")
        check_policy_pin(ws, "guard.toml", "aa")
        with pytest.raises(PolicyError, match="changed"):
            check_policy_pin(ws, "guard.toml", "bb")
        accept_policy(ws, "bb")
        check_policy_pin(ws, "guard.toml", "bb")

    def test_absent_policy_pins_none(self, tmp_path):
        """A workspace first seen without a policy refuses one that appears."""
        ws = str(tmp_path / "ws")
        check_policy_pin(ws, "guard.toml", None)
        with pytest.raises(PolicyError, match="appeared"):
            check_policy_pin(ws, "guard.toml", "aa")
