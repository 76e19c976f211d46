"""Replay: re-judge recorded commands under a policy and say what changed.

A session log holds one ``command.started`` or ``command.blocked`` record per
command (a ``command.finished`` record follows a started one and carries the
exit status). :func:`read_session` turns a log into :class:`RecordedCommand`
values, verifying its hash chain in the same pass; :class:`Replayer` judges
each command again with :func:`statetrace_guard.evaluate.evaluate` (the batch
path: the policy is compiled once, a :class:`~statetrace_guard.evaluate.Place`
is built once per distinct working directory and environment, and identical
commands are judged once; long replays judge distinct commands in forked
worker processes while the logs are still being read) and compares
decision, required level, effects and rules with the record.

Everything here is pure apart from reading the log files; the CLI renders.

NOTE(replay): a record names its ``cwd`` but not the workspace or the log
directory it was judged with. Both are inferred: the workspace is the git top
level above the recorded ``cwd`` when that directory still exists, else the
``cwd`` itself; the log directory is ``Logs/`` under that workspace unless the
caller names one. The opt-in variables come from the record's ``env`` (as the
guard saw them), never from the replaying shell, so a replay is the same on
every machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from statetrace_guard.audit.chain import ChainCheck, ChainVerdict
from statetrace_guard.audit.keys import find_chain_key
from statetrace_guard.decision import Enforcement, Verdict
from statetrace_guard.errors import AuditError
from statetrace_guard.evaluate import Place, evaluate, make_place
from statetrace_guard.guardrails.facts import GuardrailFacts, facts_from_json
from statetrace_guard.levels import Level
from statetrace_guard.policy import CompiledPolicy

__all__ = [
    "COMPARED_FIELDS",
    "PARALLEL_FROM",
    "SESSION_BLOCK_NOTE",
    "SESSION_RULE",
    "Change",
    "JudgedNow",
    "RecordedCommand",
    "ReplayResult",
    "ReplaySettings",
    "Replayer",
    "Row",
    "Summary",
    "read_session",
    "records_to_commands",
    "summarize",
]

COMPARED_FIELDS: tuple[str, ...] = ("decision", "required_level", "effects", "rules")
_STARTED = "command.started"
_BLOCKED = "command.blocked"
_FINISHED = "command.finished"
_SIGNAL_BASE = 128
SESSION_RULE = "session"  # the rule guard run records when the session gate blocks
SESSION_BLOCK_NOTE = (
    "recorded block came from the session (halt, budget or approval), "
    "not the policy; compared as the policy's allow"
)
_PROGRESS_EVERY = 10_000
# NOTE(replay): the guardrails' facts come from the record; a record without
# them (older, or a transcript) is judged without the repository, and says so.
_UNCHECKED = "replay: no repository facts were recorded"
PARALLEL_FROM = 4_000  # distinct commands worth starting worker processes
_CHUNK = 500


class Change(StrEnum):
    """How a command's judgement moved between the recording and now."""

    UNCHANGED = "unchanged"
    NOW_BLOCKED = "now-blocked"
    NOW_ALLOWED = "now-allowed"
    CHANGED = "changed"  # same decision; required level, effects or rules moved


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """One command as recorded (or read from an agent transcript).

    Attributes:
        source: the file it was read from.
        line: the 1-based line of its started/blocked record (or tool call).
        seq: the record's chain position, when it has one.
        session_id: the session it belongs to, when known.
        argv: the command line as recorded.
        level: the level it was judged at.
        cwd: its working directory.
        env: the opt-in and ``STATETRACE_*`` variables the guard saw set,
            as sorted ``(name, value)`` pairs (hashable: judgements are cached).
        decision: ``allow`` or ``block``.
        required_level: ``L0``..``L3``, or None when no level allows it.
        effects: sorted effect names.
        rules: the rules that decided, in order.
        exit_status: the guard's exit status for it, when it finished.
        compared: which of :data:`COMPARED_FIELDS` the record actually holds.
        guardrails: the repository facts the guardrails judged (what a
            commit held, the ADR found), judged again under today's policy.
    """

    source: str
    line: int
    argv: tuple[str, ...]
    level: Level
    cwd: str
    decision: str
    seq: int | None = None
    session_id: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    required_level: str | None = None
    effects: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    exit_status: int | None = None
    compared: tuple[str, ...] = COMPARED_FIELDS
    guardrails: GuardrailFacts | None = None


@dataclass(frozen=True, slots=True)
class JudgedNow:
    """The judgement the current policy and classifier give a command."""

    decision: str
    required_level: str | None
    effects: tuple[str, ...]
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    why: str | None = None  # the blocking command's reason, when blocked


@dataclass(frozen=True, slots=True)
class Row:
    """One replayed command: what was recorded, what is judged now, the change."""

    recorded: RecordedCommand
    now: JudgedNow
    change: Change
    fields: tuple[str, ...]
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the row as one JSON object (a ``--json`` line)."""
        cmd = self.recorded
        return {
            "schema_version": 1,
            "kind": "command",
            "source": cmd.source,
            "line": cmd.line,
            "seq": cmd.seq,
            "session_id": cmd.session_id,
            "argv": list(cmd.argv),
            "cwd": cmd.cwd,
            "level": cmd.level.name,
            "change": self.change.value,
            "changed": list(self.fields),
            "note": self.note,
            "recorded": _recorded_json(cmd),
            "now": {
                "decision": self.now.decision,
                "required_level": self.now.required_level,
                "effects": list(self.now.effects),
                "rules": list(self.now.rules),
                "reasons": list(self.now.reasons),
                "why": self.now.why,
            },
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over a replay."""

    commands: int
    unchanged: int
    now_blocked: int
    now_allowed: int
    changed: int

    def line(self) -> str:
        """Return ``N commands, M unchanged, K now blocked, J now allowed``."""
        text = (
            f"{self.commands} commands, {self.unchanged} unchanged, "
            f"{self.now_blocked} now blocked, {self.now_allowed} now allowed"
        )
        if self.changed:
            text += f", {self.changed} changed otherwise"
        return text

    def as_json(self) -> dict[str, Any]:
        """Return the summary as the last ``--json`` line."""
        return {
            "schema_version": 1,
            "kind": "summary",
            "commands": self.commands,
            "unchanged": self.unchanged,
            "now_blocked": self.now_blocked,
            "now_allowed": self.now_allowed,
            "changed": self.changed,
            "summary": self.line(),
        }

    def gated(self, fail_on: str) -> bool:
        """Return True when a change in the ``fail_on`` direction happened.

        Args:
            fail_on: ``blocked``, ``allowed`` or ``any``.
        """
        if fail_on == "blocked":
            return self.now_blocked > 0
        if fail_on == "allowed":
            return self.now_allowed > 0
        return self.commands != self.unchanged


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Every row of a replay, in input order, and the counts."""

    rows: tuple[Row, ...]
    summary: Summary


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """What a replay judges with.

    Attributes:
        policy: the compiled policy (compiled once for the whole replay).
        policy_file: its file, protected from writes like ``guard run`` does.
        level: judge every command at this level instead of the recorded one.
        log_dir: the log directory the sessions were recorded with (default:
            ``Logs/`` under each command's inferred workspace).
        env: opt-in variables for commands that carry none (transcripts).
        enforcement: whether the kernel would contain code the classifier
            cannot name ("none": judge as a machine without enforcement).
    """

    policy: CompiledPolicy
    policy_file: Path | None = None
    level: Level | None = None
    log_dir: Path | None = None
    env: Mapping[str, str] | None = None
    enforcement: Enforcement = "none"


def read_session(
    path: Path,
    *,
    verify: bool = True,
    sink: Callable[[RecordedCommand], None] | None = None,
) -> list[RecordedCommand]:
    """Read the commands of one session log, verifying its chain as it goes.

    Args:
        path: a ``<log-dir>/Sessions/<session-id>.jsonl`` file.
        verify: check the hash chain, sequence, time order and (with this
            guard's key) the macs, with the one chain verifier ``guard
            verify`` uses; a broken file is refused.
        sink: called with each command as it is read (see
            :meth:`Replayer.prefetching`).

    Returns:
        One command per started or blocked record, in file order.

    Raises:
        AuditError: the file cannot be read, or (with ``verify``) its chain
            is broken; the message names the first bad line.
    """
    check = ChainCheck(key=find_chain_key()) if verify else None
    try:
        with path.open("rb") as stream, _collector_paused():
            records = (
                check.records(stream)
                if check is not None
                else _tolerant_records(stream)
            )
            commands = records_to_commands(records, str(path), sink)
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if check is not None and not check.verdict.intact:
        raise _broken(path, check.verdict)
    return commands


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects.

    NOTE(replay): parsing a 100,000-command log allocates millions of dicts,
    lists and strings with no cycles among them; the collector's repeated
    passes over them more than doubled the parse time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _broken(path: Path, verdict: ChainVerdict) -> AuditError:
    """The error for a broken file, in the words ``guard verify`` uses."""
    what = verdict.error or "torn last line"
    return AuditError(
        f"{path}:{verdict.error_line}: chain broken: {what}",
        hint="run `guard verify` on it; `guard replay --no-verify` reads it anyway",
    )


def _tolerant_records(lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parse every line that is a JSON object; skip the rest (``--no-verify``)."""
    for number, line in enumerate(lines, start=1):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield number, value


def records_to_commands(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    source: str,
    sink: Callable[[RecordedCommand], None] | None = None,
) -> list[RecordedCommand]:
    """Turn parsed session records into commands, pairing finished records.

    A ``command.finished`` record is paired with the earliest unfinished
    ``command.started`` record of the same guard process and argv.

    Args:
        records: ``(line number, record)`` pairs in file order.
        source: the file name to report.
        sink: called with each command as soon as it is complete.

    Returns:
        The commands in file order; malformed command records are skipped.
    """
    pairing = _Pairing(source, sink)
    for number, record in records:
        event = record.get("event")
        if event == _FINISHED:
            pairing.finish(record)
        elif event in {_STARTED, _BLOCKED}:
            pairing.open(record, number, finished=event == _BLOCKED)
    return pairing.commands()


class _Pairing:
    """Builds commands in file order; a started one waits for its finish."""

    def __init__(
        self, source: str, sink: Callable[[RecordedCommand], None] | None
    ) -> None:
        self._source = source
        self._sink = sink
        self._built: list[RecordedCommand | None] = []
        self._waiting: dict[int, dict[str, Any]] = {}
        self._open: dict[tuple[object, tuple[str, ...]], list[int]] = {}

    def open(self, record: Mapping[str, Any], number: int, *, finished: bool) -> None:
        fields = _command_fields(record, number, self._source)
        if fields is None:
            return
        if finished:
            self._built.append(self._made(RecordedCommand(**fields)))
            return
        index = len(self._built)
        self._built.append(None)
        self._waiting[index] = fields
        key = (record.get("pid"), fields["argv"])
        self._open.setdefault(key, []).append(index)

    def finish(self, record: Mapping[str, Any]) -> None:
        argv = record.get("argv")
        key = (record.get("pid"), tuple(argv) if isinstance(argv, list) else ())
        indices = self._open.get(key)
        if indices:
            index = indices.pop(0)
            fields = self._waiting.pop(index)
            self._built[index] = self._made(
                RecordedCommand(**fields, exit_status=_exit_status(record))
            )

    def commands(self) -> list[RecordedCommand]:
        for index, fields in self._waiting.items():
            self._built[index] = self._made(RecordedCommand(**fields))
        self._waiting.clear()
        return [command for command in self._built if command is not None]

    def _made(self, command: RecordedCommand) -> RecordedCommand:
        if self._sink is not None:
            self._sink(command)
        return command


_LEVELS = {level.name: level for level in Level}
_NO_REQUIRED: tuple[str, ...] = ("decision", "effects", "rules")


def _command_fields(
    record: Mapping[str, Any], number: int, source: str
) -> dict[str, Any] | None:
    """The RecordedCommand fields of a started or blocked record."""
    argv = record.get("argv")
    level = _LEVELS.get(record.get("level"))  # type: ignore[arg-type]
    decision = record.get("decision")
    if not argv or level is None or decision not in {"allow", "block"}:
        return None
    if not isinstance(argv, list) or not all(isinstance(w, str) for w in argv):
        return None
    seq = record.get("seq")
    return {
        "source": source,
        "line": number,
        "argv": tuple(argv),
        "level": level,
        "cwd": str(record.get("cwd") or "."),
        "decision": decision,
        "seq": seq if isinstance(seq, int) else None,
        "session_id": _str_or_none(record.get("session_id")),
        "env": _seen_env(record.get("env")),
        "required_level": _str_or_none(record.get("required_level")),
        "effects": tuple(sorted(_strings(record.get("effects")))),
        "rules": tuple(_strings(record.get("rules"))),
        "compared": COMPARED_FIELDS if "required_level" in record else _NO_REQUIRED,
        "guardrails": _guardrail_facts(record.get("extra")),
    }


def _guardrail_facts(extra: object) -> GuardrailFacts | None:
    """The guardrails' facts a record keeps under ``extra.guardrails``."""
    if not isinstance(extra, dict) or "guardrails" not in extra:
        return None
    return facts_from_json(extra["guardrails"])


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _seen_env(value: object) -> tuple[tuple[str, str], ...]:
    """The recorded variables that were set (None means unset), sorted."""
    if not isinstance(value, dict) or not value:
        return ()
    return tuple(sorted((str(k), v) for k, v in value.items() if isinstance(v, str)))


def _exit_status(record: Mapping[str, Any]) -> int | None:
    """The status guard reported: the exit code, or 128+N for signal N."""
    code = record.get("exit_code")
    if isinstance(code, int):
        return code
    signal = record.get("signal")
    if isinstance(signal, int):
        return _SIGNAL_BASE + signal
    return None


class Replayer:
    """Judges recorded commands again; holds the per-replay caches.

    A Place is built once per distinct (cwd, env) and a judgement once per
    distinct (argv, level, cwd, env, guardrail facts): a long session repeats
    itself a lot.
    """

    def __init__(self, settings: ReplaySettings) -> None:
        """Keep the settings; caches start empty."""
        self._settings = settings
        self._places: dict[tuple[str, tuple[tuple[str, str], ...]], Place] = {}
        self._judged: dict[tuple[Any, ...], JudgedNow] = {}
        self._default_env = tuple(sorted((settings.env or {}).items()))

    @property
    def settings(self) -> ReplaySettings:
        """What this replayer judges with."""
        return self._settings

    def judge(self, command: RecordedCommand) -> JudgedNow:
        """Return the current judgement of one recorded command."""
        return self.judge_key(self.key_of(command))

    def key_of(self, command: RecordedCommand) -> tuple[Any, ...]:
        """What a judgement depends on: argv, level, cwd and environment."""
        level = command.level if self._settings.level is None else self._settings.level
        env = command.env or self._default_env
        return (command.argv, level, command.cwd, env, command.guardrails)

    def judge_key(self, key: tuple[Any, ...]) -> JudgedNow:
        """Return the judgement for a key from :meth:`key_of`, cached."""
        cached = self._judged.get(key)
        if cached is None:
            cached = self._evaluate(key)
            self._judged[key] = cached
        return cached

    def known(self, key: tuple[Any, ...]) -> bool:
        """True when the judgement for ``key`` is already cached."""
        return key in self._judged

    def remember(
        self, keys: Sequence[tuple[Any, ...]], judged: Sequence[JudgedNow]
    ) -> None:
        """Cache judgements made elsewhere (by worker processes)."""
        self._judged.update(zip(keys, judged, strict=True))

    def _evaluate(self, key: tuple[Any, ...]) -> JudgedNow:
        argv, level, cwd, env_key, facts = key
        place = self._place(cwd, env_key)
        verdict = evaluate(
            argv, level, self._settings.policy, place, facts, _UNCHECKED
        ).verdict
        return JudgedNow(
            decision=verdict.decision.label,
            required_level=None
            if verdict.required_level is None
            else verdict.required_level.name,
            effects=tuple(sorted(effect.value for effect in verdict.effects)),
            rules=verdict.rules,
            reasons=verdict.reasons,
            why=_why(verdict),
        )

    @contextlib.contextmanager
    def prefetching(self, workers: int) -> Iterator[Callable[[RecordedCommand], None]]:
        """Judge distinct commands in worker processes while they are being read.

        Yields a callable to offer each command to as soon as it is read (the
        ``sink`` of :func:`read_session`). On leaving the block every judgement
        the workers made is in this replayer's cache; the rest is judged
        serially by :meth:`judge`. See :class:`_Prefetch`.
        """
        prefetch = _Prefetch(self, workers)
        try:
            yield prefetch.offer
            prefetch.collect()
        finally:
            prefetch.stop()

    def row(self, command: RecordedCommand) -> Row:
        """Judge one command and compare it with the policy's part of its record."""
        now = self.judge(command)
        recorded = _policy_view(command)
        fields = tuple(
            name
            for name in recorded.compared
            if getattr(recorded, name) != getattr(now, name)
        )
        note = SESSION_BLOCK_NOTE if recorded is not command else None
        change = _change_of(recorded.decision, now.decision, fields)
        return Row(recorded, now, change, fields, note)

    def replay(
        self,
        commands: Sequence[RecordedCommand],
        progress: Callable[[int], None] | None = None,
        workers: int = 1,
    ) -> ReplayResult:
        """Judge every command, in order; call ``progress`` every 10,000.

        Args:
            commands: the recorded commands.
            progress: called with the count every 10,000 commands.
            workers: processes for the distinct commands (see
                :meth:`prefetching`); 1 judges everything in this process.
        """
        rows: list[Row] = []
        # NOTE(replay): a collector pass over a long replay's heap can take
        # longer than the classifier's per-script time budget, which would
        # then fail a small script closed; pausing it keeps replay exact.
        with _collector_paused():
            if workers > 1:
                with self.prefetching(workers) as offer:
                    for command in commands:
                        offer(command)
            for count, command in enumerate(commands, start=1):
                rows.append(self.row(command))
                if progress is not None and count % _PROGRESS_EVERY == 0:
                    progress(count)
        return ReplayResult(tuple(rows), summarize(rows))

    def _place(self, cwd: str, env_key: tuple[tuple[str, str], ...]) -> Place:
        key = (cwd, env_key)
        place = self._places.get(key)
        if place is None:
            workspace = _workspace_for(cwd)
            log_dir = self._settings.log_dir or workspace / "Logs"
            place = make_place(
                Path(cwd),
                workspace,
                log_dir,
                self._settings.policy_file,
                dict(env_key),
                self._settings.enforcement,
            )
            self._places[key] = place
        return place


class _Prefetch:
    """Hands distinct commands to forked workers as they are read.

    NOTE(replay): classification is CPU-bound Python, so threads do not help;
    forked workers inherit the compiled policy and warm parsers and judge
    chunks of distinct keys while this process goes on reading. Workers start
    only once :data:`PARALLEL_FROM` distinct commands were seen (most replays
    never pay for them) and only where fork exists; the judgements are the
    same either way.
    """

    def __init__(self, replayer: Replayer, workers: int) -> None:
        self._replayer = replayer
        self._workers = workers
        self._seen: set[tuple[Any, ...]] = set()
        self._pending: list[tuple[Any, ...]] = []
        self._pool: Any = None
        self._sent: list[tuple[list[tuple[Any, ...]], Any]] = []

    def offer(self, command: RecordedCommand) -> None:
        """Queue a command's key unless it is judged or queued already."""
        key = self._replayer.key_of(command)
        if key in self._seen or self._replayer.known(key):
            return
        self._seen.add(key)
        self._pending.append(key)
        if len(self._pending) >= _CHUNK and self._started():
            self._dispatch()

    def collect(self) -> None:
        """Send what is left and cache every result (a worker's error raises)."""
        if self._pool is None:
            return
        self._dispatch()
        for keys, result in self._sent:
            self._replayer.remember(keys, result.get())
        self._pool.close()
        self._pool.join()
        self._pool = None

    def stop(self) -> None:
        """End the workers if still running (after an error)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _started(self) -> bool:
        if self._pool is None:
            if self._workers < 2 or len(self._seen) < PARALLEL_FROM:  # noqa: PLR2004
                return False
            self._pool = _fork_pool(self._workers, self._replayer.settings)
            if self._pool is None:
                self._workers = 1
                return False
        return True

    def _dispatch(self) -> None:
        keys, self._pending = self._pending, []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            self._sent.append((chunk, self._pool.apply_async(_judge_keys, (chunk,))))


def _fork_pool(workers: int, settings: ReplaySettings) -> Any:  # noqa: ANN401 - a Pool
    """A pool of forked workers, or None where fork does not exist."""
    import multiprocessing  # noqa: PLC0415 - long replays only

    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: judge serially
        return None
    return context.Pool(workers, _start_worker, (settings,))


_WORKER: list[Replayer] = []  # the replayer of a forked worker process


def _start_worker(settings: ReplaySettings) -> None:
    """Pool initializer: one Replayer per worker, caches kept across chunks."""
    _WORKER[:] = [Replayer(settings)]
    gc.disable()  # NOTE(replay): as in the parent, for the classifier's budget


def _judge_keys(keys: Sequence[tuple[Any, ...]]) -> list[JudgedNow]:
    """Worker: judge a chunk of distinct keys."""
    replayer = _WORKER[0]
    return [replayer.judge_key(key) for key in keys]


def _workspace_for(cwd: str) -> Path:
    """The git top level above ``cwd`` if it still exists, else ``cwd``."""
    from statetrace_guard.paths import workspace_root  # noqa: PLC0415 - once per cwd

    path = Path(cwd)
    return workspace_root(path) if path.is_dir() else path


def _policy_view(command: RecordedCommand) -> RecordedCommand:
    """The record as the policy decided it, without the session gate's block.

    NOTE(replay): the session gate (a halted session, a spent budget, an
    approval outside its hosts) blocks commands the policy allowed; ``guard
    run`` records those with the rule ``session`` added. That block is not the
    policy's, so replay compares the policy's own decision (allow) and rules.
    """
    if command.decision != "block" or SESSION_RULE not in command.rules:
        return command
    rules = tuple(rule for rule in command.rules if rule != SESSION_RULE)
    return replace(command, decision="allow", rules=rules)


def _change_of(recorded: str, now: str, fields: tuple[str, ...]) -> Change:
    if not fields:
        return Change.UNCHANGED
    if recorded != now:
        return Change.NOW_BLOCKED if now == "block" else Change.NOW_ALLOWED
    return Change.CHANGED


def summarize(rows: Sequence[Row]) -> Summary:
    """Count the rows by change."""
    counts = dict.fromkeys(Change, 0)
    for row in rows:
        counts[row.change] += 1
    return Summary(
        commands=len(rows),
        unchanged=counts[Change.UNCHANGED],
        now_blocked=counts[Change.NOW_BLOCKED],
        now_allowed=counts[Change.NOW_ALLOWED],
        changed=counts[Change.CHANGED],
    )


def _recorded_json(command: RecordedCommand) -> dict[str, Any]:
    return {
        "decision": command.decision,
        "required_level": command.required_level
        if "required_level" in command.compared
        else None,
        "effects": list(command.effects) if "effects" in command.compared else None,
        "rules": list(command.rules) if "rules" in command.compared else None,
        "exit_status": command.exit_status,
    }


def _why(verdict: Verdict) -> str | None:
    """The reason that blocks: a refused host's, else the blocking command's first."""
    host = verdict.host_block
    if host is not None:
        return host.reason
    return verdict.blocking.reasons[0] if verdict.blocking else None
