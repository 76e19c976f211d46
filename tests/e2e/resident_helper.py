"""Talking to the resident helper from tests: is it there, and which pid."""

from __future__ import annotations

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
