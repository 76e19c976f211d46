"""Namespaces for the child: a private network, a private mount view.

As root the child calls ``unshare`` directly. Otherwise, where unprivileged
user namespaces are enabled, it enters a new user namespace at the same time
(mapping its own uid and gid, so files keep their owner); with a PID
namespace, the holder process of :mod:`.pidinit` has made it already.

* PID, IPC, UTS (``isolate``): the program's init enters new IPC, UTS and
  mount namespaces (no SysV objects or hostname of the host); the mount
  view then gets a fresh ``/proc`` of the PID namespace (:mod:`.mounts`).
* Network: a new network namespace has only loopback, brought up here with
  one ``SIOCSIFFLAGS`` ioctl on a datagram socket (no ``ip`` binary).
* Files: a new mount namespace, in which :mod:`.mounts` builds the
  program's view (read-only everywhere, the level's grants on top, protected
  paths read-only). Landlock (applied after) forbids the program to change it.
"""

from __future__ import annotations

import ctypes
import os

from statetrace_guard.sandbox.landlock import libc as c_library

__all__ = [
    "enter_namespaces",
    "enter_user_namespace",
    "loopback_up",
    "make_network_namespace",
    "reserve_network_namespace",
    "take_reserved_network_namespace",
    "unprivileged_userns_enabled",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
_AF_INET = 2
_SOCK_DGRAM_CLOEXEC = 2 | 0o2000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFREQ_SIZE = 40
_FLAGS_OFFSET = 16


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def unprivileged_userns_enabled() -> bool:
    """Return whether a non-root user may create user namespaces (sysctls)."""
    checks = (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    )
    for path, blocked in checks:
        try:
            if _read(path).strip() == blocked:
                return False
        except OSError:
            continue
    return os.path.exists("/proc/self/ns/user")


def _map_ids(uid: int, gid: int) -> None:
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def loopback_up(libc: ctypes.CDLL) -> None:
    """Bring ``lo`` up in the caller's (new) network namespace."""
    fd = libc.socket(_AF_INET, _SOCK_DGRAM_CLOEXEC, 0)
    if fd < 0:
        _raise("socket")
    try:
        ifreq = ctypes.create_string_buffer(b"lo", _IFREQ_SIZE)
        if libc.ioctl(fd, _SIOCGIFFLAGS, ifreq) < 0:
            _raise("ioctl(SIOCGIFFLAGS, lo)")
        flags = int.from_bytes(ifreq.raw[_FLAGS_OFFSET : _FLAGS_OFFSET + 2], "little")
        flags |= _IFF_UP | _IFF_RUNNING
        ifreq = ctypes.create_string_buffer(
            b"lo".ljust(_FLAGS_OFFSET, b"\0") + flags.to_bytes(2, "little"),
            _IFREQ_SIZE,
        )
        if libc.ioctl(fd, _SIOCSIFFLAGS, ifreq) < 0:
            _raise("ioctl(SIOCSIFFLAGS, lo)")
    finally:
        os.close(fd)


def enter_user_namespace(*, extra_flags: int = 0) -> None:
    """Enter a new user namespace (and ``extra_flags``), mapping our own ids.

    Raises:
        OSError: the kernel refused (user namespaces disabled).
    """
    uid, gid = os.getuid(), os.getgid()
    if c_library().unshare(CLONE_NEWUSER | extra_flags) != 0:
        _raise("unshare(CLONE_NEWUSER)")
    _map_ids(uid, gid)


def enter_namespaces(
    *,
    as_root: bool,
    network: bool,
    mounts: bool,
    prepared_network: int | None = None,
    isolate: bool = False,
    user_entered: bool = False,
) -> None:
    """Move the calling (child) process into new namespaces.

    Args:
        as_root: unshare directly; otherwise create a user namespace too and
            map the caller's uid and gid into it.
        network: enter a new network namespace with loopback up.
        mounts: enter a new mount namespace (the caller builds the view).
        prepared_network: a fresh network namespace made ahead of time (see
            :func:`make_network_namespace`), entered instead of a new one.
        isolate: the caller is init of a new PID namespace: new IPC and UTS
            namespaces (the caller gives it a mount namespace with a fresh
            ``/proc``).
        user_entered: the user namespace exists already (made with the PID
            namespace).

    Raises:
        OSError: a namespace, mount or loopback step failed.
    """
    libc = c_library()
    uid, gid = os.getuid(), os.getgid()
    join = network and as_root and prepared_network is not None
    fresh_network = network and not join
    flags = (CLONE_NEWNET if fresh_network else 0) | (CLONE_NEWNS if mounts else 0)
    if isolate:
        flags |= CLONE_NEWIPC | CLONE_NEWUTS
    if join and libc.setns(prepared_network, CLONE_NEWNET) != 0:
        _raise("setns(net)")
    if not flags:
        return
    new_user = not as_root and not user_entered
    if libc.unshare(flags | CLONE_NEWUSER if new_user else flags) != 0:
        _raise("unshare")
    if new_user:
        _map_ids(uid, gid)
    if fresh_network:
        loopback_up(libc)


def make_network_namespace() -> int:
    """Make a fresh network namespace (loopback up); return a descriptor to it.

    Root only, and only in a single-threaded process: the caller enters the
    new namespace for the moment it takes to bring loopback up, then returns
    to its own. A process that starts one program after another (the
    helper's launcher) makes the next one's namespace while the current one
    runs: creating it costs ~1 ms, entering it almost nothing. Each is used
    by one program only, so programs never share a loopback.

    Raises:
        OSError: it cannot be made; the caller is back in its own namespace.
    """
    libc = c_library()
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            _raise("unshare")
        try:
            loopback_up(libc)
            return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                # Stuck in a namespace that is not ours: nothing this
                # process does next may be trusted. End it.
                os._exit(70)
    finally:
        os.close(home)


_reserved: list[int] = []


def reserve_network_namespace(fd: int) -> None:
    """In a supervisor: the prepared namespace its one program enters."""
    _reserved[:] = [fd]


def take_reserved_network_namespace() -> int | None:
    """The reserved namespace, once; None when there is none."""
    return _reserved.pop() if _reserved else None


def _read(path: str) -> str:
    """Read a small /proc or /sys file (os, not pathlib: the run path is lean)."""
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    """Write a /proc control file in one call."""
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)
