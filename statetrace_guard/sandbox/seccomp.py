"""The program's seccomp filter: classic BPF assembled here, loaded with ctypes.

NOTE(seccomp): written by hand rather than through libseccomp: the PyPI
bindings (``pyseccomp``, last release 2021) need the C library on the
machine, and what is filtered here is small and must be exact: argument
comparisons on the low 32 bits where the kernel truncates (``ioctl``'s
request, ``pid_t``), the architecture check, the x32 bit. The program is
built once per process in the parent; the child only hands it to the kernel.

What the filter does (``denied`` and ``rules`` below are the whole of it):

* a system call from another architecture than the one the filter was built
  for (i386 calls from an x86_64 process, x32 numbers) fails with EPERM;
* the calls in :data:`DENIED` fail with EPERM: file handles (``open_by_handle_at``
  reaches any file of a mounted filesystem by inode), ptrace and
  ``process_vm_*``, keyrings, bpf, perf, userfaultfd, io_uring (its socket and
  connect operations bypass this filter), the mount API, ``setns``, modules,
  kexec, swap, reboot, acct, quotas, ``chroot``, ``pidfd_getfd``;
* ``clone3`` fails with ENOSYS (its flags sit in memory a filter cannot read;
  libc falls back to ``clone``), ``clone``/``unshare`` with a namespace flag
  fail with EPERM;
* ``ioctl`` TIOCSTI and TIOCLINUX fail with EPERM (no keystrokes pushed into
  a terminal);
* ``prlimit64`` setting another process's limits, ``setpriority``,
  ``ioprio_set`` and ``sched_setscheduler/setparam/setattr`` on another
  process fail with EPERM (``sched_setaffinity`` stays: OpenMP pins its own
  threads by thread id, and inside the PID namespace the only other process
  is the guard's init);
* ``socket(AF_VSOCK)`` fails (a VM's host services), and unless the level
  allows Unix sockets, ``socket(AF_UNIX)`` and ``socketpair(AF_UNIX,
  SOCK_DGRAM)`` fail with EPERM: a program cannot reach a pathname socket of
  a service outside (tmux, docker, ssh-agent, the guard's helper); connected
  pairs (``socketpair`` stream/seqpacket) and inherited sockets keep working.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct
from dataclasses import dataclass

from statetrace_guard.sandbox.landlock import libc

__all__ = [
    "DENIED",
    "Arch",
    "FilterSpec",
    "arch_of_machine",
    "build_program",
    "install",
]

_AUDIT_ARCH_X86_64 = 0xC000003E
_AUDIT_ARCH_AARCH64 = 0xC00000B7
_X32_SYSCALL_BIT = 0x40000000

_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_AND_K = 0x54
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16

_AF_UNIX = 1
_AF_VSOCK = 40
_SOCK_TYPE_MASK = 0xF
_SOCK_DGRAM = 2
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x00000080  # CLONE_NEWTIME
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_NO_NEW_PRIVS = 38

# System call numbers (x86_64, aarch64); None where the call does not exist.
_NUMBERS: dict[str, tuple[int | None, int | None]] = {
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "move_mount": (429, 429),
    "open_tree": (428, 428),
    "open_tree_attr": (467, 467),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "setns": (308, 268),
    "chroot": (161, 51),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "iopl": (172, None),
    "ioperm": (173, None),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    "pidfd_getfd": (438, 438),
    "clone3": (435, 435),
    "clone": (56, 220),
    "unshare": (272, 97),
    "ioctl": (16, 29),
    "socket": (41, 198),
    "socketpair": (53, 199),
    "prlimit64": (302, 261),
    "setpriority": (141, 140),
    "ioprio_set": (251, 30),
    "sched_setscheduler": (144, 119),
    "sched_setparam": (142, 118),
    "sched_setattr": (314, 274),
}

DENIED: tuple[str, ...] = (
    "open_by_handle_at",
    "name_to_handle_at",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "setns",
    "chroot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "iopl",
    "ioperm",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "pidfd_getfd",
)


@dataclass(frozen=True)
class Arch:
    """An architecture the filter knows: its audit value and table column."""

    name: str
    audit: int
    column: int


_ARCHES = {
    "x86_64": Arch("x86_64", _AUDIT_ARCH_X86_64, 0),
    "aarch64": Arch("aarch64", _AUDIT_ARCH_AARCH64, 1),
}


def arch_of_machine(machine: str | None = None) -> Arch | None:
    """The running machine's architecture, or None when the filter lacks it."""
    name = os.uname().machine if machine is None else machine
    return _ARCHES.get({"arm64": "aarch64", "amd64": "x86_64"}.get(name, name))


@dataclass(frozen=True)
class FilterSpec:
    """What varies between levels: whether Unix sockets may be created."""

    unix_sockets: bool = False


class _Assembler:
    """Classic BPF with forward labels (jump offsets are resolved at the end)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, int]] = []

    def load(self, offset: int) -> None:
        self.code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, true: object, false: object) -> None:
        """Jump to label ``true``/``false`` (0 = the next instruction)."""
        self.code.append((op, true, false, k))

    def op(self, code: int, k: int) -> None:
        self.code.append((code, 0, 0, k))

    def label(self, name: str) -> None:
        self.code.append((-1, name, 0, 0))

    def assemble(self) -> bytes:
        labels: dict[object, int] = {}
        real: list[tuple[int, object, object, int]] = []
        for item in self.code:
            if item[0] == -1:
                labels[item[1]] = len(real)
            else:
                real.append(item)
        out = bytearray()
        for index, (code, true, false, k) in enumerate(real):
            out += struct.pack(
                "<HBBI",
                code,
                _offset(labels, true, index),
                _offset(labels, false, index),
                k,
            )
        return bytes(out)


def _offset(labels: dict[object, int], target: object, index: int) -> int:
    if target == 0:
        return 0
    distance = labels[target] - index - 1
    if not 0 <= distance <= 255:  # noqa: PLR2004 - an 8-bit jump field
        raise ValueError(f"seccomp jump to {target!r} out of range")
    return distance


def _low(arg: int) -> int:
    return _OFF_ARGS + 8 * arg


def _high(arg: int) -> int:
    return _OFF_ARGS + 8 * arg + 4


@functools.cache
def build_program(arch: Arch, spec: FilterSpec) -> bytes:
    """Assemble the filter for ``arch`` (cached: the same bytes every run)."""
    asm = _Assembler()
    numbers = {
        name: number
        for name, pair in _NUMBERS.items()
        if (number := pair[arch.column]) is not None
    }
    rules = _Rules(asm, numbers)
    asm.load(_OFF_ARCH)
    asm.jump(_JEQ_K, arch.audit, 0, "eperm")
    asm.load(_OFF_NR)
    if arch.name == "x86_64":
        asm.jump(_JGE_K, _X32_SYSCALL_BIT, "eperm", 0)
    for name in DENIED:
        if name in numbers:
            asm.jump(_JEQ_K, numbers[name], "eperm", 0)
    asm.jump(_JEQ_K, numbers["clone3"], "enosys", 0)
    rules.terminal_and_namespaces()
    rules.sockets(unix=spec.unix_sockets)
    rules.other_processes()
    asm.label("allow")
    asm.op(_RET_K, _RET_ALLOW)
    asm.label("eperm")
    asm.op(_RET_K, _RET_ERRNO | errno.EPERM)
    asm.label("enosys")
    asm.op(_RET_K, _RET_ERRNO | errno.ENOSYS)
    return asm.assemble()


class _Rules:
    """Blocks of ``nr == X -> test arguments -> EPERM or ALLOW``.

    Each block starts with the call number in the accumulator and decides
    every call with its number; the next block finds the number reloaded.
    """

    def __init__(self, asm: _Assembler, numbers: dict[str, int]) -> None:
        self.asm = asm
        self.numbers = numbers

    def _begin(self, name: str) -> str:
        skip = f"after-{name}"
        self.asm.jump(_JEQ_K, self.numbers[name], 0, skip)
        return skip

    def _end(self, skip: str) -> None:
        self.asm.op(_RET_K, _RET_ALLOW)
        self.asm.label(skip)
        self.asm.load(_OFF_NR)

    def terminal_and_namespaces(self) -> None:
        """TIOCSTI/TIOCLINUX; clone/unshare with a namespace flag."""
        asm = self.asm
        skip = self._begin("ioctl")  # the request is an unsigned int: low word
        asm.load(_low(1))
        asm.jump(_JEQ_K, _TIOCSTI, "eperm", 0)
        asm.jump(_JEQ_K, _TIOCLINUX, "eperm", 0)
        self._end(skip)
        for name in ("clone", "unshare"):  # the kernel keeps the low word
            skip = self._begin(name)
            asm.load(_low(0))
            asm.jump(_JSET_K, _NAMESPACE_FLAGS, "eperm", 0)
            self._end(skip)

    def sockets(self, *, unix: bool) -> None:
        """AF_VSOCK never; AF_UNIX only as connected pairs unless ``unix``."""
        asm = self.asm
        skip = self._begin("socket")
        asm.load(_low(0))
        asm.jump(_JEQ_K, _AF_VSOCK, "eperm", 0)
        if not unix:
            asm.jump(_JEQ_K, _AF_UNIX, "eperm", 0)
        self._end(skip)
        if unix:
            return
        skip = self._begin("socketpair")  # a datagram pair can sendto a path
        asm.load(_low(0))
        asm.jump(_JEQ_K, _AF_UNIX, 0, "allow")
        asm.load(_low(1))
        asm.op(_AND_K, _SOCK_TYPE_MASK)
        asm.jump(_JEQ_K, _SOCK_DGRAM, "eperm", 0)
        self._end(skip)

    def other_processes(self) -> None:
        """Limits, priorities and scheduling set on another process."""
        asm = self.asm
        skip = self._begin("prlimit64")
        asm.load(_low(0))  # pid_t: 0 is the caller
        asm.jump(_JEQ_K, 0, "allow", 0)
        asm.load(_low(2))  # a new limit (reading another's is harmless)
        asm.jump(_JEQ_K, 0, 0, "eperm")
        asm.load(_high(2))
        asm.jump(_JEQ_K, 0, "allow", "eperm")
        self._end(skip)
        for name, who in (
            ("setpriority", 1),
            ("ioprio_set", 1),
            ("sched_setscheduler", 0),
            ("sched_setparam", 0),
            ("sched_setattr", 0),
        ):
            skip = self._begin(name)
            asm.load(_low(who))
            asm.jump(_JEQ_K, 0, "allow", "eperm")
            self._end(skip)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install(program: bytes, arch: Arch) -> None:
    """Load ``program`` for the calling thread and its descendants.

    Sets no_new_privs first (a process without CAP_SYS_ADMIN needs it, and
    it is wanted anyway).

    Raises:
        OSError: the kernel refused the filter.
    """
    lib = libc()
    if lib.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(NO_NEW_PRIVS): {os.strerror(err)}")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    result = lib.syscall(
        _SYS_SECCOMP[arch.name],
        _SECCOMP_SET_MODE_FILTER,
        0,
        ctypes.byref(fprog),
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER): {os.strerror(err)}")
