"""One network namespace per session below L3 (issue 15.5).

A server a session's job started must answer the session's next command,
and no other session's. Below L3 every program of a session therefore joins
one network namespace (loopback only, no route out), made by the session's
first command and kept alive by a bind mount of its ``/proc/<pid>/ns/net``
onto a file in guard's home (``netns/<key>``), as ``ip netns add`` does.
Later commands open that file and ``setns`` into it; ``guard session end``
unmounts and removes it (:func:`remove_session_network`).

Root only: a namespace made in another command's user namespace cannot be
joined by the next one's (``setns`` needs privilege over its owner). Without
root every program keeps a namespace of its own, which is as closed to the
outside (loopback reaches only the program itself). At L3 with the opt-in
each program keeps its own namespace too: the guard's proxy listens on
``127.0.0.1:3128`` inside it, once per program.

Guard's home is covered in every program's view, and programs hold no
capability and may not call ``setns``: no program opens another session's
namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os

from statetrace_guard.sandbox.landlock import libc as c_library
from statetrace_guard.sandbox.netns import CLONE_NEWNET, loopback_up

__all__ = [
    "open_session_network",
    "remove_session_network",
    "session_network_path",
]

_MS_BIND = 0x1000
_MNT_DETACH = 0x2
_EINVAL = 22


def session_network_path(home: str, log_dir: str, session_id: str) -> str:
    """The file holding the session's namespace: one per log directory and id."""
    key = f"{os.path.realpath(log_dir)}\0{session_id}".encode()
    return os.path.join(home, "netns", hashlib.sha256(key).hexdigest()[:32])  # noqa: PTH118


def open_session_network(path: str) -> int:
    """A descriptor to the session's namespace, made first when it is absent.

    Made under a lock beside it, so two first commands of one session agree
    on one namespace.

    Raises:
        OSError: it cannot be made or opened (the program must not run).
    """
    # os, not pathlib: this is on the path of every command below L3.
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)  # noqa: PTH103, PTH120
    lock = os.open(path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _holds_namespace(path):
            _make(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(lock)
    if not _is_namespace(os.fstat(fd)):
        os.close(fd)
        raise OSError(_EINVAL, f"{path} is not a network namespace")
    return fd


def remove_session_network(path: str) -> bool:
    """Unmount and remove the session's namespace file; whether one was there.

    The namespace itself ends with the last process in it (the caller ends
    the session's jobs first).
    """
    held = _holds_namespace(path)
    if held and c_library().umount2(path.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount({path}): {os.strerror(err)}")
    for name in (path, path + ".lock"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)  # noqa: PTH108
    return held


def _nsfs_device() -> int:
    return os.stat("/proc/self/ns/net").st_dev  # noqa: PTH116


def _is_namespace(info: os.stat_result) -> bool:
    return info.st_dev == _nsfs_device()


def _holds_namespace(path: str) -> bool:
    try:
        return _is_namespace(os.stat(path))  # noqa: PTH116
    except FileNotFoundError:
        return False


def _make(path: str) -> None:
    """Make the namespace in a child and bind it onto ``path``.

    A child, so the caller's own namespaces are never touched; the bind is
    made in the caller's mount namespace (the child shares it).
    """
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines report by status only
        status = 1
        try:
            libc = c_library()
            if libc.unshare(CLONE_NEWNET) == 0:
                loopback_up(libc)
                source = b"/proc/self/ns/net"
                if libc.mount(source, path.encode(), None, _MS_BIND, None) == 0:
                    status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not _holds_namespace(path):
        raise OSError(_EINVAL, f"cannot make the session's network namespace {path}")
