"""The seccomp filter: its program checked by a small BPF interpreter, then for real.

The interpreter runs the assembled program on synthetic ``seccomp_data``, so
the aarch64 filter and foreign-architecture calls are checked on any machine;
the real tests load the filter into a forked child.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys

import pytest

from statetrace_guard.sandbox import capabilities, seccomp

X86 = seccomp.arch_of_machine("x86_64")
ARM = seccomp.arch_of_machine("aarch64")
ALLOW = 0x7FFF0000
EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS
AUDIT_I386 = 0x40000003


def evaluate(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Run classic BPF over a seccomp_data (nr, arch, ip, six 64-bit args)."""
    args = (*args, *([0] * (6 - len(args))))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    acc = 0
    pc = 0
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif op == 0x54:  # and #k
            acc &= k
        elif op in (0x15, 0x35, 0x45):  # jeq, jge, jset
            hit = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += jt if hit else jf
        elif op == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unknown opcode {op:#x}")


def spec(unix: bool = False) -> seccomp.FilterSpec:
    return seccomp.FilterSpec(unix_sockets=unix)


CASES = [
    # each: the call, its arguments, what the filter answers
    ("open_by_handle_at", (), EPERM),
    ("ptrace", (), EPERM),
    ("io_uring_setup", (), EPERM),
    ("mount", (), EPERM),
    ("setns", (), EPERM),
    ("clone3", (), ENOSYS),
    ("clone", (0x11,), ALLOW),  # fork: SIGCHLD only
    ("clone", (0x10000000 | 0x11,), EPERM),  # CLONE_NEWUSER
    ("unshare", (0x200,), ALLOW),  # CLONE_FS
    ("unshare", (0x40000000,), EPERM),  # CLONE_NEWNET
    ("ioctl", (0, 0x5412), EPERM),  # TIOCSTI
    ("ioctl", (0, (1 << 32) | 0x5412), EPERM),  # high bits ignored by the kernel
    ("ioctl", (0, 0x541C), EPERM),  # TIOCLINUX
    ("ioctl", (0, 0x5401), ALLOW),  # TCGETS
    ("socket", (1, 1), EPERM),  # AF_UNIX
    ("socket", (2, 1), ALLOW),  # AF_INET
    ("socket", (40, 1), EPERM),  # AF_VSOCK
    ("socketpair", (1, 1), ALLOW),  # stream pair
    ("socketpair", (1, 2 | 0o2000000), EPERM),  # dgram pair (with CLOEXEC)
    ("prlimit64", (0, 7, 0x1000), ALLOW),  # own limits
    ("prlimit64", (1, 7, 0, 0x1000), ALLOW),  # read another's
    ("prlimit64", (1, 7, 0x1000), EPERM),  # set another's
    ("prlimit64", (1, 7, 1 << 40), EPERM),  # pointer with only high bits
    ("setpriority", (0, 0, 10), ALLOW),
    ("setpriority", (0, 1, 10), EPERM),
    ("sched_setscheduler", (0, 0, 0), ALLOW),
    ("sched_setscheduler", (1, 0, 0), EPERM),
]


class TestProgram:
    @pytest.mark.parametrize("arch", [X86, ARM], ids=["x86_64", "aarch64"])
    @pytest.mark.parametrize(("name", "args", "expected"), CASES)
    def test_decisions(self, arch, name, args, expected):
        """Each rule decides as documented, on both architectures."""
        program = seccomp.build_program(arch, spec())
        nr = seccomp._NUMBERS[name][arch.column]
        assert evaluate(program, nr, arch.audit, args) == expected

    @pytest.mark.parametrize("arch", [X86, ARM], ids=["x86_64", "aarch64"])
    def test_unix_sockets_when_the_level_allows_them(self, arch):
        program = seccomp.build_program(arch, spec(unix=True))
        socket_nr = seccomp._NUMBERS["socket"][arch.column]
        pair_nr = seccomp._NUMBERS["socketpair"][arch.column]
        assert evaluate(program, socket_nr, arch.audit, (1, 1)) == ALLOW
        assert evaluate(program, pair_nr, arch.audit, (1, 2)) == ALLOW
        assert evaluate(program, socket_nr, arch.audit, (40, 1)) == EPERM

    def test_another_architecture_is_refused(self):
        """i386 calls from an x86_64 process, or aarch64 data on x86_64: EPERM."""
        program = seccomp.build_program(X86, spec())
        assert evaluate(program, 20, AUDIT_I386) == EPERM  # i386 getpid
        assert evaluate(program, 39, ARM.audit) == EPERM
        assert evaluate(program, 39, X86.audit) == ALLOW  # x86_64 getpid

    def test_x32_numbers_are_refused(self):
        program = seccomp.build_program(X86, spec())
        assert evaluate(program, 0x40000000 | 39, X86.audit) == EPERM

    def test_ordinary_calls_pass(self):
        program = seccomp.build_program(X86, spec())
        for nr in (0, 1, 2, 3, 57, 59, 60, 231, 257):  # read..exit_group, openat
            assert evaluate(program, nr, X86.audit) == ALLOW

    def test_unknown_architecture_has_no_filter(self):
        """riscv64 (or anything unlisted): no filter; the plan lists it missing."""
        assert seccomp.arch_of_machine("riscv64") is None
        assert seccomp.arch_of_machine("arm64") == ARM


def in_child(action) -> int:
    """Run ``action`` in a forked child; return its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = action()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


needs_native = pytest.mark.skipif(
    not sys.platform.startswith("linux") or seccomp.arch_of_machine() is None,
    reason="no seccomp filter for this machine",
)


@needs_native
class TestLoaded:
    def _errno(self, call) -> int:
        try:
            call()
        except OSError as exc:
            return exc.errno or 0
        return 0

    def test_a_loaded_filter_refuses_and_allows(self):
        arch = seccomp.arch_of_machine()
        program = seccomp.build_program(arch, spec())
        libc = ctypes.CDLL(None, use_errno=True)

        def check() -> int:
            seccomp.install(program, arch)
            results = [
                self._errno(lambda: socket.socket(socket.AF_UNIX)) == errno.EPERM,
                self._errno(socket.socketpair) == 0,
                self._errno(lambda: socket.socket(socket.AF_INET)) == 0,
                libc.syscall(seccomp._NUMBERS["io_uring_setup"][arch.column], 1, 0)
                == -1
                and ctypes.get_errno() == errno.EPERM,
                libc.unshare(0x10000000) == -1 and ctypes.get_errno() == errno.EPERM,
                os.fork() != -1,
            ]
            return 0 if all(results) else 1 + results.index(False)

        assert in_child(check) == 0

    def test_capabilities_dropped_and_checked(self):
        """drop_all + the filter leave nothing; check_dropped says so."""
        arch = seccomp.arch_of_machine()
        program = seccomp.build_program(arch, spec())
        bounding = capabilities.may_drop_bounding()

        def check() -> int:
            capabilities.drop_all(bounding=bounding)
            seccomp.install(program, arch)
            left = capabilities.check_dropped(bounding=bounding, seccomp=True)
            return 0 if left is None else 1

        assert in_child(check) == 0

    @pytest.mark.skipif(os.geteuid() != 0, reason="a root process holds capabilities")
    def test_check_dropped_names_what_is_held(self):
        left = capabilities.check_dropped(bounding=True, seccomp=True)
        assert left is not None
        assert "CapEff=" in left
        assert "NoNewPrivs" in left
