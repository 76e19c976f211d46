"""The report's data: one JSON document built from the session and NetOps logs.

Commands refer to their reasons by index into ``texts`` (a 10,000-command
session repeats a few hundred reasons), and name their session only when the
report has several, so a large session stays a few MB.

Reading is tolerant of records this version does not know yet: fields other
workstreams add (``contained``, more ``enforcement`` layers, ``mac``,
``file.edited``, ``job.started``/``job.ended``, per-connection NetOps
records) are shown when present and never required. Unknown events become
plain events on the timeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from statetrace_guard._version import __version__
from statetrace_guard.audit.chain import rfc3339_ms
from statetrace_guard.audit.reasons import deciding_text
from statetrace_guard.audit.review import (
    Entry,
    Filter,
    Malformed,
    Row,
    merged_entries,
    read_entries,
    rows,
)
from statetrace_guard.audit.table import command_text, event_text, short_session_ids
from statetrace_guard.sessions.testruns import TestPrograms, outcome_of

__all__ = ["SCHEMA_VERSION", "Scope", "build"]

SCHEMA_VERSION = 1
# Event -> the marker the timeline draws for it.
MARKERS = {
    "session.started": "start",
    "session.ended": "end",
    "session.escalated": "escalation",
    "approval.requested": "escalation",
    "approval.granted": "approval",
    "approval.used": "approval",
    "approval.denied": "denial",
    "session.halted": "halt",
    "session.resumed": "resume",
    "session.override": "override",
    "job.started": "job",
    "job.ended": "job",
    "file.edited": "edit",
    "log.recovered": "torn",
}
_RESOURCES = ("cpu_user_s", "cpu_system_s", "peak_rss_bytes", "processes")
_COPIED = ("exit_code", "signal", "timed_out", "supervised_by", "error", "leftover")


@dataclass(frozen=True, slots=True)
class Scope:
    """What the report covers: session files, and an optional time window."""

    sessions: tuple[Path, ...]
    since: datetime | None = None
    until: datetime | None = None
    log_dir: Path | None = None
    netops: tuple[Path, ...] = ()


@dataclass
class _Texts:
    """Reasons stored once: commands refer to them by index (they repeat a lot)."""

    items: list[str] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    def index(self, text: str | None) -> int | None:
        if text is None:
            return None
        if text not in self.seen:
            self.seen[text] = len(self.items)
            self.items.append(text)
        return self.seen[text]


@dataclass
class _Collect:
    """Everything gathered while streaming the records once."""

    programs: TestPrograms
    commands: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    levels: dict[str, str] = field(default_factory=dict)
    texts: _Texts = field(default_factory=_Texts)

    def session(self, session_id: str) -> dict[str, Any]:
        return self.sessions.setdefault(
            session_id,
            {"id": session_id, "levels": [], "halts": [], "overrides": []},
        )


def build(scope: Scope, programs: TestPrograms, verify: bool = True) -> dict[str, Any]:
    """Read the scope's logs and return the report's JSON document.

    Args:
        scope: the session files and time window.
        programs: the policy's test programs (to tell test runs and outcomes).
        verify: check each file's chain (the header shows the result).
    """
    wanted = Filter(since=scope.since, until=scope.until)
    collect = _Collect(programs)
    accepted = _accepted(merged_entries(scope.sessions), wanted)
    for row in rows(accepted, 50_000, every_event=True):
        _add(collect, row)
    ids = set(collect.sessions)
    short = short_session_ids(ids)
    connections = _connections(scope.netops, ids, wanted)
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "guard report", "version": __version__},
        "scope": {
            "sessions": sorted(ids),
            "since": rfc3339_ms(scope.since) if scope.since else None,
            "until": rfc3339_ms(scope.until) if scope.until else None,
            "log_dir": str(scope.log_dir) if scope.log_dir else None,
        },
        "window": _window(collect),
        "sessions": [_finish(info, short) for info in collect.sessions.values()],
        "commands": _drop_single_session(collect.commands, ids),
        "texts": collect.texts.items,
        "events": collect.events,
        "edits": collect.edits,
        "tests": _tests(collect.commands),
        "network": {"connections": connections, "hosts": _hosts(collect, connections)},
        "overrides": [o for s in collect.sessions.values() for o in s["overrides"]],
        "counts": _counts(collect.commands, collect.events),
        "files": _verify(scope) if verify else [],
    }


def _accepted(items: Iterable[Entry | Malformed], wanted: Filter) -> Iterator[Entry]:
    for item in items:
        if isinstance(item, Entry) and wanted.accepts(item.record):
            yield item


def _add(collect: _Collect, row: Row) -> None:
    record = row.record
    session_id = str(record.get("session_id", "?"))
    info = collect.session(session_id)
    _note_level(collect, info, record)
    if row.is_command:
        collect.commands.append(_command(row, collect.programs, collect.texts))
        return
    event = str(record.get("event"))
    _session_facts(info, record, event)
    if event == "file.edited":
        collect.edits.append(_edit(record))
    collect.events.append(
        {
            "ts": record.get("ts"),
            "session": session_id,
            "event": event,
            "marker": MARKERS.get(event, "event"),
            "level": record.get("level"),
            "text": event_text(record),
        }
    )


def _note_level(
    collect: _Collect, info: dict[str, Any], record: dict[str, Any]
) -> None:
    """Add to the session's level history when a record shows a new level."""
    level = record.get("level")
    session_id = info["id"]
    if not isinstance(level, str) or collect.levels.get(session_id) == level:
        return
    if record.get("event") in {"session.escalated", "approval.requested"}:
        return  # asked for, not in force yet
    collect.levels[session_id] = level
    why = {
        "session.started": "session started",
        "approval.used": f"approval {record.get('approval_id', '')} in force",
    }.get(str(record.get("event")), "commands ran at this level")
    info["levels"].append({"ts": record.get("ts"), "level": level, "why": why})


def _session_facts(info: dict[str, Any], record: dict[str, Any], event: str) -> None:
    if event == "session.started":
        for key in ("task_ids", "plan", "role", "user", "workspace", "base_commit"):
            info[key] = record.get(key)
        info["started"] = record.get("ts")
        info["watched"] = sorted((record.get("watched") or {}).keys())
    elif event == "session.ended":
        info["ended"] = record.get("ts")
        for key in ("status", "next_step", "status_note", "watched_changed"):
            info[key] = record.get(key)
    elif event == "session.halted":
        info["halts"].append(
            {
                "ts": record.get("ts"),
                "kind": record.get("kind"),
                "reason": record.get("reason"),
            }
        )
    elif event == "session.override":
        info["overrides"].append(
            {
                "ts": record.get("ts"),
                "session": info["id"],
                "parameters": record.get("parameters") or {},
                "variables": record.get("variables") or {},
                "command": " ".join(str(a) for a in record.get("argv") or []),
            }
        )


def _command(row: Row, programs: TestPrograms, texts: _Texts) -> dict[str, Any]:
    """One command as the page shows it (fields absent when empty or unknown)."""
    record = row.record
    started = row.started or (record if row.state == "unfinished" else {})
    item: dict[str, Any] = {
        "session": record.get("session_id"),
        "start": started.get("ts") or record.get("ts"),
        "end": record.get("ts") if row.state == "finished" else None,
        "duration_ms": record.get("duration_ms"),
        "state": row.state,
        "level": record.get("level"),
        "effects": list(record.get("effects") or []),
        "command": command_text(record),
        "reason": texts.index(deciding_text(record)),
        "urls": list(record.get("urls") or []) or None,
    }
    if row.state == "blocked":
        item["required_level"] = record.get("required_level") or "never"
        item["reasons"] = [texts.index(str(r)) for r in record.get("reasons") or []]
    for key in _COPIED:
        value = record.get(key)
        if value is not None and value is not False and value != []:
            item[key] = value
    resources = {key: record[key] for key in _RESOURCES if key in record}
    if resources:
        item["resources"] = resources
    for key in ("enforcement", "contained"):
        value = started.get(key, record.get(key))
        if value is not None:
            item[key] = value
    argv = [str(word) for word in record.get("argv") or []]
    rules = [str(rule) for rule in record.get("rules") or []]
    if row.state == "finished" and (
        programs.find(argv) is not None or _decided_by_test_rule(rules, programs)
    ):
        _test_outcome(item, argv, programs, record.get("test_programs"))
    return {key: value for key, value in item.items() if value is not None}


def _decided_by_test_rule(rules: Sequence[str], programs: TestPrograms) -> bool:
    tests = {rule.id for rule in programs.rules}
    return bool(tests.intersection(rules))


def _test_outcome(
    item: dict[str, Any], argv: list[str], programs: TestPrograms, observed: object
) -> None:
    found = outcome_of(
        argv,
        item.get("exit_code"),
        programs,
        timed_out=bool(item.get("timed_out")),
        observed=observed if isinstance(observed, dict) else None,
    )
    item["test"] = {"result": found.result, "why": found.why}


def _edit(record: Mapping[str, Any]) -> dict[str, Any]:
    paths = record.get("paths") or ([record["path"]] if record.get("path") else [])
    return {
        "ts": record.get("ts"),
        "session": record.get("session_id"),
        "tool": record.get("tool") or record.get("tool_name"),
        "paths": [str(p) for p in paths],
        "bytes": record.get("bytes"),
        "sha256": record.get("content_sha256") or record.get("new_sha256"),
    }


def _drop_single_session(
    commands: list[dict[str, Any]], ids: set[str]
) -> list[dict[str, Any]]:
    """With one session, commands need not each name it (the page knows it)."""
    if len(ids) == 1:
        for item in commands:
            item.pop("session", None)
    return commands


def _tests(commands: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "i": index,
            "ts": item.get("start"),
            "session": item.get("session"),
            "command": item["command"],
            "exit_code": item.get("exit_code"),
            **item["test"],
        }
        for index, item in enumerate(commands)
        if "test" in item
    ]


def _pick(record: Mapping[str, Any], *names: str) -> Any:  # noqa: ANN401 - JSON values
    """The first of ``names`` found in the record or its Arguments/Result."""
    places = [record, record.get("Arguments") or {}, record.get("Result") or {}]
    for name in names:
        for place in places:
            if isinstance(place, Mapping) and place.get(name) is not None:
                return place[name]
    return None


def _connections(
    paths: Sequence[Path], sessions: set[str], wanted: Filter
) -> list[dict[str, Any]]:
    """The NetOps records of the sessions shown (per command or per connection)."""
    found: list[dict[str, Any]] = []
    for item in read_entries(paths):
        if not isinstance(item, Entry) or item.record.get("event") == "log.header":
            continue
        record = item.record
        if record.get("SessionId") not in sessions or not wanted.accepts(record):
            continue
        hosts = _pick(record, "host", "Host", "Hosts") or []
        found.append(
            {
                "ts": record.get("Timestamp", record.get("ts")),
                "session": record.get("SessionId"),
                "action": record.get("Action"),
                "program": record.get("Program"),
                "hosts": hosts if isinstance(hosts, list) else [hosts],
                "port": _pick(record, "port", "Port"),
                "method": _pick(record, "method", "Method"),
                "uri": _pick(record, "Uri", "url", "URL"),
                "status": _pick(record, "Status", "status"),
                "bytes_up": _pick(record, "bytes_up", "BytesUp", "BytesSent"),
                "bytes_down": _pick(record, "bytes_down", "BytesDown", "BytesReceived"),
                "duration_ms": _pick(record, "DurationMs", "duration_ms"),
                "rule": _pick(record, "rule", "Rule"),
                "reason": _pick(record, "Reason", "reason"),
            }
        )
    return [{k: v for k, v in row.items() if v is not None} for row in found]


def _hosts(
    collect: _Collect, connections: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Hosts contacted or named: from NetOps records, else from command URLs."""
    from statetrace_guard.audit.netops import host_of  # noqa: PLC0415 - small, only here

    seen: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    for row in connections:
        for host in row.get("hosts") or []:
            seen[str(host)] += 1
            blocked[str(host)] += row.get("status") == "blocked"
    if not connections:
        for item in collect.commands:
            for host in filter(None, (host_of(str(u)) for u in item.get("urls", []))):
                seen[host] += 1
                blocked[host] += item["state"] == "blocked"
    return [
        {"host": host, "count": count, "blocked": blocked[host]}
        for host, count in seen.most_common()
    ]


def _counts(
    commands: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    decision = Counter(str(c["state"]) for c in commands)
    effects = Counter(e for c in commands for e in c.get("effects") or ["read"])
    levels = Counter(str(c.get("level")) for c in commands)
    markers = Counter(str(e["marker"]) for e in events)
    failed = sum(1 for c in commands if c.get("exit_code") not in (None, 0))
    return {
        "commands": len(commands),
        "by_state": dict(decision),
        "by_effect": dict(effects),
        "by_level": dict(levels),
        "events": dict(markers),
        "failed": failed,
    }


def _window(collect: _Collect) -> dict[str, Any]:
    times = [c["start"] for c in collect.commands if c.get("start")]
    times += [c["end"] for c in collect.commands if c.get("end")]
    times += [e["ts"] for e in collect.events if e.get("ts")]
    return {"start": min(times, default=None), "end": max(times, default=None)}


def _finish(info: dict[str, Any], short: Mapping[str, str]) -> dict[str, Any]:
    """Add the short id and the watched files' reset state (known once ended)."""
    info["short"] = short.get(info["id"], info["id"])
    changed = info.get("watched_changed")
    watched = info.get("watched") or []
    info["watched_files"] = [
        {"path": path, "reset": None if changed is None else path not in changed}
        for path in watched
    ]
    return info


def _verify(scope: Scope) -> list[dict[str, Any]]:
    """Verify every file the report read; name the first bad record."""
    from statetrace_guard.audit.verify import verify_file  # noqa: PLC0415 - pydantic only here
    from statetrace_guard.errors import AuditError  # noqa: PLC0415 - only here

    found: list[dict[str, Any]] = []
    for path in (*scope.sessions, *scope.netops):
        try:
            report = verify_file(path)
        except AuditError as error:
            found.append({"path": str(path), "ok": False, "error": error.message})
            continue
        item = report.as_json()
        item["summary"] = report.describe()
        if report.verdict.error_line:
            item["first_bad"] = _line(path, report.verdict.error_line)
        found.append(item)
    return found


def _line(path: Path, number: int, limit: int = 400) -> str | None:
    """Return line ``number`` of a file (cut to ``limit`` characters)."""
    with path.open("rb") as handle:
        for current, line in enumerate(handle, start=1):
            if current == number:
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                return text if len(text) <= limit else text[:limit] + "…"
    return None
