"""NetOps records: the StateTrace NetOps template, one line per network command.

Every command with the network effect, allowed or blocked, gets a line in
``<log-dir>/NetOps/<YYYY-MM-DD>.json`` (JSON Lines, chained like every log).
The field names are the StateTrace template's, so the project's existing
evidence checks keep working: ``Timestamp``, ``SessionId``, ``TaskBoardIds``,
``PlanReferences``, ``Action`` (run, blocked, download), ``Program``,
``Arguments`` (``Uri``, ``OutPath``, ``HashSha256``, ``Reason``, ``Hosts``,
``Remotes``, ``Targets``, ``Sources``), ``Environment`` (the two opt-in
variables exactly as seen, null when unset) and ``Result`` (``Status``,
``DurationMs``, ``ExitCode``), plus ``schema_version``, ``event``, ``seq``,
``prev_sha256`` and ``sha256``.

Everything here is pure: it builds the record from an already redacted
session record.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from statetrace_guard.audit.chain import SCHEMA_VERSION
from statetrace_guard.levels import OPT_IN_INSTALL, OPT_IN_NET

__all__ = [
    "CONNECTION_EVENT",
    "NETOPS_EVENT",
    "PROXY_EVENT",
    "connection_netops",
    "connection_record",
    "extract_arguments",
    "host_of",
    "netops_path",
    "netops_record",
    "proxy_record",
    "simple_commands",
]

NETOPS_EVENT = "netops"
# Session-log events of the L3 egress proxy (one per connection, and one when
# the proxy itself failed); each has a NetOps line too.
CONNECTION_EVENT = "network.connection"
PROXY_EVENT = "network.proxy"
_COMMAND_CONTEXT = (
    "session_id",
    "task_id",
    "task_ids",
    "plan_refs",
    "level",
    "pid",
    "cwd",
    "policy_sha256",
    "env",
    "extra",
)
_OUT_OPTIONS = frozenset(
    {
        "-o",
        "--output",
        "-O",
        "--output-document",
        "-outfile",
        "-outpath",
        "-destination",
        "--out",
    }
)
_HASH_OPTIONS = frozenset(
    {"-expectedhash", "-sha256", "--sha256", "-hashsha256", "--expected-sha256"}
)
_SOURCE_OPTIONS = frozenset(
    {
        "-source",
        "--source",
        "-uri",
        "--uri",
        "-url",
        "--url",
        "--index-url",
        "-i",
        "--extra-index-url",
    }
)
_DOWNLOADERS = frozenset(
    {
        "wget",
        "invoke-allowedownload",
        "invoke-alloweddownload",
        "start-bitstransfer",
        "save-module",
        "save-package",
    }
)
_GIT_REMOTE_COMMANDS = frozenset(
    {"clone", "fetch", "pull", "push", "ls-remote", "remote", "submodule"}
)
_SSH_PROGRAMS = frozenset({"ssh", "scp", "sftp", "rsync", "ssh-copy-id"})
_TARGET = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)|^[\w.-]+@[\w.-]+$")


def netops_path(log_dir: Path, date: str) -> Path:
    """Return ``<log-dir>/NetOps/<date>.json``."""
    return log_dir / "NetOps" / f"{date}.json"


def simple_commands(argv: Sequence[str]) -> list[list[str]]:
    """Return the argv and the simple commands of any script inside it.

    ``bash -c 'git push origin main && curl -o x URL'`` gives the argv itself,
    ``git push origin main`` and ``curl -o x URL``: the NetOps arguments are
    looked for in each.
    """
    commands = [list(argv)]
    for word in argv[1:]:
        if any(char in word for char in " \t\n;|&"):
            commands.extend(_split_script(word))
    return commands


def _split_script(script: str) -> list[list[str]]:
    """Split a script into simple commands at ``; | & && ||`` (shell-like)."""
    try:
        lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = script.split()
    commands: list[list[str]] = [[]]
    for word in words:
        if word and set(word) <= set(";|&()"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def _program(argv: Sequence[str]) -> str:
    """Return the lower-case basename of argv[0] (``curl``, ``pwsh``)."""
    if not argv:
        return ""
    return re.split(r"[\\/]", argv[0])[-1].lower().removesuffix(".exe")


def _option_values(argv: Sequence[str], names: frozenset[str]) -> Iterator[str]:
    """Yield the values of the given options, ``-x v`` or ``--x=v`` forms."""
    for index, word in enumerate(argv):
        name, sep, value = word.partition("=")
        if name.lower() in names or name in names:
            if sep:
                yield value
            elif index + 1 < len(argv):
                yield argv[index + 1]


def host_of(item: str) -> str | None:
    """Return the host of a URL or bare host name, even a redacted one."""
    if "://" not in item:
        return item.split("/", 1)[0] or None
    try:
        return urlsplit(item).hostname
    except ValueError:  # e.g. "[REDACTED:..]" in the user-info looks like IPv6
        netloc = item.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        return netloc.split(":", 1)[0].lower() or None


def _hosts(urls: Iterable[str], targets: Iterable[str]) -> list[str]:
    """Return the host names of URLs, bare hosts and ssh targets, in order."""
    hosts: list[str] = []
    for item in urls:
        host = host_of(item)
        if host and host not in hosts:
            hosts.append(host)
    for target in targets:
        host = target.split("@")[-1].split(":")[0]
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def _git_remotes(argv: Sequence[str]) -> list[str]:
    """Return the remotes named by a git command (``git push origin`` -> origin)."""
    words = [word for word in argv[1:] if not word.startswith("-")]
    if not words or words[0] not in _GIT_REMOTE_COMMANDS:
        return []
    names = words[1:]
    if names[:1] in (["add"], ["set-url"]):
        names = names[1:]  # git remote add NAME URL
    return names[:1]


def _ssh_targets(argv: Sequence[str]) -> list[str]:
    """Return ``user@host`` / ``host:path`` targets of ssh-like programs."""
    return [word for word in argv[1:] if _TARGET.match(word)]


def extract_arguments(
    argv: Sequence[str],
    urls: Sequence[str],
    reasons: Sequence[str],
    *,
    blocked: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the ``Arguments`` object of a NetOps record.

    Args:
        argv: the (redacted) command.
        urls: URLs and host names the classifier found.
        reasons: why the command was blocked, when it was.
        blocked: whether the command was blocked.
        extra: facts with ``hash_sha256`` or ``out_path`` supplied by the runtime.

    Returns:
        Only the keys that apply, plus ``Hosts`` (possibly empty).
    """
    commands = simple_commands(argv)
    targets = [
        t for c in commands if _program(c) in _SSH_PROGRAMS for t in _ssh_targets(c)
    ]
    arguments: dict[str, Any] = {"Hosts": _hosts(urls, targets)}
    # What the runtime supplies (a computed hash) comes before the arguments.
    found: dict[str, list[str]] = dict(_found([], [], extra, []).items())
    for command in commands:
        for key, values in _found(command, urls, None, targets).items():
            found.setdefault(key, []).extend(values)
    for key, values in found.items():
        if values:
            arguments[key] = (
                list(dict.fromkeys(values)) if key in _LIST_KEYS else values[0]
            )
    if blocked and reasons:
        arguments["Reason"] = "; ".join(reasons)
    return arguments


_LIST_KEYS = frozenset({"Remotes", "Targets", "Sources"})


def _found(
    argv: Sequence[str],
    urls: Sequence[str],
    extra: Mapping[str, Any] | None,
    targets: list[str],
) -> dict[str, list[str]]:
    """Collect every candidate value of each Arguments key (first one wins)."""
    hashes = [*_option_values(argv, _HASH_OPTIONS), *_extra(extra, "hash_sha256")]
    return {
        "Uri": [url for url in urls if "://" in url][:1],
        "OutPath": [*_option_values(argv, _OUT_OPTIONS), *_extra(extra, "out_path")],
        "HashSha256": hashes,
        "Remotes": _git_remotes(argv) if _program(argv) == "git" else [],
        "Targets": targets,
        "Sources": [*_option_values(argv, _SOURCE_OPTIONS)],
    }


def _extra(extra: Mapping[str, Any] | None, key: str) -> list[str]:
    """Return ``extra[key]`` as a one-item list when it is a non-empty string."""
    value = (extra or {}).get(key)
    return [value] if isinstance(value, str) and value else []


def _action(program: str, arguments: Mapping[str, Any], *, blocked: bool) -> str:
    """Classify the NetOps action: blocked, download, or run."""
    if blocked:
        return "blocked"
    if "OutPath" in arguments or program in _DOWNLOADERS:
        return "download"
    return "run"


def _status(outcome: Mapping[str, Any] | None, *, blocked: bool) -> str:
    """Say how the command ended: blocked, timeout, succeeded or failed."""
    if blocked or outcome is None:
        return "blocked"
    if outcome.get("timed_out"):
        return "timeout"
    return "succeeded" if outcome.get("exit_code") == 0 else "failed"


def netops_record(
    session: Mapping[str, Any], outcome: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Build an unsealed NetOps record from a written (redacted) session record.

    Args:
        session: the ``command.blocked`` or ``command.finished`` record as
            written, so everything in it is already redacted.
        outcome: the finished command's figures, None when blocked.

    Returns:
        The NetOps record without ``Timestamp`` and chain fields (the writer
        adds them).
    """
    blocked = session.get("decision") == "block" or outcome is None
    argv = [str(word) for word in session.get("argv", [])]
    arguments = extract_arguments(
        argv,
        list(session.get("urls", [])),
        list(session.get("reasons", [])),
        blocked=blocked,
        extra=session.get("extra"),
    )
    env = session.get("env") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "event": NETOPS_EVENT,
        "SessionId": str(session.get("session_id", "")),
        "TaskBoardIds": _task_ids(session),
        "PlanReferences": list(session.get("plan_refs") or []),
        "Action": _action(_program(argv), arguments, blocked=blocked),
        "Program": _program_name(session, argv),
        "Arguments": arguments,
        "Environment": {name: env.get(name) for name in (OPT_IN_NET, OPT_IN_INSTALL)},
        "Result": _result(outcome, blocked=blocked),
    }


def _program_name(session: Mapping[str, Any], argv: Sequence[str]) -> str:
    """Return ``extra.program`` (the runtime's network program) or argv[0]."""
    extra = session.get("extra") or {}
    named = extra.get("program") if isinstance(extra, Mapping) else None
    if isinstance(named, str) and named:
        return named
    return argv[0] if argv else ""


def _task_ids(session: Mapping[str, Any]) -> list[str]:
    """Return the task-board ids: ``task_ids``, else the one ``task_id``."""
    task_ids = [str(task) for task in session.get("task_ids") or []]
    if not task_ids and session.get("task_id"):
        task_ids = [str(session["task_id"])]
    return task_ids


def _result(outcome: Mapping[str, Any] | None, *, blocked: bool) -> dict[str, Any]:
    """Build the ``Result`` object: Status, DurationMs (rounded), ExitCode."""
    duration = None if outcome is None else outcome.get("duration_ms")
    return {
        "Status": _status(outcome, blocked=blocked),
        "DurationMs": None if duration is None else round(float(duration)),
        "ExitCode": None if outcome is None else outcome.get("exit_code"),
    }


def connection_record(
    command: Mapping[str, Any], connection: Mapping[str, Any]
) -> dict[str, Any]:
    """The session record of one proxied connection.

    Args:
        command: the fields of the command whose program opened it
            (``CommandFacts.fields()``); its argv is kept as ``command``.
        connection: the proxy's figures (``Connection.as_fields()``).

    Returns:
        A ``network.connection`` record whose ``argv`` is the connection
        (``CONNECT host:port`` or ``GET URL``), so ``guard log`` lists it,
        with ``effects`` ``["network"]``, the decision, rule and reason.
    """
    figures = {
        key: connection.get(key)
        for key in (
            "action",
            "host",
            "port",
            "addresses",
            "bytes_up",
            "bytes_down",
            "duration_ms",
            "status",
            "error",
        )
    }
    reason = connection.get("reason")
    return {
        **{key: command.get(key) for key in _COMMAND_CONTEXT if key in command},
        "event": CONNECTION_EVENT,
        "argv": [str(connection.get("method", "")), str(connection.get("target", ""))],
        "command": list(command.get("argv") or []),
        "effects": ["network"],
        "decision": connection.get("decision", "block"),
        "reasons": [reason] if reason else [],
        "rules": [connection.get("rule")] if connection.get("rule") else [],
        "network": True,
        "urls": [str(connection.get("target", ""))],
        "connection": figures,
    }


def proxy_record(command: Mapping[str, Any], error: str) -> dict[str, Any]:
    """The session record saying the command's proxy failed (``error``)."""
    return {
        **{key: command.get(key) for key in _COMMAND_CONTEXT if key in command},
        "event": PROXY_EVENT,
        "argv": ["proxy"],
        "command": list(command.get("argv") or []),
        "effects": ["network"],
        "decision": "allow",
        "reasons": [error],
        "rules": [],
        "network": True,
        "urls": [],
        "connection": {"action": "proxy", "status": "failed", "error": error},
    }


def connection_netops(session: Mapping[str, Any]) -> dict[str, Any]:
    """The NetOps line of a written (redacted) connection or proxy record."""
    figures = session.get("connection") or {}
    argv = [str(word) for word in session.get("argv") or []]
    host = figures.get("host")
    arguments: dict[str, Any] = {"Hosts": [host] if host else []}
    if session.get("urls"):
        arguments["Uri"] = session["urls"][0]
    optional = {
        "Host": host,
        "Port": figures.get("port"),
        "Method": argv[0] if figures.get("action") != "proxy" and argv else None,
        "Addresses": figures.get("addresses"),
        "BytesUp": figures.get("bytes_up"),
        "BytesDown": figures.get("bytes_down"),
        "Decision": session.get("decision"),
        "Rule": (session.get("rules") or [None])[0],
        "Reason": "; ".join(session.get("reasons") or []) or None,
        "Error": figures.get("error"),
    }
    arguments.update(
        {key: value for key, value in optional.items() if value is not None}
    )
    env = session.get("env") or {}
    duration = figures.get("duration_ms")
    return {
        "schema_version": SCHEMA_VERSION,
        "event": NETOPS_EVENT,
        "SessionId": str(session.get("session_id", "")),
        "TaskBoardIds": _task_ids(session),
        "PlanReferences": list(session.get("plan_refs") or []),
        "Action": str(figures.get("action", "connect")),
        "Program": _program_name(
            session, [str(w) for w in session.get("command") or []]
        ),
        "Arguments": arguments,
        "Environment": {name: env.get(name) for name in (OPT_IN_NET, OPT_IN_INSTALL)},
        "Result": {
            "Status": figures.get("status", "failed"),
            "DurationMs": None if duration is None else round(float(duration)),
            "ExitCode": None,
        },
    }
