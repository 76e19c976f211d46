"""The mount plan: a read-only view of the machine with the level's grants on top.

In the program's private mount namespace (the style of bubblewrap's
``--ro-bind / / --bind ws ws``):

1. every mount is made read-only and a slave of the host's (one recursive
   ``mount_setattr``): writes, creates, deletes, renames, ``chmod``,
   ``chown``, ``utime`` and extended attributes fail with ``EROFS``
   everywhere, which Landlock alone does not cover (metadata, issue 12 K14);
2. each writable root of the level is bound over itself read-write;
3. each directory between a writable root and a protected path is bound over
   itself (*pinned*): a mount point cannot be renamed, removed or replaced
   (``EBUSY``), so ``mv Logs L2`` or ``mv .git g`` cannot carry a protected
   path away and put a look-alike in its place: protection holds by
   identity, not by name;
4. each protected path is bound over itself read-only (exactly that entry:
   its parent directory stays fully writable);
5. each hidden directory (guard's home: the chain and redaction key, the
   approvals, other sessions' state) is covered by an empty read-only tmpfs
   at every level, so a program cannot even read what lies below it; its
   parents inside a writable root are pinned like a protected path's;
6. a fresh read-only ``/dev`` as bubblewrap's ``--dev`` makes it:
   ``null``, ``zero``, ``full``, ``random``, ``urandom``, ``tty`` bound from
   the host, the program's own ``/dev/pts`` (a new devpts instance,
   ``ptmx`` linked to it) and ``/dev/shm`` (an empty tmpfs). The host's
   device nodes belong to root, which the program is: it read another
   terminal's input (the operator's typed password) from ``/dev/pts/N``,
   other processes' POSIX shared memory, and on a machine that allows it
   raw disks and input devices. Its own terminal stays usable through its
   descriptors and ``/dev/tty``; ``ttyname`` of it finds no name.

Every bind is made with the new mount API on a descriptor opened without
following any symlink (``openat2`` with ``RESOLVE_NO_SYMLINKS``): a path that
was turned into a symlink since it was planned fails the setup (exit 125)
instead of protecting the symlink's target. Device files stay usable on a
read-only mount (the kernel checks only regular files, directories and
links), so terminals and ``/dev/null`` need no bind.

Landlock, applied after, is the second layer (and forbids the program to
change the mounts); the capability drop of the isolation layer keeps root
inside from undoing them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import stat
from dataclasses import dataclass

from statetrace_guard.sandbox.landlock import libc as c_library

__all__ = [
    "MountPlan",
    "PrivateDevices",
    "apply_mounts",
    "drop_old_view_descriptors",
    "enter_mount_namespace",
    "make_mount_namespace",
    "make_private_devices",
    "plan_pins",
    "private_proc",
    "reserve_mount_namespace",
    "take_reserved_mount_namespace",
]

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_OPENAT2 = 437
_SYS_MOUNT_SETATTR = 442
# The new mount API has one number on every architecture.
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = 0o2000000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8
_DEV_ATTRS = _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NOEXEC
_MS_SLAVE = 1 << 19
_CLONE_NEWNS = 0x00020000


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


@dataclass(frozen=True)
class MountPlan:
    """What the child mounts, outermost first within each group.

    Attributes:
        writable: roots bound read-write over the read-only view.
        pinned: directories bound over themselves so they keep their name.
        readonly: protected paths bound read-only over themselves.
        hidden: directories covered by an empty read-only tmpfs.
        tmp_cover: (directory, its entry to keep): the directory covered by
            a read-only tmpfs holding only that entry (the program's own
            private temporary directory, bound back in).
        private_dev: fresh ``/dev/shm`` and ``/dev/pts`` made by the parent
            (its Landlock rules name their roots), attached here.
        make_devices: make them here instead (a user namespace: the parent
            cannot; the caller adds their rules after).
    """

    writable: tuple[str, ...]
    pinned: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    tmp_cover: tuple[str, ...] = ()
    private_dev: PrivateDevices | None = None
    make_devices: bool = False


@dataclass(frozen=True)
class PrivateDevices:
    """A program's own ``/dev/shm`` and ``/dev/pts``, made but not yet mounted.

    Made in the parent, before the Landlock ruleset: a rule must name the
    new file systems themselves (the rule check skips what a mount covers,
    so a rule on the host's ``/dev/pts`` or on the directory underneath
    reaches nothing in the program's view).

    Attributes:
        shm: a detached tmpfs (mode 1777).
        pts: a detached new devpts instance (``ptmx`` mode 0666).
    """

    shm: int
    pts: int

    def ptmx(self) -> int:
        """An ``O_PATH`` descriptor on the new instance's ``ptmx``."""
        return os.open(
            "ptmx", os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.pts
        )

    def close(self) -> None:
        """Close the parent's descriptors (the child attached its copies)."""
        os.close(self.shm)
        os.close(self.pts)


def make_private_devices() -> PrivateDevices:
    """A new tmpfs and devpts for one program (root: it may make mounts).

    Raises:
        OSError: the kernel refused one of them.
    """
    shm = _new_fs(
        b"tmpfs", ((b"mode", b"1777"),), _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV
    )
    try:
        options = ((b"newinstance", None), (b"ptmxmode", b"0666"), (b"mode", b"0620"))
        pts = _new_fs(b"devpts", options, _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NOEXEC)
    except BaseException:
        os.close(shm)
        raise
    return PrivateDevices(shm, pts)


def plan_pins(writable: tuple[str, ...], readonly: tuple[str, ...]) -> tuple[str, ...]:
    """Return the directories between a writable root and a protected path.

    A protected path outside every writable root needs no pin (its parents are
    read-only already); the writable root itself is a mount point anyway.
    """
    roots = sorted(writable, key=len, reverse=True)
    pins: dict[str, None] = {}
    for path in readonly:
        root = next((r for r in roots if path.startswith(r.rstrip("/") + "/")), None)
        if root is None:
            continue
        parent = os.path.dirname(path)
        chain = []
        while parent not in (root, os.path.dirname(parent)):
            chain.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(chain):
            pins[directory] = None
    return tuple(sorted(pins, key=lambda p: (p.count("/"), p)))


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _syscall(number: int, *args: object) -> int:
    return int(c_library().syscall(number, *args))


def _open_exact(path: str) -> int:
    """An O_PATH descriptor on ``path``, refusing any symlink on the way."""
    how = _OpenHow(
        os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW,
        0,
        _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
    )
    fd = _syscall(
        _SYS_OPENAT2,
        _AT_FDCWD,
        os.fsencode(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        _fail(f"open {path}")
    return fd


def _setattr(fd: int, path: bytes, flags: int, attr: _MountAttr, what: str) -> None:
    if (
        _syscall(
            _SYS_MOUNT_SETATTR,
            fd,
            path,
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        != 0
    ):
        _fail(f"mount_setattr({what})")


def _bind_over(path: str, *, set_flags: int = 0, clear_flags: int = 0) -> None:
    """Bind ``path`` (with what is mounted below it) over itself.

    ``set_flags`` apply to the whole copied tree (read-only stays read-only
    all the way down); ``clear_flags`` only to its top (a mount the host made
    read-only inside a writable root stays read-only).
    """
    target = _open_exact(path)
    try:
        tree = _syscall(
            _SYS_OPEN_TREE,
            target,
            b"",
            ctypes.c_uint(
                _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_EMPTY_PATH | _AT_RECURSIVE
            ),
        )
        if tree < 0:
            _fail(f"open_tree({path})")
        try:
            if set_flags:
                attr = _MountAttr(set_flags, 0, 0, 0)
                _setattr(tree, b"", _AT_EMPTY_PATH | _AT_RECURSIVE, attr, path)
            if clear_flags:
                attr = _MountAttr(0, clear_flags, 0, 0)
                _setattr(tree, b"", _AT_EMPTY_PATH, attr, path)
            flags = _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH
            if (
                _syscall(_SYS_MOVE_MOUNT, tree, b"", target, b"", ctypes.c_uint(flags))
                != 0
            ):
                _fail(f"move_mount({path})")
        finally:
            os.close(tree)
    finally:
        os.close(target)


def _new_fs(
    fstype: bytes, options: tuple[tuple[bytes, bytes | None], ...], attrs: int
) -> int:
    """A detached new file system of ``fstype`` (a mount descriptor)."""
    fs = _syscall(_SYS_FSOPEN, fstype, ctypes.c_uint(_FSOPEN_CLOEXEC))
    if fs < 0:
        _fail(f"fsopen({fstype.decode()})")
    try:
        for key, value in options:
            command = _FSCONFIG_SET_FLAG if value is None else _FSCONFIG_SET_STRING
            if _syscall(_SYS_FSCONFIG, fs, command, key, value, 0) != 0:
                _fail(f"fsconfig({fstype.decode()} {key.decode()})")
        if _syscall(_SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0) != 0:
            _fail(f"fsconfig({fstype.decode()} create)")
        mnt = _syscall(
            _SYS_FSMOUNT, fs, ctypes.c_uint(_FSMOUNT_CLOEXEC), ctypes.c_uint(attrs)
        )
        if mnt < 0:
            _fail(f"fsmount({fstype.decode()})")
        return mnt
    finally:
        os.close(fs)


def _empty_tmpfs() -> int:
    """A detached empty tmpfs, read-only, mode 0555 (an empty directory)."""
    attrs = (
        _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOEXEC
    )
    return _new_fs(b"tmpfs", ((b"mode", b"0555"), (b"size", b"4k")), attrs)


def _attach(mnt: int, path: str) -> None:
    """Move the detached mount ``mnt`` onto ``path`` (no symlink on the way)."""
    try:
        target = _open_exact(path)
        try:
            flags = _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH
            if (
                _syscall(_SYS_MOVE_MOUNT, mnt, b"", target, b"", ctypes.c_uint(flags))
                != 0
            ):
                _fail(f"move_mount({path})")
        finally:
            os.close(target)
    finally:
        os.close(mnt)


# The device nodes a program gets from the host (bubblewrap's ``--dev`` list):
# bound one by one into a fresh /dev, so no disk, input device, camera or
# other terminal of the machine is reachable by name.
_HOST_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


def _private_devices(devices: PrivateDevices) -> None:
    """A fresh read-only /dev: the safe host nodes, own /dev/pts and /dev/shm.

    Root inside owns the host's device nodes: without this it read raw
    disks (guard's key with them), ``/dev/input`` (keystrokes), another
    terminal's ``/dev/pts/N`` (what the operator typed there) and other
    processes' shared memory in ``/dev/shm``.
    """
    nodes: list[tuple[str, int]] = []
    try:
        nodes.extend(
            (name, _clone(f"/dev/{name}"))
            for name in _HOST_DEVICES
            if os.path.exists(f"/dev/{name}")
        )
        _attach(
            _new_fs(b"tmpfs", ((b"mode", b"0755"), (b"size", b"64k")), _DEV_ATTRS),
            "/dev",
        )
        for name, _ in nodes:
            os.close(
                os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666)
            )
        for name, target in _DEV_LINKS:
            os.symlink(target, f"/dev/{name}")
        for name in ("pts", "shm"):
            os.mkdir(f"/dev/{name}", 0o755)
        for name, node in nodes:
            _attach(node, f"/dev/{name}")
    except BaseException:
        for _, node in nodes:
            with contextlib.suppress(OSError):
                os.close(node)
        raise
    _attach(devices.pts, "/dev/pts")
    _attach(devices.shm, "/dev/shm")  # noqa: S108
    _setattr(_AT_FDCWD, b"/dev", 0, _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0), "/dev")


def _clone(path: str) -> int:
    """A detached copy of the mount at ``path`` (just that entry)."""
    origin = _open_exact(path)
    try:
        tree = _syscall(
            _SYS_OPEN_TREE,
            origin,
            b"",
            ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_EMPTY_PATH),
        )
        if tree < 0:
            _fail(f"open_tree({path})")
        return tree
    finally:
        os.close(origin)


def _cover_but(parent: str, keep: str) -> None:
    """Cover ``parent`` with a read-only tmpfs in which only ``keep`` is seen."""
    own = _clone(keep)  # before the cover hides it
    try:
        _attach(
            _new_fs(b"tmpfs", ((b"mode", b"0711"), (b"size", b"4k")), _DEV_ATTRS),
            parent,
        )
        os.mkdir(keep, 0o700)
    except BaseException:
        os.close(own)
        raise
    _attach(own, keep)
    _setattr(
        _AT_FDCWD,
        os.fsencode(parent),
        0,
        _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0),
        parent,
    )


def _hide(path: str) -> None:
    """Cover the directory ``path`` with an empty read-only tmpfs."""
    _attach(_empty_tmpfs(), path)


# What bubblewrap keeps read-only in a fresh /proc: uid 0 may write sysctls
# by file mode alone, without any capability.
_PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")


def _mount_proc() -> None:
    """A /proc of the caller's PID namespace over the host's (read-only) one."""
    flags = 0x2 | 0x4 | 0x8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    if c_library().mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(flags), None) != 0:
        _fail("mount(/proc)")
    for name in _PROC_READONLY:
        if os.path.lexists(f"/proc/{name}"):
            _bind_over(f"/proc/{name}", set_flags=_MOUNT_ATTR_RDONLY)


def _read_only_view() -> None:
    """Every mount read-only and a slave of the host's (nothing flows back)."""
    everything = _MountAttr(_MOUNT_ATTR_RDONLY, 0, _MS_SLAVE, 0)
    _setattr(_AT_FDCWD, b"/", _AT_RECURSIVE, everything, "/")


def apply_mounts(plan: MountPlan, *, fresh_proc: bool = False) -> None:
    """Build the plan's view; the caller is alone in a new mount namespace.

    Args:
        plan: what to make writable, pin and protect.
        fresh_proc: mount a new /proc (the caller is the first process of a
            new PID namespace), so the program sees only its own processes.

    Raises:
        OSError: a step failed; the program must not run.
    """
    # Also in a prepared namespace: a mount the host made since then has
    # propagated into it (it is a slave) and must be read-only too.
    _read_only_view()
    for path in plan.writable:
        _bind_over(path, clear_flags=_MOUNT_ATTR_RDONLY)
    for path in plan.pinned:
        _bind_over(path)
    for path in plan.readonly:
        _bind_over(
            path,
            set_flags=_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV,
        )
    for path in plan.hidden:
        _hide(path)
    if plan.tmp_cover:
        _cover_but(*plan.tmp_cover)
    if plan.private_dev is not None:
        _private_devices(plan.private_dev)
    elif plan.make_devices:
        _private_devices(make_private_devices())
    if fresh_proc:
        _mount_proc()


def make_mount_namespace() -> int:
    """Make a mount namespace ahead of time; return a descriptor to it.

    Root only, in a single-threaded process (the helper's launcher, between
    programs). A mount namespace is torn down by its last process, and its
    teardown waits for an RCU grace period: a few milliseconds the program's
    exit would otherwise charge to the command. A program that enters a
    prepared one leaves its supervisor holding it, so the teardown happens
    when the supervisor exits, after the outcome was reported.

    Raises:
        OSError: it cannot be made; the caller is back in its own namespace.
    """
    libc = c_library()
    home = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.open(".", os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
    try:
        if libc.unshare(_CLONE_NEWNS) != 0:
            _fail("unshare(mnt)")
        try:
            _read_only_view()
            return os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            if libc.setns(home, _CLONE_NEWNS) != 0:
                # Stuck in a read-only view that is not ours: nothing this
                # process does next may be trusted. End it.
                os._exit(70)
            os.fchdir(cwd)
    finally:
        os.close(home)
        os.close(cwd)


def enter_mount_namespace(fd: int) -> None:
    """Join the prepared namespace ``fd`` (in the child, before the binds)."""
    if c_library().setns(fd, _CLONE_NEWNS) != 0:
        _fail("setns(mnt)")


_reserved: list[int] = []
# Prepared namespaces handed to a program: kept open by its supervisor until
# that exits (see make_mount_namespace), never closed early.
_held: list[int] = []


def reserve_mount_namespace(fd: int) -> None:
    """In a supervisor: the prepared namespace its one program enters."""
    _reserved[:] = [fd]


def take_reserved_mount_namespace() -> int | None:
    """The reserved namespace, once (held open until this process exits)."""
    if not _reserved:
        return None
    fd = _reserved.pop()
    _held.append(fd)
    return fd


def drop_old_view_descriptors(keep: int) -> tuple[int, ...]:
    """Close inherited directory and ``O_PATH`` descriptors (not 0-2, not ``keep``).

    A directory opened before the mounts (by whoever started ``guard run``)
    still refers to the old, writable view: ``openat(fd, "hooks/x")`` from it
    would bypass every read-only bind. The working directory is entered anew
    for the same reason. Regular files open only for reading (stdin from a
    file too) are exchanged for the same file opened in the new view: through
    ``/proc/self/fd/N`` the old descriptor reopens for writing on the old,
    writable mount (``< .git/hooks/pre-commit`` became a writable hook, one
    in guard's home an approvals file). Returns the descriptors closed.

    NOTE(mounts): a file the invoker opened for writing stays writable (it
    is the invoker's own grant).

    Raises:
        OSError: a read-only file cannot be reached as the same file in the
            new view (moved, or hidden): the program must not run with it.
    """
    closed = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd == keep:
            continue
        try:
            info = os.fstat(fd)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue  # the listing's own descriptor, already closed
        if fd > 2 and (stat.S_ISDIR(info.st_mode) or flags & os.O_PATH):  # noqa: PLR2004 - stdio stays as given
            os.close(fd)
            closed.append(fd)
        elif _reopenable(info, flags) and os.get_inheritable(fd):
            _reopen_in_view(fd, info, flags)  # close-on-exec ones end at exec
    return tuple(closed)


def _reopenable(info: os.stat_result, flags: int) -> bool:
    """A named regular file open only for reading (no name: nothing to protect)."""
    return (
        stat.S_ISREG(info.st_mode)
        and flags & os.O_ACCMODE == os.O_RDONLY
        and not flags & os.O_PATH
        and info.st_nlink > 0
    )


def _reopen_in_view(fd: int, info: os.stat_result, flags: int) -> None:
    """Put the same file, opened in this view, at ``fd`` (same offset and flags)."""
    path = os.readlink(f"/proc/self/fd/{fd}")
    try:
        fresh = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise OSError(
            error.errno, f"inherited descriptor {fd} ({path}): {error.strerror}"
        ) from error
    try:
        again = os.fstat(fresh)
        if (again.st_dev, again.st_ino) != (info.st_dev, info.st_ino):
            raise OSError(
                0, f"inherited descriptor {fd} ({path}) is not that file here"
            )
        os.lseek(fresh, os.lseek(fd, 0, os.SEEK_CUR), os.SEEK_SET)
        os.dup2(fresh, fd)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    finally:
        os.close(fresh)


def private_proc() -> None:
    """Only a fresh /proc, for a new PID namespace without a mount plan.

    The namespace's mounts become slaves of the host's first, so the new
    /proc does not propagate back.

    Raises:
        OSError: a step failed; the program must not run.
    """
    _setattr(_AT_FDCWD, b"/", _AT_RECURSIVE, _MountAttr(0, 0, _MS_SLAVE, 0), "/")
    _mount_proc()
