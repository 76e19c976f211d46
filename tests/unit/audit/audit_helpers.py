"""Helpers shared by the audit tests (a uniquely named module, not conftest)."""

from __future__ import annotations

from typing import Any

from statetrace_guard.audit.trail import CommandFacts


def make_facts(argv: tuple[str, ...] = ("ls", "-la"), **changes: Any) -> CommandFacts:
    """Build command facts with sensible defaults."""
    values: dict[str, Any] = {
        "session_id": "s1",
        "task_id": "ST-1",
        "level": "L1",
        "argv": argv,
        "cwd": "/work/ws",
        "pid": 4242,
        "effects": ("read",),
        "decision": "allow",
        "reasons": (),
        "rules": ("default",),
        "policy_sha256": "0" * 64,
        "network": False,
        "urls": (),
        "env": {
            "STATETRACE_AGENT_ALLOW_NET": None,
            "STATETRACE_AGENT_ALLOW_INSTALL": None,
        },
    }
    values.update(changes)
    return CommandFacts(**values)
