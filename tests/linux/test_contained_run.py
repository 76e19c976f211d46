"""Contained execution on real processes: the kernel refuses what the level refuses."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from statetrace_guard import sandbox
from statetrace_guard.execute import Blocked, RunOptions, prepare
from statetrace_guard.invocation import resolve_invocation
from statetrace_guard.sandbox.linux import LinuxBackend
from statetrace_guard.sandbox.unsafe_none import UnsafeNoSandbox

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or not sandbox.containment_available(),
        reason="needs Linux with Landlock and network and mount namespaces",
    ),
]

# The paths are in the code, not in the arguments: a protected path named as
# an argument is refused up front (issue 13.3, TestProtectedArgument); here
# the kernel must refuse what the classifier cannot see.
PROBE = textwrap.dedent(
    """
    import json, socket
    results = {}
    for name, path in TARGETS.items():
        try:
            with open(path, "w") as handle:
                handle.write("x")
            results[name] = "written"
        except OSError as exc:
            results[name] = exc.strerror
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
        results["loopback"] = "connected"
    except OSError as exc:
        results["loopback"] = exc.strerror or "refused"
    open("inside.txt", "w").write("ok")
    print(json.dumps(results))
    """
)


def probe(targets: dict[str, str], port: int) -> str:
    """The probe's code with its targets and port written in."""
    return f"TARGETS = {targets!r}\nPORT = {port}\n{PROBE}"


@pytest.fixture
def outside():
    """A directory outside the workspace and every temporary directory."""
    path = Path(tempfile.mkdtemp(prefix="guard-contained-", dir=Path.home()))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener():
    """A loopback TCP server in the test's own network namespace."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    accepted = []

    def serve():
        try:
            conn, _ = server.accept()
            accepted.append(True)
            conn.close()
        except OSError:
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()
    thread.join(timeout=5)


def session_records(workspace: Path) -> list[dict]:
    out = []
    for path in sorted((workspace / "Logs" / "Sessions").glob("*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


class TestContainedRun:
    def test_kernel_refuses_every_escape(self, guard, workspace, outside, listener):
        """A contained python3 -c writes only the workspace; the record says contained."""
        port, accepted = listener
        (workspace / ".git" / "hooks").mkdir()
        (workspace / "Logs" / "Sessions").mkdir(parents=True)
        guard_file = workspace / "Logs" / "Sessions" / "planted.jsonl"
        database = workspace / "Data" / "site" / "site.accdb"
        database.parent.mkdir(parents=True)
        database.write_text("db", encoding="utf-8")
        targets = {
            "outside": str(outside / "x.txt"),
            "guard": str(guard_file),
            "hooks": str(workspace / ".git" / "hooks" / "pre-commit"),
            "accdb": str(database),
        }
        result = guard("run", "--", "python3", "-c", probe(targets, port))
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        assert seen["outside"] != "written"
        assert seen["guard"] != "written"
        assert seen["hooks"] != "written"
        assert seen["accdb"] != "written"
        assert seen["loopback"] != "connected"
        assert not accepted
        assert not (outside / "x.txt").exists()
        assert not guard_file.exists()
        assert database.read_text(encoding="utf-8") == "db"
        assert (workspace / "inside.txt").read_text() == "ok"
        started = [
            r for r in session_records(workspace) if r["event"] == "command.started"
        ]
        assert started[-1]["contained"] is True
        envelope = started[-1]["envelope"]
        assert any(
            f"{workspace}/".startswith(f"{path.rstrip('/')}/")
            for path in envelope["writable"]
        )
        assert envelope["enforcement"]["network"] == "netns"
        finished = [
            r for r in session_records(workspace) if r["event"] == "command.finished"
        ]
        assert finished[-1]["contained"] is True

    def test_named_command_is_not_contained(self, guard, workspace):
        """An allowed command the classifier names records contained false."""
        result = guard("run", "--", "ls")
        assert result.returncode == 0
        started = [
            r for r in session_records(workspace) if r["event"] == "command.started"
        ]
        assert started[-1]["contained"] is False
        assert "envelope" not in started[-1]


# A maintenance script: it changes something first, then writes the database
# (or each database in the folder) it is given.
COMPACT = textwrap.dedent(
    """
    import pathlib, sys
    pathlib.Path("ran.txt").write_text("started")
    given = pathlib.Path(sys.argv[1])
    for db in [given] if given.is_file() else sorted(given.rglob("*.accdb")):
        db.write_text("compacted")
    """
)


class TestProtectedArgument:
    @pytest.fixture
    def site(self, workspace):
        """A workspace with a site database and the maintenance script."""
        database = workspace / "Data" / "site" / "site.accdb"
        database.parent.mkdir(parents=True)
        database.write_text("db", encoding="utf-8")
        (workspace / "scripts").mkdir()
        (workspace / "scripts" / "compact.py").write_text(COMPACT, encoding="utf-8")
        return database

    @pytest.mark.parametrize(
        ("argument", "said"),
        [
            ("Data/site/site.accdb", "its argument Data/site/site.accdb is protected"),
            ("Data/site", "its argument Data/site holds protected data"),
        ],
    )
    def test_blocked_before_anything_runs(self, guard, workspace, site, argument, said):
        """At L1 the script is refused up front: no partial change, next: escalate."""
        result = guard("run", "--", "python3", "scripts/compact.py", argument)
        assert result.returncode == 126, result.stderr
        stderr = result.stderr.decode()
        assert "needs L2, session is L1 (rule protected-argument)" in stderr
        assert said in stderr
        assert "guard: next: ask the operator for L2: guard escalate --to L2" in stderr
        assert not (workspace / "ran.txt").exists()
        assert site.read_text(encoding="utf-8") == "db"
        blocked = [
            r for r in session_records(workspace) if r["event"] == "command.blocked"
        ]
        assert blocked[-1]["rules"] == ["protected-argument"]

    def test_runs_at_l2(self, guard, workspace, site):
        """At L2 the same command runs, contained, and maintains the data."""
        result = guard(
            "run", "--level", "L2", "--", "python3", "scripts/compact.py", "Data/site"
        )
        assert result.returncode == 0, result.stderr
        assert (workspace / "ran.txt").read_text(encoding="utf-8") == "started"
        assert site.read_text(encoding="utf-8") == "compacted"
        started = [
            r for r in session_records(workspace) if r["event"] == "command.started"
        ]
        assert started[-1]["contained"] is True


class TestFailClosed:
    def test_no_enforcement_blocks_dynamic(self, monkeypatch, tmp_path):
        """On a machine without kernel enforcement (unsafe backend) dynamic is blocked."""

        sandbox.containment_available.cache_clear()
        monkeypatch.setattr(sandbox, "select_backend", UnsafeNoSandbox)
        try:
            assert not sandbox.containment_available()
            invocation = resolve_invocation(
                level="L1", policy=None, log_dir=None, cwd=tmp_path
            )
            assert invocation.place.decide.enforcement == "none"
        finally:
            sandbox.containment_available.cache_clear()

    def test_missing_layer_blocks_a_contained_run(self, monkeypatch, workspace):
        """A plan that lacks a layer refuses contained code before it starts."""

        caps = dataclasses.replace(LinuxBackend().probe(), netns=False)
        crippled = LinuxBackend(caps)
        if crippled.probe().landlock_abi >= 4:  # Landlock would close TCP instead
            caps = dataclasses.replace(caps, landlock_abi=3)
            crippled = LinuxBackend(caps)
        monkeypatch.setattr(sandbox, "select_backend", lambda: crippled)
        invocation = resolve_invocation(
            level="L1", policy=None, log_dir=None, enforcement="kernel"
        )
        outcome = prepare(invocation, RunOptions(argv=("make", "test")))
        assert isinstance(outcome, Blocked)
        assert outcome.exit_status == 126
        assert "contained execution needs the whole kernel envelope" in outcome.message
        blocked = [
            r for r in session_records(workspace) if r["event"] == "command.blocked"
        ]
        assert blocked[-1]["rules"][-1] == "contained"


def test_check_enforcement_none(guard):
    """`guard check --enforcement none` answers as a seat without enforcement."""
    here = guard("check", "--json", "--", "make", "test")
    assert here.returncode == 0, here.stdout
    assert json.loads(here.stdout)["contained"] is True
    seat = guard("check", "--enforcement", "none", "--json", "--", "make", "test")
    assert seat.returncode == 1
    assert json.loads(seat.stdout)["contained"] is False


def test_replay_enforcement_none(guard, workspace):
    """`guard replay --enforcement none` re-judges contained runs as blocked."""
    assert guard("run", "--", "python3", "-c", "pass").returncode == 0
    same = guard("replay", "Logs")
    assert same.returncode == 0, same.stdout
    seat = guard("replay", "--enforcement", "none", "Logs")
    assert seat.returncode == 1
    assert b"now blocked" in seat.stdout
