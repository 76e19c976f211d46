"""The guard's vocabulary: autonomy levels and command effects.

Kept free of imports beyond the standard library: every path, the ``run`` hot
path included, needs these.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["OPT_IN_INSTALL", "OPT_IN_NET", "Effect", "Level", "format_level"]

OPT_IN_NET = "STATETRACE_AGENT_ALLOW_NET"
OPT_IN_INSTALL = "STATETRACE_AGENT_ALLOW_INSTALL"


class Level(IntEnum):
    """Autonomy levels of the plan; each includes every lower one."""

    L0 = 0  # observe: read-only
    L1 = 1  # edit & test (the default)
    L2 = 2  # experiment: pipelines with overrides, data maintenance
    L3 = 3  # online: downloads and installs, with the operator's opt-in

    @classmethod
    def parse(cls, text: str) -> Level:
        """Read ``L0``..``L3`` (case-insensitive); raise ValueError otherwise."""
        name = text.strip().upper()
        if name not in cls.__members__:
            msg = f"unknown level {text!r} (expected L0, L1, L2 or L3)"
            raise ValueError(msg)
        return cls[name]


def format_level(level: Level | None) -> str:
    """Name a required level; ``None`` means no level allows it."""
    return "never" if level is None else level.name


class Effect(StrEnum):
    """What a simple command does to the world."""

    READ = "read"
    WRITE = "write"
    NETWORK = "network"
    INSTALL = "install"
    DYNAMIC = "dynamic"  # not knowable statically: fail closed
