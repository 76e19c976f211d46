"""Paths resolved on every command: once, and the same as realpath would."""

from __future__ import annotations

import os

import pytest

from statetrace_guard import home
from statetrace_guard.paths import guard_owned_paths, real_child


@pytest.mark.parametrize(
    "kind", ["dir", "file", "absent", "link-to-dir", "dangling-link", "link-chain"]
)
def test_real_child_is_the_realpath_of_the_child(tmp_path, kind):
    parent = tmp_path.resolve()
    target = parent / "elsewhere"
    target.mkdir()
    child = parent / "child"
    if kind == "dir":
        child.mkdir()
    elif kind == "file":
        child.write_text("x")
    elif kind == "link-to-dir":
        child.symlink_to(target)
    elif kind == "dangling-link":
        child.symlink_to(parent / "missing")
    elif kind == "link-chain":
        (parent / "hop").symlink_to(target)
        child.symlink_to(parent / "hop")
    assert real_child(str(parent), "child") == os.path.realpath(child)


def test_guard_owned_log_folders_follow_a_link(tmp_path):
    logs = tmp_path / "Logs"
    logs.mkdir()
    elsewhere = tmp_path / "kept"
    elsewhere.mkdir()
    (logs / "Sessions").symlink_to(elsewhere)
    owned = {str(path) for path in guard_owned_paths(logs, None)}
    assert str(elsewhere.resolve()) in owned
    assert str(logs.resolve() / "NetOps") in owned


def test_guard_home_is_resolved_once_per_setting(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "home"
    link.symlink_to(first)
    monkeypatch.setenv("STATETRACE_GUARD_HOME", str(link))
    assert home.guard_home_text() == str(first.resolve())
    link.unlink()
    link.symlink_to(second)
    # One answer per setting for the process: every part of a command, and
    # every command the helper serves, uses the same home.
    assert home.guard_home_text() == str(first.resolve())
    monkeypatch.setenv("STATETRACE_GUARD_HOME", str(second))
    assert home.guard_home_text() == str(second.resolve())
