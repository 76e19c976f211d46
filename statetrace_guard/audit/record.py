"""The record schema, for reading records back (a trust boundary).

Each event has a pydantic model; :class:`SchemaRegistry` maps event names to
models and falls back to :class:`GenericRecord` (chain fields checked, other
keys free) for events it does not know, so later features (``session.*``,
``approval.*``) can add events with :meth:`SchemaRegistry.with_event` without
making older readers reject their files. Events the guard writes itself
forbid unknown keys, except ``command.finished``, which passes the runner's
resource figures through, and the header, whose extra keys name the file's
subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_REGISTRY",
    "BlockedRecord",
    "ChainFields",
    "CommandRecord",
    "FinishedRecord",
    "GenericRecord",
    "HeaderRecord",
    "NetOpsRecord",
    "RecoveredRecord",
    "SchemaRegistry",
    "StartedRecord",
    "TestProgramRun",
    "TestProgramsSeen",
]

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Rfc3339 = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
Count = Annotated[int, Field(ge=0)]


class ChainFields(BaseModel):
    """What every record of every log carries: version, event and chain."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    schema_version: Annotated[int, Field(ge=1)]
    event: str
    seq: Count
    prev_sha256: Hex64
    sha256: Hex64
    # HMAC of sha256 under the key the header names (keyed logs: every record).
    mac: Hex64 | None = None


class GenericRecord(ChainFields):
    """A record of an event this reader has no model for (``ts`` required)."""

    ts: Rfc3339


class HeaderRecord(GenericRecord):
    """Line 1 of every file: what the file is for and who created it.

    Other keys name the file's subject (``workspace`` for approval stores...),
    so they are allowed.
    """

    model_config = ConfigDict(extra="allow")

    event: Literal["log.header"]
    purpose: str
    guard_version: str
    session_id: str | None = None
    date: str | None = None
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None


class RecoveredRecord(GenericRecord):
    """A torn partial line was moved to the side file before this record."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["log.recovered"]
    torn_file: str
    torn_bytes: Annotated[int, Field(gt=0)]
    torn_offset: Count
    torn_sha256: Hex64
    pid: int
    session_id: str | None = None
    date: str | None = None


class CommandRecord(GenericRecord):
    """The fields every ``command.*`` record carries."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    task_id: str | None
    level: str
    argv: list[str]
    # Arguments that were not valid UTF-8: their exact bytes, base64 by index.
    argv_raw: dict[str, str] | None = None
    cwd: str
    pid: int
    effects: list[str]
    decision: Literal["allow", "block"]
    reasons: list[str]
    rules: list[str]
    policy_sha256: str
    guard_version: str
    required_level: str | None = None
    network: bool = False
    urls: list[str] = Field(default_factory=list)
    env: dict[str, str | None] = Field(default_factory=dict)
    task_ids: list[str] = Field(default_factory=list)
    plan_refs: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)
    contained: bool = False


class BlockedRecord(CommandRecord):
    """The policy blocked the command; it never ran."""

    event: Literal["command.blocked"]


class StartedRecord(CommandRecord):
    """Written before the program starts; ``enforcement`` says how it is confined."""

    event: Literal["command.started"]
    enforcement: dict[str, str] = Field(default_factory=dict)
    envelope: dict[str, Any] | None = None


class TestProgramRun(BaseModel):
    """One test program's own end, as the kernel reported it."""

    __test__ = False  # not a pytest class, despite the name
    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    program: str
    exit_code: int | None
    signal: int | None = None


class TestProgramsSeen(BaseModel):
    """``test_programs``: the test programs' own statuses inside a command.

    Present only for a command a ``test = true`` rule decided. ``runs`` are
    the outermost test programs that ended, in order; ``unread`` counts
    programs that ended before they could be told apart (one may have been
    a test run); ``unobserved`` says why nothing could be seen (not root,
    not Linux, events lost), None when the runs are the kernel's word.
    """

    __test__ = False
    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    runs: list[TestProgramRun]
    unread: Count = 0
    unobserved: str | None = None


class FinishedRecord(CommandRecord):
    """The program ended; resource figures from the runner pass through."""

    model_config = ConfigDict(extra="allow")

    event: Literal["command.finished"]
    exit_code: int | None
    signal: int | None = None
    duration_ms: Annotated[float, Field(ge=0)]
    timed_out: bool = False
    # The seq of the command.started it ends (absent in logs written before).
    started_seq: Count | None = None
    # The program never started (a client gave up before it could).
    not_run: bool = False
    # It started, and the guard lost it before learning how it ended.
    outcome_unknown: bool = False
    # A test command: the test programs' own statuses (absent otherwise).
    test_programs: TestProgramsSeen | None = None


class NetOpsRecord(ChainFields):
    """A NetOps log line, in the StateTrace NetOps template's field names."""

    event: Literal["netops"]
    Timestamp: Rfc3339
    SessionId: str
    TaskBoardIds: list[str]
    PlanReferences: list[str]
    Action: Literal["run", "blocked", "download", "connect", "request", "proxy"]
    Program: str
    Arguments: dict[str, Any]
    Environment: dict[str, str | None]
    Result: dict[str, Any]


_MODELS: dict[str, type[ChainFields]] = {
    "log.header": HeaderRecord,
    "log.recovered": RecoveredRecord,
    "command.blocked": BlockedRecord,
    "command.started": StartedRecord,
    "command.finished": FinishedRecord,
    "netops": NetOpsRecord,
}


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """Maps event names to models; unknown events get the generic model."""

    models: Mapping[str, type[ChainFields]] = field(
        default_factory=lambda: MappingProxyType(dict(_MODELS))
    )
    fallback: type[ChainFields] = GenericRecord

    def with_event(self, event: str, model: type[ChainFields]) -> SchemaRegistry:
        """Return a registry that also knows ``event`` (the original is unchanged)."""
        models = {**self.models, event: model}
        return SchemaRegistry(MappingProxyType(models), self.fallback)

    def model_for(self, event: object) -> type[ChainFields]:
        """Return the model for an event name (the fallback when unknown)."""
        if isinstance(event, str) and event in self.models:
            return self.models[event]
        return self.fallback

    def parse(self, record: Mapping[str, Any]) -> ChainFields:
        """Validate a parsed record against its event's model.

        Raises:
            pydantic.ValidationError: the record does not fit its model.
        """
        return self.model_for(record.get("event")).model_validate(dict(record))

    def problem(self, record: Mapping[str, Any]) -> str | None:
        """Return None when ``record`` fits its model, else the first error."""
        try:
            self.parse(record)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            return f"schema: {where}: {first['msg']}"
        return None


DEFAULT_REGISTRY = SchemaRegistry()
