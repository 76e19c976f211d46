"""A fleet of guard processes to break on purpose, and the invariant to check.

Every scenario of the fault suite runs real ``guard run`` clients against a
real resident helper in a private guard home and workspace, breaks a part
(SIGKILL, SIGSTOP, a full or read-only file system, a held lock), lets
everything settle, and checks the one invariant of issue 14:

* every ``command.started`` has exactly one ``command.finished``, or
  ``guard verify`` names it as dangling (and nothing else is dangling);
* every client's exit status is the status recorded for its command;
* each command ran at most once (its token appears at most once) and, when
  the client says it ran, exactly once;
* no process of a program's tree outlives the scenario;
* ``guard verify`` tells the truth: never "broken" for these logs, 5 exactly
  when something is dangling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from statetrace_guard.daemon.launcher import SPARE_NAME

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ALLOW_PYTHON = str(ASSETS / "policies" / "allow_python.toml")
_MARKER = "GUARD_FAULT_FLEET"


@dataclass
class Client:
    """One ``guard run`` in flight and what it said."""

    token: str
    proc: subprocess.Popen[bytes]
    status: int | None = None
    stderr: str = ""
    killed: bool = False  # by the scenario: its own status proves nothing

    def finish(self, timeout: float) -> None:
        """Wait for it (it must end within ``timeout``)."""
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(
                f"client {self.token} did not end in {timeout}s"
            ) from None
        self.status = self.proc.returncode
        self.stderr = err.decode(errors="replace")


@dataclass
class Fleet:
    """A private guard home and workspace, the helper, and clean-up."""

    root: Path
    wait: float = 3.0
    fleet_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stopped: set[int] = field(default_factory=set)
    clients: list[Client] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.workspace = self.root / "ws"
        self.home.mkdir(parents=True)
        self.workspace.mkdir()
        subprocess.run(["git", "init", "-q", str(self.workspace)], check=True)
        (self.workspace / "plan.md").write_text("plan\n")
        self.env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("STATETRACE_", "GUARD_"))
        }
        self.env.update(
            STATETRACE_GUARD_HOME=str(self.home),
            STATETRACE_GUARD_DAEMON="on",
            STATETRACE_GUARD_DAEMON_IDLE="120",
            STATETRACE_GUARD_DAEMON_WAIT=str(self.wait),
            **{_MARKER: self.fleet_id},
        )

    # -- running guard -------------------------------------------------------

    def guard(
        self, *args: str, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run guard to the end (in the workspace)."""
        return subprocess.run(
            [sys.executable, "-m", "statetrace_guard", *args],
            cwd=self.workspace,
            env=self.env | env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def client(self, *run_args: str, token: str | None = None, **env: str) -> Client:
        """Start ``guard run RUN_ARGS``; stdin empty, output captured."""
        token = token or uuid.uuid4().hex[:10]
        proc = subprocess.Popen(
            [sys.executable, "-m", "statetrace_guard", "run", *run_args],
            cwd=self.workspace,
            env=self.env | env | {"GUARD_FAULT_TOKEN": token},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        made = Client(token, proc)
        self.clients.append(made)
        return made

    def token_command(
        self, token: str, *, sleep: float = 0.0, status: int = 0
    ) -> list[str]:
        """A command that appends its token to ``tokens`` (once per run)."""
        pause = f"sleep {sleep}; " if sleep else ""
        return ["sh", "-c", f"{pause}echo {token} >> tokens; exit {status}"]

    def start_session(self) -> str:
        """A managed session (``guard session start``); returns its id."""
        result = self.guard(
            "session", "start", "--task", "ST-A-001", "--plan", "plan.md"
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[0]

    # -- the helper and its processes ----------------------------------------

    def start_helper(self) -> int:
        """Two runs (the second starts the helper); wait until it answers."""
        for _ in range(2):
            self.guard("run", "--", "true")
        return self.helper_pid(timeout=30)

    def helper_pid(self, timeout: float = 0.0) -> int:
        """The helper's pid (0 when none answers)."""
        from statetrace_guard.daemon import protocol  # noqa: PLC0415

        os.environ["STATETRACE_GUARD_HOME"] = str(self.home)
        try:
            path = protocol.socket_path()
        finally:
            del os.environ["STATETRACE_GUARD_HOME"]
        deadline = time.monotonic() + timeout
        while True:
            pid = _ping(path)
            if pid or time.monotonic() >= deadline:
                return pid
            time.sleep(0.05)

    def launcher_pid(self, helper: int) -> int:
        """The helper's launcher (0 when it has none)."""
        for child in _children(helper):
            if b"statetrace_guard.daemon.launcher" in _cmdline(child):
                return child
        return 0

    def supervisors(self, helper: int) -> list[int]:
        """The launcher's supervisors (one per program it runs)."""
        launcher = self.launcher_pid(helper)
        return _children(launcher) if launcher else []

    def stop(self, pid: int) -> None:
        """SIGSTOP ``pid`` (resumed by :meth:`resume_all` / clean-up)."""
        with _quiet():
            os.kill(pid, signal.SIGSTOP)
            self.stopped.add(pid)

    def resume_all(self) -> None:
        """SIGCONT everything stopped."""
        for pid in self.stopped:
            with _quiet():
                os.kill(pid, signal.SIGCONT)
        self.stopped.clear()

    def marked(self) -> list[int]:
        """Live processes of this fleet (they carry its marker)."""
        needle = f"{_MARKER}={self.fleet_id}".encode()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{name}/environ").read_bytes()
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1][1:2]
            except OSError:
                continue
            if needle in environ.split(b"\0") and state not in {b"Z", b"X"}:
                found.append(int(name))
        return found

    def leftovers(self, grace: float = 5.0) -> list[int]:
        """Processes of programs still alive: anything but helper and launcher."""
        deadline = time.monotonic() + grace
        while True:
            helper = self.helper_pid()
            launcher = self.launcher_pid(helper) if helper else 0
            # The supervisor forked ahead for the next command runs nothing yet.
            keep = {helper, launcher, *_spares(launcher)} if helper else set()
            left = [pid for pid in self.marked() if pid not in keep]
            if not left or time.monotonic() >= deadline:
                return [pid for pid in left if _alive(pid)]
            time.sleep(0.1)

    def close(self) -> None:
        """Resume what is stopped and end every process of the fleet."""
        self.resume_all()
        for client in self.clients:
            if client.proc.returncode is None:
                client.proc.kill()
            client.proc.communicate()
        for _ in range(3):
            for pid in self.marked():
                with _quiet():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    # -- the invariant ---------------------------------------------------------

    def records(self) -> dict[Path, list[dict]]:
        """Every session log's records, by file."""
        out = {}
        for path in sorted((self.workspace / "Logs" / "Sessions").glob("*.jsonl")):
            out[path] = [
                json.loads(line) for line in path.read_bytes().splitlines() if line
            ]
        return out

    def check(self, clients: list[Client], *, unfinished_ok: bool = False) -> dict:
        """Assert the invariant (see the module doc); return what was counted."""
        tokens = _tokens(self.workspace / "tokens")
        logs = self.records()
        verify = self.guard("verify", "--json")
        reports = [json.loads(line) for line in verify.stdout.splitlines() if line]
        dangling = {
            (Path(r["path"]).resolve(), item["seq"])
            for r in reports
            for item in r["dangling"]
        }
        assert all(r["ok"] for r in reports), verify.stdout
        counts = {"starts": 0, "finishes": 0, "dangling": len(dangling), "not_run": 0}
        by_pid: dict[int, list[dict]] = {}
        for path, records in logs.items():
            starts = {r["seq"]: r for r in records if r["event"] == "command.started"}
            finishes = [r for r in records if r["event"] == "command.finished"]
            named = [f["started_seq"] for f in finishes]
            assert len(named) == len(set(named)), f"{path}: two finishes for one start"
            assert set(named) <= set(starts), f"{path}: a finish without its start"
            for seq in set(starts) - set(named):
                assert (path.resolve(), seq) in dangling, (
                    f"{path}: seq {seq} unfinished, unreported"
                )
            for finish in finishes:
                counts["not_run"] += bool(finish.get("not_run"))
                by_pid.setdefault(starts[finish["started_seq"]]["pid"], []).append(
                    finish
                )
            counts["starts"] += len(starts)
            counts["finishes"] += len(finishes)
        assert verify.returncode == (5 if dangling else 0), verify.stdout
        assert unfinished_ok or not dangling, f"dangling: {sorted(dangling)}"
        for client in clients:
            _check_client(client, by_pid.get(client.proc.pid, []), tokens)
        assert not self.leftovers(), "a program's process outlived its supervisor"
        return counts


def _check_client(client: Client, finishes: list[dict], tokens: dict[str, int]) -> None:
    ran = tokens.get(client.token, 0)
    assert ran <= 1, f"{client.token} ran {ran} times"
    real = [f for f in finishes if not f.get("not_run")]
    assert len(real) <= 1, (
        f"{client.token}: {len(real)} commands ran for one client: "
        + repr(
            [(f.get("exit_code"), f.get("error"), f.get("recorded_by")) for f in real]
        )
        + client.stderr
    )
    if client.killed:
        return
    if not real:
        # Nothing ran for it: it was told so (a signal, a guard failure).
        assert ran == 0, f"{client.token} ran without a record"
        assert client.status in {125, 126, 2} or client.status >= 128, (
            client.status,
            client.stderr,
        )
        return
    recorded = real[0]["exit_code"]
    assert client.status == recorded, (
        client.token,
        client.status,
        recorded,
        client.stderr,
    )
    if recorded == 0:
        assert ran == 1, f"{client.token} exited 0 but its command did not run"


def _tokens(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for word in path.read_text().split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def _ping(path: str) -> int:
    import socket  # noqa: PLC0415

    from statetrace_guard.daemon import protocol  # noqa: PLC0415

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def _spares(launcher: int) -> list[int]:
    """The launcher's children still waiting for a launch (named so).

    With the init each forks ahead (also named so while it waits).
    """
    found = []
    for child in _children(launcher) if launcher else []:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_bytes().rstrip() == SPARE_NAME:
                found.append(child)
                found.extend(_waiting_children(child))
    return found


def _waiting_children(pid: int) -> list[int]:
    """Children of a spare that wait with it (its init forked ahead)."""
    found = []
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_bytes().rstrip() == SPARE_NAME:
                found.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1][1:2]
    except OSError:
        return False
    return state not in {b"Z", b"X"}


class _quiet:  # noqa: N801 - used like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_rest: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)  # type: ignore[arg-type]
