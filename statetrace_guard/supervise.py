"""Process-tree supervision with psutil: sample, and end the whole tree.

Imported only once a program outlives the first sampling interval or leaves
descendants behind: psutil costs about 30 ms to import, more than the rest
of ``guard run``. The guard is a child subreaper, so every descendant of the
program (also those that call setsid or double-fork) is either below the
program or reparented to the guard; the tree is "the guard's children started
at or after the program, and all their descendants". With a PID namespace
the tree is simply every descendant of its init (nothing can leave the
namespace; orphans go to init), init itself excluded.
"""

from __future__ import annotations

import os
import signal
import time

import psutil

from statetrace_guard.reaped import Reaped

__all__ = ["TreeTracker"]

_POLL_S = 0.02
_KILL_ROUNDS = 50
_MAX_EXECUTABLES = 50
# create_time has clock-tick resolution: accept children a little "older".
_CREATE_SLACK_S = 0.05


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            continue


class TreeTracker:
    """Follows the program's process tree: samples figures, ends the tree."""

    def __init__(
        self,
        main_pid: int,
        started: float,
        start_ticks: int | None = None,
        *,
        init: bool = False,
        reaped: Reaped | None = None,
        helpers: tuple[int, ...] = (),
    ) -> None:
        """Track ``main_pid`` and every guard child created since it.

        Args:
            main_pid: the program's pid (reaped by the runner, not here), or
                with ``init`` the PID namespace's init.
            started: ``time.time()`` just before the program was forked.
            start_ticks: the program's start in clock ticks since boot, read
                from ``/proc``; compared on psutil's own clock when given.
            init: ``main_pid`` is init: track its descendants instead.
            reaped: where to add what the tracker reaps.
            helpers: the guard's own children beside the program (the L3
                egress proxy), never part of its tree.
        """
        self.main_pid = main_pid
        self._init = init
        self._helpers = frozenset(helpers)
        if start_ticks is not None:
            tick = os.sysconf("SC_CLK_TCK")
            self._started = psutil.boot_time() + start_ticks / tick
        else:
            self._started = started - _CREATE_SLACK_S
        self._me = _process_or_none(main_pid if init else os.getpid())
        self.seen: set[int] = set() if init else {main_pid}
        self.executables: dict[str, str] = {}
        self.peak_rss = 0
        self.peak_vms = 0
        self.reaped = Reaped() if reaped is None else reaped

    def tree(self) -> list[psutil.Process]:
        """Return the program's live tree (main process first when alive)."""
        procs: list[psutil.Process] = []
        if self._me is None:
            return procs  # init gone: the kernel ended its namespace with it
        if self._init:
            try:
                return list(self._me.children(recursive=True))
            except psutil.Error:
                return procs
        try:
            children = self._me.children()
        except psutil.Error:
            return procs
        for child in children:
            if not self._ours(child):
                continue
            procs.append(child)
            try:
                procs.extend(child.children(recursive=True))
            except psutil.Error:
                continue
        return procs

    def _ours(self, child: psutil.Process) -> bool:
        if child.pid == self.main_pid:
            return True
        if child.pid in self._helpers:
            return False
        try:
            return child.create_time() >= self._started
        except psutil.Error:
            return False

    def sample(self) -> int:
        """Record rss, executables and pids of the live tree; return its size."""
        rss = 0
        procs = [p for p in self.tree() if _alive(p)]
        for proc in procs:
            self.seen.add(proc.pid)
            try:
                with proc.oneshot():
                    mem = proc.memory_info()
                    self._note_exe(proc)
            except psutil.Error:
                continue
            rss += mem.rss
            self.peak_vms = max(self.peak_vms, mem.vms)
        self.peak_rss = max(self.peak_rss, rss)
        return len(procs)

    def _note_exe(self, proc: psutil.Process) -> None:
        if len(self.executables) >= _MAX_EXECUTABLES:
            return
        try:
            path = proc.exe()
        except psutil.Error:
            path = ""
        name = proc.name()
        key = path or name
        if key and key not in self.executables:
            self.executables[key] = name

    def leftovers(self) -> list[psutil.Process]:
        """Return live descendants other than the program itself."""
        return [p for p in self.tree() if p.pid != self.main_pid and _alive(p)]

    def end(self, grace: float) -> list[dict[str, object]]:
        """End the whole tree: SIGTERM, up to ``grace`` seconds, then SIGKILL.

        Returns:
            ``{"pid", "name", "exe"}`` of every process that was signalled.
        """
        procs = [p for p in self.tree() if _alive(p)]
        ended = {p.pid: _describe(p) for p in procs}
        if grace > 0:
            _signal(procs, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_alive(p) for p in procs):
                time.sleep(_POLL_S)
        for _ in range(_KILL_ROUNDS):
            procs = [p for p in self.tree() if _alive(p)]
            if not procs:
                break
            ended.update({p.pid: _describe(p) for p in procs if p.pid not in ended})
            _signal(procs, signal.SIGKILL)
            time.sleep(0.001)
        self.reap_orphans()
        return list(ended.values())

    def reap_orphans(self) -> None:
        """Reap the guard's exited children other than the program."""
        if self._init:
            return  # init reaps them and reports their figures
        for proc in self.tree():
            if proc.pid == self.main_pid:
                continue
            try:
                pid, _status, usage = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if pid:
                self.reaped.add(pid, usage)


def _describe(proc: psutil.Process) -> dict[str, object]:
    try:
        return {"pid": proc.pid, "name": proc.name(), "exe": proc.exe()}
    except psutil.Error:
        return {"pid": proc.pid, "name": "", "exe": ""}


def _process_or_none(pid: int) -> psutil.Process | None:
    """The process, or None when it is gone already.

    A fast program's init (a grandchild under a user namespace's holder) can
    exit before the first sample: nothing is left to track then.
    """
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
