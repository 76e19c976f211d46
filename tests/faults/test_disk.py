"""Full and read-only log file systems: no finish lost, no empty log, no run twice.

The log directory is a small tmpfs mounted for the test (root only; skipped
with the reason where the machine does not allow it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from faultlib import Fleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def _tmpfs(target: Path, size: str):
    target.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode:
            subprocess.run(["umount", "-l", str(target)], check=False)


_SMALL_VOLUME = 64 * 1024 * 1024


def _fill(folder: Path) -> Path:
    """Use up every free byte of the small file system mounted at ``folder``.

    Never anything else: a volume detached under the test (by whatever)
    would leave the machine's own disk to fill.
    """
    volume = os.statvfs(folder)
    if not os.path.ismount(folder) or volume.f_blocks * volume.f_frsize > _SMALL_VOLUME:
        pytest.fail(f"{folder} is no longer the test's small volume: not filling it")
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def _remount(target: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(target)], check=True)


def _tokens_run(fleet: Fleet, session: str, count: int, sleep: float):
    clients = []
    for _ in range(count):
        token = os.urandom(5).hex()
        command = fleet.token_command(token, sleep=sleep)
        clients.append(fleet.client("--session", session, "--", *command, token=token))
    return clients


@pytest.mark.parametrize("path", ["helper", "in-process"])
def test_disk_fills_while_commands_run(fleet, path):
    """Finishes land in room reserved with their starts (or wait in guard's home)."""
    logs = fleet.workspace / "Logs"
    with _tmpfs(logs, "2m"):
        if path == "helper":
            fleet.start_helper()
        env = {"STATETRACE_GUARD_DAEMON": "on" if path == "helper" else "off"}
        session = fleet.start_session()
        clients = [
            fleet.client(
                "--session",
                session,
                "--",
                *fleet.token_command(t, sleep=1.5),
                token=t,
                **env,
            )
            for t in (os.urandom(5).hex() for _ in range(6))
        ]
        time.sleep(1.0)
        filler = _fill(logs)
        for client in clients:
            client.finish(timeout=120)
        # Nothing new starts on a full disk: 125, nothing ran, no empty file.
        refused = fleet.guard(
            "run", "--session", session, "--", "sh", "-c", "echo x >> tokens", **env
        )
        assert refused.returncode == 125, refused.stderr
        fresh = fleet.guard("run", "--", "true", **env)
        assert fresh.returncode == 125
        assert not [
            p for p in (logs / "Sessions").glob("*.jsonl") if p.stat().st_size == 0
        ]
        filler.unlink()
        # The next record of the session writes any finish kept at home first.
        assert (
            fleet.guard("run", "--session", session, "--", "true", **env).returncode
            == 0
        )
        counts = fleet.check(clients)
        assert counts["finishes"] == counts["starts"]


def test_log_volume_goes_read_only_while_commands_run(fleet):
    """A finish the log cannot take waits in guard's home; verify says so; it lands later."""
    logs = fleet.workspace / "Logs"
    with _tmpfs(logs, "8m"):
        fleet.start_helper()
        session = fleet.start_session()
        clients = _tokens_run(fleet, session, 4, sleep=1.5)
        time.sleep(1.0)
        _remount(logs, "ro")
        try:
            for client in clients:
                client.finish(timeout=120)
            assert all(client.status == 0 for client in clients), [
                c.stderr for c in clients
            ]
            assert any("kept in guard's home" in c.stderr for c in clients)
            verify = fleet.guard("verify", "--json")
            assert verify.returncode == 5, verify.stdout  # dangling, finishes pending
            assert '"finish_pending": true' in verify.stdout
        finally:
            _remount(logs, "rw")
        assert fleet.guard("run", "--session", session, "--", "true").returncode == 0
        counts = fleet.check(clients)
        assert counts["finishes"] == counts["starts"]


def test_helper_lets_the_log_volume_unmount(fleet, tmp_path):
    """The helper and its launcher work from / and hold no log open between records."""
    logs = fleet.workspace / "Logs"
    with _tmpfs(logs, "8m"):
        helper = fleet.start_helper()
        assert fleet.guard("run", "--", "true").returncode == 0
        assert os.readlink(f"/proc/{helper}/cwd") == "/"
        launcher = fleet.launcher_pid(helper)
        assert os.readlink(f"/proc/{launcher}/cwd") == "/"
        time.sleep(0.5)
        for pid in (helper, launcher):
            held = [
                os.readlink(f"/proc/{pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{pid}/fd")
            ]
            assert not [p for p in held if p.startswith(str(logs))], held
        _remount(
            logs, "ro"
        )  # fails with EBUSY if anything holds a file open for writing
        _remount(logs, "rw")
