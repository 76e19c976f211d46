"""Guard's home is hidden from guarded programs at every level (issue 12 K4).

The home holds the key the session logs are keyed and redacted with, the
approvals, the policy pins and other sessions' parked state. Root inside the
sandbox owns those files, so no permission stops a read: the mount view
covers the home with an empty read-only file system instead. Each attack
runs for real through ``guard run`` and tries to read the key.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import LEVELS, UNIX_L2_POLICY, assert_via, attack, py

from statetrace_guard.daemon import protocol

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="Linux mount namespaces"),
]
run_path = isolation_kit.run_path

# Tries every way to the home it knows: the key, a listing, the approvals,
# the helper's socket directory, a write; prints what it got as JSON.
PROBE = """
import json, os, sys
home = sys.argv[1]
seen = {}
try:
    with open(os.path.join(home, "redact.key"), "rb") as handle:
        seen["key"] = handle.read().hex()
except OSError as error:
    seen["key"] = error.errno
try:
    seen["listing"] = sorted(os.listdir(home))
except OSError as error:
    seen["listing"] = error.errno
try:
    os.open(os.path.join(home, "planted"), os.O_WRONLY | os.O_CREAT, 0o600)
    seen["write"] = 0
except OSError as error:
    seen["write"] = error.errno
print(json.dumps(seen))
"""


def probe(workspace: Path, home: Path, level: str, **env: str) -> dict:
    """Run PROBE at ``level`` against ``home``; its findings."""
    result = attack(workspace, [*py(PROBE), str(home)], level=level, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def assert_hidden(seen: dict, home: Path) -> None:
    """Nothing of ``home`` was readable or writable, and it holds a key."""
    assert (home / "redact.key").stat().st_size > 0  # there to be stolen
    assert seen == {"key": 2, "listing": [], "write": 30}  # ENOENT, empty, EROFS
    assert not (home / "planted").exists()


@pytest.mark.parametrize("level", LEVELS)
def test_no_level_reads_guards_home(workspace, run_path, level):
    """The key, approvals and socket directory are out of sight at L0..L3."""
    home = Path(os.environ["STATETRACE_GUARD_HOME"])
    seen = probe(workspace, home, level)
    assert_hidden(seen, home)
    assert_via(workspace, run_path)


def test_a_home_inside_the_workspace_is_hidden_and_pinned(workspace, monkeypatch):
    """A home under the writable workspace: unreadable, and its parent keeps its name.

    Renaming the parent and putting a look-alike in its place would hand the
    next guard a home the program wrote (its own key and approvals).
    """
    home = workspace / "state" / "guard"
    home.mkdir(parents=True)
    monkeypatch.setenv("STATETRACE_GUARD_HOME", str(home))
    seen = probe(workspace, home, "L1")
    assert_hidden(seen, home)
    moved = attack(
        workspace,
        py("import os; os.rename('state', 'state-old'); os.mkdir('state')"),
        level="L1",
    )
    assert moved.returncode != 0
    assert "Device or resource busy" in moved.stderr
    assert (home / "redact.key").exists()


def test_the_default_home_is_hidden_too(workspace, tmp_path, monkeypatch):
    """Another configuration's home (the platform default) is not readable either."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    default = tmp_path / "user" / ".local" / "state" / "statetrace-guard"
    default.mkdir(parents=True)
    (default / "redact.key").write_bytes(os.urandom(32))
    seen = probe(workspace, default, "L1")
    assert_hidden(seen, default)


def test_a_home_holding_the_workspace_refuses_to_run(workspace, monkeypatch):
    """Hiding such a home would hide the program's own files: refused (125)."""
    monkeypatch.setenv("STATETRACE_GUARD_HOME", str(workspace.parent))
    result = attack(workspace, ["true"], level="L1")
    assert result.returncode == 125
    assert "guard's home" in result.stderr


def test_a_level_allowed_unix_sockets_cannot_reach_the_helper(workspace, monkeypatch):
    """Where the policy lets a level make Unix sockets, the helper's is still hidden.

    Its socket lives in guard's home; the helper would refuse a guarded peer
    anyway (issue 12 K11), but the program cannot even connect.
    """
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    pid = isolation_kit.start_helper(workspace.parent / "warm-up")
    try:
        code = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "    s.connect(sys.argv[1]); print('connected')\n"
            "except OSError as error:\n"
            "    print('refused', error.strerror)\n"
        )
        path = protocol.socket_path()
        assert Path(path).exists()
        result = attack(workspace, [*py(code), path], level="L2", policy=UNIX_L2_POLICY)
        assert result.returncode == 0, result.stderr
        assert "refused No such file or directory" in result.stdout
    finally:
        os.kill(pid, signal.SIGKILL)
