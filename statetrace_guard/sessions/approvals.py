"""The operator's approval store: requests, approvals and denials, chained.

One JSON Lines file per workspace, ``guard_home()/approvals/<hash>.jsonl``
(the hash is of the workspace's real path), written with the audit log's
locked, chained appender. Guard's home is outside every workspace and the
sandbox never grants it, so a guarded program cannot forge an approval; the
chain shows any edit made some other way.

Records (every one carries ``user``, the OS user, and ``pid``):

* ``approval.requested``: ``request_id``, ``session_id``, ``level``,
  ``reason``, ``task_ids``, ``plan``;
* ``approval.granted``: ``request_id``, ``level``, ``session_id``,
  ``expires_at`` (RFC 3339 or null: the rest of the session),
  ``max_commands`` (or null), ``hosts`` (empty: any the policy allows);
* ``approval.denied``: ``request_id``, ``reason`` (denying an approval in
  force revokes it).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from statetrace_guard._version import __version__
from statetrace_guard.audit.chain import SCHEMA_VERSION, header_record, rfc3339_ms
from statetrace_guard.audit.log import ChainWriter
from statetrace_guard.errors import SessionError, UsageError
from statetrace_guard.levels import Level
from statetrace_guard.online.hosts import normalized_pattern
from statetrace_guard.paths import guard_home, workspace_root
from statetrace_guard.sessions.store import parse_ts, read_records

__all__ = [
    "EVENT_DENIED",
    "EVENT_GRANTED",
    "EVENT_REQUESTED",
    "ApprovalBook",
    "Grant",
    "Request",
    "approvals_path",
    "deny_request",
    "grant_request",
    "load_book",
    "locate_workspace",
    "operator_user",
    "parse_duration",
    "request_escalation",
]

EVENT_REQUESTED = "approval.requested"
EVENT_GRANTED = "approval.granted"
EVENT_DENIED = "approval.denied"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Request:
    """A pending or settled escalation request."""

    request_id: str
    session_id: str
    level: Level
    reason: str
    ts: str
    user: str
    task_ids: tuple[str, ...] = ()
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """An operator's approval of one request, with its scope and expiry."""

    request_id: str
    session_id: str
    level: Level
    ts: str
    user: str
    expires_at: str | None = None
    max_commands: int | None = None
    hosts: tuple[str, ...] = ()

    def expired(self, now: datetime) -> bool:
        """True when the approval's time is up."""
        return self.expires_at is not None and parse_ts(self.expires_at) <= now

    def used_up(self, uses: int) -> bool:
        """True when ``uses`` commands have consumed the whole approval."""
        return self.max_commands is not None and uses >= self.max_commands


@dataclass(frozen=True, slots=True)
class ApprovalBook:
    """The store read back: requests, grants and denials by request id."""

    requests: Mapping[str, Request] = field(default_factory=dict)
    grants: Mapping[str, Grant] = field(default_factory=dict)
    denials: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def status(self, request_id: str) -> str:
        """``pending``, ``approved``, ``denied`` or ``revoked``."""
        if request_id in self.denials:
            return "revoked" if request_id in self.grants else "denied"
        return "approved" if request_id in self.grants else "pending"

    def pending(self) -> list[Request]:
        """The requests no operator has answered yet, oldest first."""
        return [
            r for r in self.requests.values() if self.status(r.request_id) == "pending"
        ]

    def in_force(
        self, session_id: str, now: datetime, uses: Mapping[str, int]
    ) -> Grant | None:
        """The highest-level approval of a session still in force, if any."""
        live = [
            grant
            for grant in self.grants.values()
            if grant.session_id == session_id
            and self.status(grant.request_id) == "approved"
            and not grant.expired(now)
            and not grant.used_up(uses.get(grant.request_id, 0))
        ]
        return max(live, key=lambda grant: (grant.level, grant.ts), default=None)


def approvals_path(workspace: Path) -> Path:
    """Return the store file for a workspace under guard's home."""
    digest = hashlib.sha256(os.path.realpath(workspace).encode()).hexdigest()[:16]
    return guard_home() / "approvals" / f"{digest}.jsonl"


def locate_workspace(start: Path) -> Path:
    """Return the workspace whose requests apply at ``start``.

    The nearest directory at or above ``start`` that has an approval store
    (so any directory inside a workspace finds its requests, git or not);
    without one, the workspace root around ``start`` (the git top level).
    """
    here = start.resolve()
    for candidate in (here, *here.parents):
        if approvals_path(candidate).exists():
            return candidate
    return workspace_root(here)


def operator_user() -> str:
    """The OS user running this process (``unknown`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no LOGNAME: still record
        return "unknown"


def parse_duration(text: str) -> timedelta:
    """Read ``90s``, ``30m``, ``2h``, ``1d`` (a bare number is minutes).

    Raises:
        UsageError: the text is not a positive duration.
    """
    found = _DURATION.match(text)
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"invalid duration {text!r}", hint="use e.g. 30m, 2h or 1d")
    seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2).lower()]
    return timedelta(seconds=seconds)


def load_book(workspace: Path) -> ApprovalBook:
    """Read a workspace's store (empty when it does not exist yet).

    Raises:
        AuditError: the store exists but cannot be read.
    """
    requests: dict[str, Request] = {}
    grants: dict[str, Grant] = {}
    denials: dict[str, Mapping[str, Any]] = {}
    for record in read_records(approvals_path(workspace)):
        _fold(record, requests, grants, denials)
    return ApprovalBook(requests, grants, denials)


def _fold(
    record: dict[str, Any],
    requests: dict[str, Request],
    grants: dict[str, Grant],
    denials: dict[str, Mapping[str, Any]],
) -> None:
    try:
        event = record.get("event")
        if event == EVENT_REQUESTED:
            requests[record["request_id"]] = _request_of(record)
        elif event == EVENT_GRANTED:
            grants[record["request_id"]] = _grant_of(record)
        elif event == EVENT_DENIED:
            denials[record["request_id"]] = record
    except (KeyError, TypeError, ValueError):  # a malformed record grants nothing
        return


def _request_of(record: Mapping[str, Any]) -> Request:
    return Request(
        request_id=str(record["request_id"]),
        session_id=str(record["session_id"]),
        level=Level.parse(str(record["level"])),
        reason=str(record.get("reason", "")),
        ts=str(record["ts"]),
        user=str(record.get("user", "")),
        task_ids=tuple(str(t) for t in record.get("task_ids") or ()),
        plan=record.get("plan"),
    )


def _grant_of(record: Mapping[str, Any]) -> Grant:
    expires = record.get("expires_at")
    limit = record.get("max_commands")
    return Grant(
        request_id=str(record["request_id"]),
        session_id=str(record["session_id"]),
        level=Level.parse(str(record["level"])),
        ts=str(record["ts"]),
        user=str(record.get("user", "")),
        expires_at=str(expires) if expires is not None else None,
        max_commands=int(limit) if limit is not None else None,
        hosts=tuple(str(h) for h in record.get("hosts") or ()),
    )


def _append(workspace: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    path = approvals_path(workspace)
    writer = ChainWriter(
        path,
        lambda ts: header_record(
            "approvals", ts, __version__, workspace=os.path.realpath(workspace)
        ),
    )
    base = {
        "schema_version": SCHEMA_VERSION,
        "user": operator_user(),
        "pid": os.getpid(),
    }
    return writer.append({**base, **record})


def request_escalation(
    workspace: Path,
    *,
    session_id: str,
    level: Level,
    reason: str,
    task_ids: tuple[str, ...] = (),
    plan: str | None = None,
) -> str:
    """Record a pending request to raise a session to ``level``; return its id.

    Raises:
        UsageError: the level is not L2 or L3, or the reason is empty.
        AuditError: the store cannot be written.
    """
    if level < Level.L2:
        raise UsageError("only L2 and L3 need an approval; L0 and L1 need none")
    if not reason.strip():
        raise UsageError("--reason must say why the session needs the level")
    request_id = f"req-{secrets.token_hex(4)}"
    _append(
        workspace,
        {
            "event": EVENT_REQUESTED,
            "request_id": request_id,
            "session_id": session_id,
            "level": level.name,
            "reason": reason,
            "task_ids": list(task_ids),
            "plan": plan,
        },
    )
    return request_id


def grant_request(
    workspace: Path,
    request_id: str,
    *,
    now: datetime,
    expires: timedelta | None = None,
    max_commands: int | None = None,
    hosts: tuple[str, ...] = (),
) -> Grant:
    """Approve a pending request (an operator action: check that first).

    Raises:
        SessionError: no such request, or it was already answered.
        UsageError: a host is not a host name.
        AuditError: the store cannot be written.
    """
    request = _pending(workspace, request_id)
    patterns = []
    for host in hosts:
        try:
            patterns.append(normalized_pattern(host))
        except ValueError as error:
            raise UsageError(str(error)) from error
    written = _append(
        workspace,
        {
            "event": EVENT_GRANTED,
            "request_id": request_id,
            "session_id": request.session_id,
            "level": request.level.name,
            "expires_at": rfc3339_ms(now + expires) if expires else None,
            "max_commands": max_commands,
            "hosts": patterns,
        },
    )
    return _grant_of(written)


def deny_request(workspace: Path, request_id: str, reason: str = "") -> str:
    """Deny a pending request or revoke an approval; return the new status.

    Raises:
        SessionError: no such request, or it was already denied or revoked.
        AuditError: the store cannot be written.
    """
    book = load_book(workspace)
    if request_id not in book.requests:
        raise SessionError(f"no request {request_id!r}", hint="see `guard approvals`")
    if request_id in book.denials:
        raise SessionError(f"request {request_id} is already {book.status(request_id)}")
    _append(
        workspace, {"event": EVENT_DENIED, "request_id": request_id, "reason": reason}
    )
    return "revoked" if request_id in book.grants else "denied"


def _pending(workspace: Path, request_id: str) -> Request:
    book = load_book(workspace)
    request = book.requests.get(request_id)
    if request is None:
        raise SessionError(
            f"no request {request_id!r}", hint="see `guard approvals --pending`"
        )
    status = book.status(request_id)
    if status != "pending":
        raise SessionError(f"request {request_id} is already {status}")
    return request
