"""The L3 egress proxy's listening socket, made inside the program's namespace.

At L3 with the operator's opt-in the program keeps its private network
namespace (loopback only, no route, no resolver); its one way out is the
guard's proxy, which runs outside. The supervisor starts the proxy first and
reserves here the descriptor the proxy waits on
(:func:`reserve_proxy_channel`); the child setup takes it
(:func:`take_proxy_channel`) and, once inside the new namespace, makes the
listening socket on ``127.0.0.1:3128`` there and sends it over
(:func:`send_listener`). A socket belongs to the namespace it was created
in, so the proxy serves the program's loopback from outside.

Kept apart from :mod:`statetrace_guard.online` so that the run path imports
nothing of the proxy itself.
"""

from __future__ import annotations

import os

__all__ = [
    "PROXY_PORT",
    "proxy_environment",
    "reserve_proxy_channel",
    "send_listener",
    "take_proxy_channel",
]

PROXY_PORT = 3128
_LOOPBACK = "localhost,127.0.0.1,::1"
_reserved: list[int] = []


def proxy_environment(port: int = PROXY_PORT) -> dict[str, str]:
    """The variables that point a program's tools at the proxy."""
    url = f"http://127.0.0.1:{port}"
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = url
    env["NO_PROXY"] = env["no_proxy"] = _LOOPBACK
    env["NODE_USE_ENV_PROXY"] = "1"  # Node's own fetch honours the above
    return env


def reserve_proxy_channel(fd: int) -> None:
    """In a supervisor: the proxy's end of the channel, for its one program."""
    _reserved[:] = [fd]


def take_proxy_channel() -> int | None:
    """The reserved channel, once; None when there is none."""
    return _reserved.pop() if _reserved else None


def send_listener(channel: int, port: int = PROXY_PORT) -> None:
    """In the program's child, inside its namespace: listen, hand it out.

    Raises:
        OSError: the socket cannot be made or sent (the program must not run).
    """
    import socket  # noqa: PLC0415 - only at L3 with the opt-in

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        with socket.socket(fileno=os.dup(channel)) as sender:
            socket.send_fds(sender, [b"L"], [listener.fileno()])
    finally:
        listener.close()
        os.close(channel)
