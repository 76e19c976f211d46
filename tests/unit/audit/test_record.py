"""The record schema registry."""

from __future__ import annotations

from typing import Literal

from statetrace_guard.audit.chain import GENESIS
from statetrace_guard.audit.record import (
    DEFAULT_REGISTRY,
    GenericRecord,
    HeaderRecord,
    SchemaRegistry,
)

BASE = {
    "schema_version": 1,
    "seq": 3,
    "prev_sha256": GENESIS,
    "sha256": "a" * 64,
    "ts": "2026-01-01T00:00:00.000Z",
}


class SessionStarted(GenericRecord):
    event: Literal["session.started"]
    operator: str


def test_unknown_event_uses_generic_model():
    """An event nobody registered still has its chain fields checked."""
    assert (
        DEFAULT_REGISTRY.problem({**BASE, "event": "approval.granted", "x": 1}) is None
    )
    assert "sha256" in (
        DEFAULT_REGISTRY.problem({**BASE, "event": "x", "sha256": "z"}) or ""
    )


def test_with_event_extends_without_changing_default():
    """Registering an event gives a new registry; the default is untouched."""
    registry = DEFAULT_REGISTRY.with_event("session.started", SessionStarted)
    assert registry.model_for("session.started") is SessionStarted
    assert DEFAULT_REGISTRY.model_for("session.started") is GenericRecord
    assert "operator" in (registry.problem({**BASE, "event": "session.started"}) or "")


def test_header_may_name_other_subjects():
    """A header may name a workspace (approval stores) instead of a session."""
    header = {
        **BASE,
        "seq": 0,
        "event": "log.header",
        "purpose": "approvals",
        "guard_version": "0.1.0",
        "workspace": "/w",
    }
    assert isinstance(DEFAULT_REGISTRY.parse(header), HeaderRecord)


def test_own_events_forbid_unknown_keys():
    """A command.blocked record with an unexpected key is a schema error."""
    record = {
        **BASE,
        "event": "command.blocked",
        "session_id": "s",
        "task_id": None,
        "level": "L1",
        "argv": ["ls"],
        "cwd": "/",
        "pid": 1,
        "effects": ["read"],
        "decision": "block",
        "reasons": [],
        "rules": [],
        "policy_sha256": "x",
        "guard_version": "0.1.0",
    }
    assert DEFAULT_REGISTRY.problem(record) is None
    assert DEFAULT_REGISTRY.problem({**record, "surprise": True}) is not None


def test_timestamp_format_is_checked():
    """ts must be RFC 3339 UTC with milliseconds."""
    assert DEFAULT_REGISTRY.problem({**BASE, "event": "x", "ts": "yesterday"})


def test_model_for_non_string():
    """A non-string event falls back to the generic model."""
    assert SchemaRegistry().model_for(None) is GenericRecord
