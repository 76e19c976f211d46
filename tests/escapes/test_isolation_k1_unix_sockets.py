"""K1: no program reaches a service outside through its Unix socket.

The issue's attack: an L0 program drove the operator's tmux server
(``tmux -S SOCK send-keys``), and the unsandboxed tmux ran a command that
wrote outside the workspace. The seccomp filter refuses new Unix sockets
(and datagram pairs, which can ``sendto`` a path); connected pairs keep
working, and ``[isolation] unix_sockets`` lets a chosen level have them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import isolation_kit
import pytest
from isolation_kit import (
    EDGES,
    UNIX_L2_POLICY,
    assert_via,
    attack,
    last,
    py,
)

from statetrace_guard.daemon import protocol

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(sys.platform != "linux", reason="the seccomp filter is Linux"),
]
run_path = isolation_kit.run_path
needs_tmux = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is installed by .ci/run"
)


@pytest.fixture
def tmux_server(tmp_path):
    """The operator's tmux server, outside any guard, with a shell in it."""
    sock = tmp_path / "tmux.sock"
    subprocess.run(
        ["tmux", "-S", str(sock), "new-session", "-d", "-s", "op", "sh"],
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "xterm"},
    )
    yield sock
    subprocess.run(["tmux", "-S", str(sock), "kill-server"], check=False)


def send_keys(sock: Path, command: str) -> list[str]:
    return ["tmux", "-S", str(sock), "send-keys", "-t", "op", command, "Enter"]


def appears(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return path.exists()


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"x")
"""


@needs_tmux
class TestTmux:
    @pytest.mark.parametrize("level", EDGES)
    def test_rejects_send_keys_to_the_operators_tmux(
        self, run_path, workspace, tmp_path, tmux_server, level
    ):
        """The issue's attack fails at every level; tmux itself still works."""
        outside = tmp_path / "pwned"
        result = attack(
            workspace, send_keys(tmux_server, f"touch {outside}"), level=level
        )
        assert result.returncode != 0
        assert not appears(outside, 1.0)
        assert_via(workspace, run_path)
        control = tmp_path / "control"  # the same keys from outside do run
        subprocess.run(send_keys(tmux_server, f"touch {control}"), check=True)
        assert appears(control, 10.0)


class TestSockets:
    @pytest.mark.parametrize("level", EDGES)
    def test_rejects_connect_to_a_listener_outside(
        self, run_path, workspace, tmp_path, level
    ):
        """A Unix socket cannot even be created: connect never happens."""
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(tmp_path / "svc.sock"))
        listener.listen(1)
        listener.settimeout(0.5)
        try:
            result = attack(
                workspace, [*py(CONNECT), str(tmp_path / "svc.sock")], level=level
            )
            assert result.returncode != 0
            assert "Operation not permitted" in result.stderr
            with pytest.raises(TimeoutError):
                listener.accept()
        finally:
            listener.close()
        assert_via(workspace, run_path)

    @pytest.mark.usefixtures("run_path")
    def test_rejects_the_guards_own_helper(self, workspace):
        """The helper's socket is out of reach too (issue 12 K11's way in)."""
        result = attack(workspace, [*py(CONNECT), protocol.socket_path()])
        assert result.returncode != 0
        assert "Operation not permitted" in result.stderr

    @pytest.mark.usefixtures("run_path")
    def test_rejects_a_datagram_pair_that_could_sendto_a_path(
        self, workspace, tmp_path
    ):
        """socketpair(AF_UNIX, SOCK_DGRAM) is refused: it can address any path."""
        sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sink.bind(str(tmp_path / "log.sock"))
        sink.settimeout(0.5)
        code = (
            "import socket, sys\n"
            "a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "a.sendto(b'injected', sys.argv[1])\n"
        )
        try:
            result = attack(workspace, [*py(code), str(tmp_path / "log.sock")])
            assert result.returncode != 0
            with pytest.raises(TimeoutError):
                sink.recv(100)
        finally:
            sink.close()

    @pytest.mark.usefixtures("run_path")
    @pytest.mark.parametrize("level", EDGES)
    def test_accepts_connected_pairs_and_inherited_sockets(self, workspace, level):
        """socketpair (stream, seqpacket) and stdio sockets keep working."""
        code = (
            "import socket, subprocess\n"
            "for kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):\n"
            "    a, b = socket.socketpair(socket.AF_UNIX, kind)\n"
            "    a.sendall(b'ok'); assert b.recv(2) == b'ok'\n"
            "out = subprocess.run(['echo', 'child'], capture_output=True).stdout\n"
            "print(out.decode().strip())\n"
        )
        result = attack(workspace, py(code), level=level)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "child\n"


@needs_tmux
class TestAllowList:
    def test_a_level_the_policy_names_may_use_unix_sockets(
        self, workspace, tmp_path, tmux_server
    ):
        """[isolation] unix_sockets = "L2": L2 drives tmux, L1 still cannot."""
        below = tmp_path / "from-l1"
        result = attack(
            workspace,
            send_keys(tmux_server, f"touch {below}"),
            level="L1",
            policy=UNIX_L2_POLICY,
        )
        assert result.returncode != 0
        assert last_enforcement(workspace)["unix_sockets"] == "denied"
        allowed = tmp_path / "from-l2"
        result = attack(
            workspace,
            send_keys(tmux_server, f"touch {allowed}"),
            level="L2",
            policy=UNIX_L2_POLICY,
        )
        assert result.returncode == 0, result.stderr
        assert appears(allowed, 10.0)
        assert last_enforcement(workspace)["unix_sockets"] == "allowed"
        assert not below.exists()


def last_enforcement(workspace: Path) -> dict:
    return last(workspace, "command.started")["enforcement"]
