"""Resource use of reaped descendants: a value shared by runner and supervise.

It lives apart from both so that ``supervise`` (psutil, loaded late) does not
import ``runner`` back: runner -> supervise is the only edge between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reaped"]


@dataclass
class Reaped:
    """Resource use of descendants the guard itself reaped (wait4)."""

    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    maxrss_bytes: int = 0
    pids: set[int] = field(default_factory=set)
    others: int = 0  # reaped by the PID namespace's init (no pid here)

    def add(self, pid: int, usage: Any) -> None:  # noqa: ANN401 - struct_rusage
        """Fold one ``os.wait4`` rusage into the totals."""
        self.pids.add(pid)
        self.cpu_user_s += usage.ru_utime
        self.cpu_system_s += usage.ru_stime
        self.maxrss_bytes = max(self.maxrss_bytes, usage.ru_maxrss * 1024)

    def add_totals(self, totals: tuple[float, float, int, int]) -> None:
        """Fold init's ``(utime, stime, maxrss KiB, count)`` into the totals."""
        self.cpu_user_s += totals[0]
        self.cpu_system_s += totals[1]
        self.maxrss_bytes = max(self.maxrss_bytes, totals[2] * 1024)
        self.others += totals[3]
