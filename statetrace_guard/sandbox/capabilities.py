"""No capabilities and no way back: what the program keeps of root.

In the child, after Landlock and before seccomp, :func:`drop_all` locks the
secure bits that make uid 0 ordinary (no capabilities granted on exec, none
restored by a change of uid, no keeping or raising of ambient ones), drops
the whole bounding set, clears the ambient set and empties the effective,
permitted and inheritable sets. Together with no_new_privs (set by the
seccomp step) no exec, setuid binary or file capability brings one back.

NOTE(capabilities): a root program without capabilities is still uid 0: it
owns root's files (chmod, utimes, user xattrs, unix sockets with owner
write, 0600 files), may signal and trace root's processes, and may remove
root's SysV IPC objects. Those are answered elsewhere: Landlock and the
mount plan for files, the PID and IPC namespaces for processes and IPC, the
seccomp filter for tracing, handles and sockets.

:func:`check_dropped` reads ``/proc/self/status`` just before exec; the
runner fails closed (125) when anything is left.
"""

from __future__ import annotations

import ctypes
import functools
import os

from statetrace_guard.sandbox.landlock import libc

__all__ = [
    "check_dropped",
    "drop_all",
    "drop_bounding",
    "last_cap",
    "may_drop_bounding",
]

_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_SETPCAP = 8
# NOROOT, NO_SETUID_FIXUP and NO_CAP_AMBIENT_RAISE on, KEEP_CAPS off; every
# one of them locked, so the program cannot change them back.
_SECUREBITS = (
    (1 << 0)  # SECBIT_NOROOT
    | (1 << 1)  # SECBIT_NOROOT_LOCKED
    | (1 << 2)  # SECBIT_NO_SETUID_FIXUP
    | (1 << 3)  # SECBIT_NO_SETUID_FIXUP_LOCKED
    | (1 << 5)  # SECBIT_KEEP_CAPS_LOCKED
    | (1 << 6)  # SECBIT_NO_CAP_AMBIENT_RAISE
    | (1 << 7)  # SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)
_CAP_SETS = (b"CapInh", b"CapPrm", b"CapEff", b"CapAmb")


class _Header(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _Data(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


@functools.cache
def last_cap() -> int:
    """The highest capability number this kernel knows (read once)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as handle:  # noqa: PTH123
            return int(handle.read())
    except (OSError, ValueError):
        return 63


def may_drop_bounding() -> bool:
    """Whether this process holds CAP_SETPCAP (needed for bits and bounding)."""
    return bool(_own_caps().get(b"CapEff", 0) & (1 << _CAP_SETPCAP))


def _own_caps() -> dict[bytes, int]:
    try:
        with open("/proc/self/status", "rb") as handle:  # noqa: PTH123
            text = handle.read()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(b":")
        if name.startswith(b"Cap") or name in {b"NoNewPrivs", b"Seccomp"}:
            found[name] = int(value.strip(), 16 if name.startswith(b"Cap") else 10)
    return found


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


# Set once this process has emptied its bounding set (drop_bounding): a
# bounding set never grows back, so drop_all need not drop it again.
_bounding_empty: list[bool] = []


def drop_bounding() -> None:
    """Empty the bounding set now, ahead of ``drop_all`` (needs CAP_SETPCAP).

    NOTE(speed): an init forked ahead does this while it waits for its
    command: 41 calls less on the command's path. The effective set is
    untouched (init still mounts); the bounding set only limits what an
    exec may gain, and init execs nothing.

    Raises:
        OSError: a step the kernel refused.
    """
    lib = libc()
    for cap in range(last_cap() + 1):
        if lib.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            _raise(f"prctl(CAPBSET_DROP, {cap})")
    _bounding_empty[:] = [True]


def drop_all(*, bounding: bool) -> None:
    """Drop every capability of the calling process, for good.

    Args:
        bounding: also lock the secure bits and empty the bounding set
            (needs CAP_SETPCAP: root, or root inside a user namespace).

    Raises:
        OSError: a step the kernel refused.
    """
    lib = libc()
    if bounding:
        if lib.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0) != 0:
            _raise("prctl(SET_SECUREBITS)")
        if not _bounding_empty:  # check_dropped still reads CapBnd
            drop_bounding()
    if lib.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        _raise("prctl(CAP_AMBIENT_CLEAR_ALL)")
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if lib.capset(ctypes.byref(header), data) != 0:
        _raise("capset")


def check_dropped(*, bounding: bool, seccomp: bool) -> str | None:
    """Say what is still held, or None when the process holds nothing.

    Read from ``/proc/self/status`` (what the kernel says, not what the
    calls returned); an unreadable status is a failure.
    """
    found = _own_caps()
    if not found:
        return "cannot read /proc/self/status"
    wanted = list(_CAP_SETS) + ([b"CapBnd"] if bounding else [])
    held = [f"{name.decode()}={found.get(name, -1):016x}" for name in wanted]
    problems = [h for h, name in zip(held, wanted, strict=True) if found.get(name)]
    if found.get(b"NoNewPrivs") != 1:
        problems.append("NoNewPrivs is not set")
    if seccomp and found.get(b"Seccomp") != 2:  # noqa: PLR2004 - filter mode
        problems.append("no seccomp filter")
    return ", ".join(problems) or None
