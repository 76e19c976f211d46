"""Landlock through ctypes: ABI probe, rulesets, path and port rules.

The ``landlock`` package on PyPI has no network rules, so the three system
calls are made directly. Rights are chosen per ABI version:

====  =================================================================
ABI   adds
====  =================================================================
1     filesystem access rights (Linux 5.13)
2     ``REFER``: links and renames across directories (5.19)
3     ``TRUNCATE`` (6.2)
4     TCP ``BIND``/``CONNECT`` port rules (6.7)
5     ``IOCTL_DEV``: ioctl on device files (6.10)
6     scopes: abstract unix sockets and signals (6.12)
====  =================================================================

Everything known to the ABI is *handled* (denied unless a rule grants it), so
a newer right is never left open by accident.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from dataclasses import dataclass

__all__ = [
    "ACCESS_DEVICE",
    "ACCESS_FILE_WRITE",
    "ACCESS_KEEP_DIRS",
    "ACCESS_READ",
    "ACCESS_WRITE",
    "Ruleset",
    "abi_version",
    "handled_fs",
    "libc",
    "set_no_new_privs",
]

# System call numbers: the generic table (x86_64, aarch64, riscv64 share them).
_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13
TRUNCATE = 1 << 14
IOCTL_DEV = 1 << 15
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

_ABI1_FS = (1 << 13) - 1
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

ACCESS_READ = EXECUTE | READ_FILE | READ_DIR
# NOTE(sandbox): MAKE_CHAR/MAKE_BLOCK are never granted: a root program could
# otherwise mknod a disk device inside the workspace and write the raw disk.
ACCESS_WRITE = (
    ACCESS_READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE
)
ACCESS_KEEP_DIRS = ACCESS_WRITE & ~REMOVE_DIR
ACCESS_FILE_WRITE = ACCESS_READ | WRITE_FILE | TRUNCATE
ACCESS_DEVICE = ACCESS_FILE_WRITE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, one handle per process (loaded on first use)."""
    global _libc  # noqa: PLW0603 - one handle per process, loaded on first use
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    """Return the kernel's Landlock ABI version, 0 when unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    version = libc().syscall(
        _SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


def handled_fs(abi: int) -> int:
    """Return every filesystem right the ABI knows (all of them handled)."""
    rights = _ABI1_FS
    if abi >= 2:  # noqa: PLR2004 - ABI numbers are the kernel's
        rights |= REFER
    if abi >= 3:  # noqa: PLR2004
        rights |= TRUNCATE
    if abi >= 5:  # noqa: PLR2004
        rights |= IOCTL_DEV
    return rights


def set_no_new_privs() -> None:
    """Set ``PR_SET_NO_NEW_PRIVS`` (required by ``landlock_restrict_self``)."""
    _check(libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


@dataclass
class Ruleset:
    """An open Landlock ruleset file descriptor, built in the parent.

    Attributes:
        abi: the ABI version the rights were chosen for.
        fd: the ruleset descriptor (close-on-exec).
    """

    abi: int
    fd: int

    @classmethod
    def create(cls, abi: int, *, deny_tcp: bool, scope_unix: bool) -> Ruleset:
        """Create a ruleset handling every right of ``abi``.

        Args:
            abi: the kernel's ABI version (>= 1).
            deny_tcp: handle TCP bind and connect (ABI >= 4), with no port
                rules: all TCP is denied.
            scope_unix: confine abstract unix sockets to the domain (ABI >= 6).
        """
        attr = _RulesetAttr(handled_fs(abi), 0, 0)
        size = 8
        if abi >= 4:  # noqa: PLR2004
            size = 16
            attr.handled_access_net = (NET_BIND_TCP | NET_CONNECT_TCP) * deny_tcp
        if abi >= 6:  # noqa: PLR2004
            size = 24
            attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET * scope_unix
        fd = libc().syscall(
            _SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0
        )
        return cls(abi, _check(fd, "landlock_create_ruleset"))

    def allow_path(self, path: str, access: int) -> bool:
        """Grant ``access`` beneath ``path``; return False if it is gone.

        Symlinks are not followed: a link inside the workspace must not turn
        into a grant on its target. Rights that do not apply to a file are
        dropped when ``path`` is not a directory.
        """
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        return self._allow_fd(fd, path, access)

    def allow_open_file(self, fd: int, access: int) -> bool:
        """Grant ``access`` on the regular file already open as ``fd``.

        Goes through ``/proc/self/fd``, which names the very file the
        descriptor holds (no race with a rename of its path).
        """
        try:
            path_fd = os.open(f"/proc/self/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return False
        if not stat.S_ISREG(os.fstat(path_fd).st_mode):
            os.close(path_fd)
            return False
        return self._allow_fd(path_fd, f"fd {fd}", access)

    def allow_fd(self, fd: int, label: str, access: int) -> bool:
        """Grant ``access`` beneath the ``O_PATH`` descriptor ``fd`` (closed here)."""
        return self._allow_fd(fd, label, access)

    def _allow_fd(self, fd: int, path: str, access: int) -> bool:
        """Add a path-beneath rule for the O_PATH ``fd``, then close it."""
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                return False
            if not stat.S_ISDIR(mode):
                access &= _FILE_ONLY
            rule = _PathBeneath(access & handled_fs(self.abi), fd)
            _check(
                libc().syscall(
                    _SYS_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0
                ),
                f"landlock_add_rule({path})",
            )
        finally:
            os.close(fd)
        return True

    def restrict_self(self) -> None:
        """Enforce the ruleset on the calling thread and its descendants."""
        set_no_new_privs()
        _check(libc().syscall(_SYS_RESTRICT_SELF, self.fd, 0), "landlock_restrict_self")

    def close(self) -> None:
        """Close the descriptor (the parent, after fork)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
