"""The wire between ``guard run`` and its resident helper.

Messages are dicts of plain values (str, int, float, bool, None, list, dict),
framed as a 4-byte big-endian length and a :mod:`marshal` payload: marshal is
built in, so the client pays no import for it. Both ends are the same
interpreter and package (the socket name is derived from both), and the
daemon accepts only its own user, so marshal's format never crosses a trust
boundary. Everything here is import-light on purpose.
"""

from __future__ import annotations

import marshal
import os
import sys

from statetrace_guard._version import __version__
from statetrace_guard.home import guard_home_text

# NOTE(speed): typing costs more to import than this whole module; the
# annotations are strings (``from __future__``), so only checkers need it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DAEMON_VARIABLE",
    "MAX_MESSAGE",
    "ProtocolError",
    "code_fingerprint",
    "decode",
    "recv_message",
    "recv_message_with_fds",
    "recv_with_fds",
    "runtime_dir",
    "send_message",
    "socket_path",
]

MAX_MESSAGE = 16 * 1024 * 1024
_PREFIX = 4  # bytes of big-endian length before each payload
# "off" runs every command in-process (no resident helper).
DAEMON_VARIABLE = "STATETRACE_GUARD_DAEMON"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]


class ProtocolError(Exception):
    """The peer closed the connection or sent something malformed."""


def runtime_dir() -> str:
    """The private directory holding the socket (mode 0700, under guard home)."""
    return os.path.join(guard_home_text(), "run")


def socket_path() -> str:
    """The socket for this interpreter, package location and version."""
    key = f"{os.path.realpath(sys.executable)}|{_PACKAGE_DIR}|{__version__}".encode()
    return os.path.join(runtime_dir(), f"guardd-{_fnv1a(key):08x}.sock")


def _fnv1a(data: bytes) -> int:
    """32-bit FNV-1a of ``data``.

    Not a cryptographic hash: it only keeps installations apart (the
    directory's permissions keep others out). Written out because the
    client's whole import budget is about a millisecond, and importing zlib
    for crc32 took a fifth of it.
    """
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def code_fingerprint() -> int:
    """The newest modification time in the package: a change means restart."""
    newest = 0
    for folder, _dirs, files in os.walk(_PACKAGE_DIR):
        for name in files:
            if name.endswith((".py", ".toml")):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return newest


def send_message(sock: Any, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:  # noqa: ANN401 - socket or _socket
    """Send one framed message, with ``fds`` attached to its first byte.

    Raises:
        ProtocolError: the message holds something marshal cannot carry.
    """
    try:
        payload = marshal.dumps(message)
    except ValueError as exc:
        raise ProtocolError(f"cannot send: {exc}") from exc
    if len(payload) > MAX_MESSAGE:
        raise ProtocolError("message too large")
    data = len(payload).to_bytes(_PREFIX, "big") + payload
    if not fds:
        sock.sendall(data)
        return
    import _socket  # noqa: PLC0415 - the C module: no enum import on the client

    rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if sent < len(data):
        # Never sendall(b""): it still calls send(), which fails with EPIPE
        # once a quick helper has answered and closed: a blocked command
        # would then be judged and recorded a second time in-process.
        sock.sendall(data[sent:])


def recv_message(sock: Any) -> dict[str, Any]:  # noqa: ANN401 - socket or _socket
    """Receive one framed message; raise ProtocolError on EOF or garbage."""
    return _decode(sock, int.from_bytes(_recv_exact(sock, _PREFIX), "big"))


def recv_message_with_fds(sock: Any, max_fds: int) -> tuple[dict[str, Any], list[int]]:  # noqa: ANN401 - a socket
    """Receive one framed message and the descriptors sent with it.

    The descriptors arrive close-on-exec (nothing else the receiver starts
    inherits them); the caller owns and must close them.
    """
    head, fds, flags = recv_with_fds(sock, _PREFIX, max_fds)
    try:
        return _decode(sock, _frame_size(head, flags, sock)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def recv_with_fds(sock: Any, size: int, max_fds: int) -> tuple[bytes, list[int], int]:  # noqa: ANN401 - a socket
    """One ``recvmsg``: up to ``size`` bytes, the descriptors, the flags.

    Not ``socket.recv_fds``: through 3.11 it drops its ``flags``, and
    without MSG_CMSG_CLOEXEC every program the receiver starts would inherit
    what was passed (a client's connection, copies of its stdio).
    """
    import array  # noqa: PLC0415 - daemon side only
    import socket  # noqa: PLC0415

    received = array.array("i")
    data, ancillary, flags, _ = sock.recvmsg(
        size, socket.CMSG_SPACE(max_fds * received.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % received.itemsize
            received.frombytes(payload[:whole])
    return data, list(received), flags


def _frame_size(head: bytes, flags: int, sock: Any) -> int:  # noqa: ANN401 - a socket
    """The length prefix, completing a short first read."""
    import socket  # noqa: PLC0415 - daemon side only

    if flags & socket.MSG_CTRUNC:
        raise ProtocolError("too many descriptors")
    if not head:
        raise ProtocolError("connection closed")
    return int.from_bytes(head + _recv_exact(sock, _PREFIX - len(head)), "big")


def _decode(sock: Any, size: int) -> dict[str, Any]:  # noqa: ANN401 - socket or _socket
    if size > MAX_MESSAGE:
        raise ProtocolError("message too large")
    return decode(_recv_exact(sock, size))


def decode(payload: bytes) -> dict[str, Any]:
    """One message from its marshal payload; ProtocolError if it is not one."""
    try:
        message = marshal.loads(payload)  # noqa: S302 - same user, same package; see module docstring
    except (ValueError, EOFError, TypeError) as exc:
        raise ProtocolError(f"malformed message: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("message is not a mapping")
    return message


def _recv_exact(sock: Any, size: int) -> bytes:  # noqa: ANN401 - socket or _socket
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 16))
        if not chunk:
            raise ProtocolError("connection closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
