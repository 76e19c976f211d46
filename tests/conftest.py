"""Shared fixtures: a clean environment and a scratch workspace for every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GUARDED_PREFIXES = ("STATETRACE_", "GUARD_")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No STATETRACE_*/GUARD_* variable leaks in; guard's home is a tmp dir."""
    for name in list(os.environ):
        if name.startswith(GUARDED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "STATETRACE_GUARD_HOME", str(tmp_path_factory.mktemp("guard-home"))
    )
    # In-process unless a test asks for the resident helper (and ends it):
    # a helper started by a test's second run would outlive the suite.
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "off")


@pytest.fixture(scope="session", autouse=True)
def no_mounts_left(tmp_path_factory: pytest.TempPathFactory):
    """Detach what this session's tests left mounted under its temp dir, at the end.

    Sessions a test never ends keep their network namespace bound under
    guard's home (a tmp dir here), the fault tests mount log volumes: left
    mounted, pytest can never remove those dirs, and its cleanup of old
    runs then fails on them (an unclosed scandir iterator, an error under
    ``filterwarnings = error``). Only this session's own directory: another
    pytest session running beside this one keeps its mounts (detaching a
    fault test's small log volume under it let its filler fill the real
    disk).
    """
    yield
    if not sys.platform.startswith("linux"):
        return
    base = str(tmp_path_factory.getbasetemp())
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            points = [line.split()[1] for line in mounts]
    except OSError:
        return
    for point in sorted(points, key=len, reverse=True):
        if point.startswith(base + "/"):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch git-less workspace that is also the current directory."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    monkeypatch.chdir(root)
    return root


def guard_argv(*args: str) -> list[str]:
    """The argv that runs the installed guard with this interpreter."""
    return [sys.executable, "-m", "statetrace_guard", *args]


class GuardRunner:
    """Runs guard as a real process in a directory and captures its output."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def command(self, *args: str) -> list[str]:
        """The argv that runs ``guard ARGS``."""
        return guard_argv(*args)

    def recorded_argv(self, argv: list[str]) -> list[str]:
        """The argv a ``guard run -- ARGV`` record names."""
        return argv

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input_: bytes | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return subprocess.run(
            self.command(*args),
            cwd=cwd or self.cwd,
            env=full_env,
            input=input_,
            capture_output=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def guard(workspace: Path) -> GuardRunner:
    """Run ``python -m statetrace_guard ARGS`` in the scratch workspace."""
    return GuardRunner(workspace)
