"""Talking to the resident helper from tests: is it there, and which pid."""

from __future__ import annotations

import os
import socket
import time

from statetrace_guard.daemon import protocol


def ping(path: str) -> int | None:
    """The helper's pid if one answers on ``path``, else None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return None


def wait_for_helper(timeout: float = 20.0) -> int:
    """Wait until the helper for this guard home answers; return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = ping(protocol.socket_path())
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError("the helper did not start")


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` as this process sees it."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rpartition(b")")[2].split()[1])


def outer_pids(marker: str, timeout: float = 20.0) -> tuple[int, int]:
    """(program, supervisor) as seen from here, for a program whose code has ``marker``.

    Inside its PID namespace a program is pid 2 and its parent the namespace's
    init (pid 1); from outside, the program is found by its command line
    (``python3 -c CODE``) and the supervisor is init's parent.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    words = handle.read().split(b"\0")
            except OSError:
                continue
            if words[:2] == [b"python3", b"-c"] and marker.encode() in words[2]:
                program = int(name)
                return program, parent_of(parent_of(program))
        time.sleep(0.05)
    raise AssertionError(f"no program with {marker!r} found")
