"""``guard fetch``: the guard's own guarded download (``Invoke-AllowedDownload``).

``guard fetch URL --out PATH [--sha256 HEX] [--max-bytes N] [--reason TEXT]``
is judged like any L3 command (:func:`fetch_judgement`: the network effect
needs L3 and the operator's opt-in, the write to PATH is judged like any
write, the URL's host must be on the ``[[network]]`` allow-list for a GET
over its scheme, so ``http://`` only where an entry lists ``http``), then
:func:`download` does the work in the guard's own process:

* every hop (redirects too, at most five) is judged again by the same
  :class:`~statetrace_guard.online.egress.Egress` the proxy uses, approval
  narrowing included; the name is resolved here, every address checked, and
  the connection made to a checked address (TLS verified against the name);
* the body goes to a temporary name beside PATH (``O_EXCL``, no symlinks
  followed, inside a directory opened once and checked to be inside the
  workspace), never more than ``--max-bytes``; its SHA-256 is computed on
  the way, compared with ``--sha256`` when given (a mismatch removes the
  file), and only then renamed to PATH.

The NetOps line of the command carries ``HashSha256`` and ``OutPath``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import secrets
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.decision import Decision, HostVerdict, decide
from statetrace_guard.errors import ExitCode
from statetrace_guard.evaluate import Judgement
from statetrace_guard.levels import Effect
from statetrace_guard.online.egress import Egress, EgressVerdict, Request
from statetrace_guard.online.hosts import normalize_host
from statetrace_guard.online.proxy import Resolver, resolve

if TYPE_CHECKING:
    from statetrace_guard.evaluate import Place
    from statetrace_guard.execute import RunOptions
    from statetrace_guard.invocation import Invocation
    from statetrace_guard.levels import Level
    from statetrace_guard.policy import CompiledPolicy

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FETCH_ENFORCEMENT",
    "FetchRequest",
    "FetchResult",
    "check_sha256",
    "download",
    "fetch_judgement",
    "guarded_fetch",
    "parse_fetch",
]

DEFAULT_MAX_BYTES = 1 << 30
# The record's enforcement: the guard does this work itself, by this code.
FETCH_ENFORCEMENT = {"network": "guard-fetch", "filesystem": "guard-fetch"}
_MAX_REDIRECTS = 5
_TIMEOUT = 30.0
_CHUNK = 1 << 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_PORTS = {"https": 443, "http": 80}
_GUARD_PROGRAMS = frozenset({"guard", "guard.exe"})
_VALUE_OPTIONS = {"--out", "--sha256", "--max-bytes", "--reason"}


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What to download and where; ``sha256`` in lower case when given."""

    url: str
    out: str
    sha256: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    reason: str = ""

    def argv(self) -> tuple[str, ...]:
        """The command line that asks for it (recorded, and judged)."""
        words = ["guard", "fetch", self.url, "--out", self.out]
        if self.sha256:
            words += ["--sha256", self.sha256]
        if self.max_bytes != DEFAULT_MAX_BYTES:
            words += ["--max-bytes", str(self.max_bytes)]
        if self.reason:
            words += ["--reason", self.reason]
        return tuple(words)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """How a download ended.

    ``status`` is ``succeeded``, ``failed`` (HTTP error, size, hash, I/O) or
    ``blocked`` (a hop the egress rules refuse, with ``rule``).
    """

    status: str
    url: str
    sha256: str | None = None
    size: int = 0
    error: str | None = None
    rule: str | None = None


def check_sha256(text: str | None) -> str | None:
    """Lower-case a hex SHA-256; None stays None.

    Raises:
        ValueError: not 64 hex digits.
    """
    if text is None:
        return None
    if not _HEX64.match(text):
        msg = f"--sha256 needs 64 hex digits, got {text!r}"
        raise ValueError(msg)
    return text.lower()


def parse_fetch(argv: Sequence[str]) -> FetchRequest | None:
    """The request when argv is exactly ``guard fetch URL --out PATH [...]``.

    Anything else (an unknown option, a missing ``--out``) is None and is
    judged like any other command.
    """
    if len(argv) < 3 or argv[1] != "fetch":  # noqa: PLR2004 - guard fetch URL
        return None
    if argv[0].replace("\\", "/").rsplit("/", 1)[-1].lower() not in _GUARD_PROGRAMS:
        return None
    url, found, words = argv[2], {}, list(argv[3:])
    while words:
        name, equals, value = words.pop(0).partition("=")
        if name not in _VALUE_OPTIONS or name in found or (not equals and not words):
            return None
        found[name] = value if equals else words.pop(0)
    try:
        size = int(found.get("--max-bytes", DEFAULT_MAX_BYTES))
        sha = check_sha256(found.get("--sha256"))
    except ValueError:
        return None
    if "--out" not in found or size <= 0:
        return None
    return FetchRequest(url, found["--out"], sha, size, found.get("--reason", ""))


def _hop(url: str) -> tuple[Request, str] | str:
    """The request a URL makes (a GET), or why it cannot be made."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _PORTS:
        return f"not an http(s) URL: {url}"
    try:
        host = normalize_host(parts.hostname or "")
        port = parts.port or _PORTS[scheme]
    except ValueError as exc:
        return str(exc)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Request(host, port, "GET", scheme), path


def fetch_judgement(
    request: FetchRequest,
    argv: Sequence[str],
    level: Level,
    policy: CompiledPolicy,
    place: Place,
) -> Judgement:
    """Judge ``guard fetch`` like any L3 command, the URL's GET included."""
    command = SimpleCommand(
        argv=tuple(argv),
        shell="exec",
        name="guard",
        effects=frozenset({Effect.NETWORK, Effect.WRITE}),
        spec="guard:fetch",
        reasons=("guard fetch downloads one file into the workspace",),
        writes=(request.out,),
        urls=(request.url,),
    )
    classification = Classification((command,))
    # The file lands in the workspace only: no temporary room counts.
    inside_only = replace(place.decide, temp_dirs=())
    verdict = decide(classification, policy, level, inside_only)
    hop = _hop(request.url)
    answer = (
        Egress(policy.network).judge(hop[0])
        if isinstance(hop, tuple)
        else EgressVerdict(allowed=False, rule="network:bad-request", reason=hop)
    )
    host = hop[0].host if isinstance(hop, tuple) else request.url
    item = verdict.commands[0]
    judged = HostVerdict(host, answer.allowed, answer.rule, answer.reason)
    item = replace(item, hosts=(judged,))
    if not answer.allowed:
        item = replace(item, reasons=(*item.reasons, f"guard: {answer.reason}"))
    allowed = item.allowed_at(level, place.decide.env)
    verdict = replace(
        verdict,
        commands=(item,),
        decision=Decision.ALLOW if allowed else Decision.DENY,
        blocking=None if allowed else item,
        reasons=tuple(dict.fromkeys((*verdict.reasons, *item.reasons))),
    )
    return Judgement(classification, verdict)


def download(
    request: FetchRequest,
    egress: Egress,
    workspace: Path,
    cwd: Path,
    *,
    resolver: Resolver = resolve,
) -> FetchResult:
    """Download ``request.url`` to ``request.out`` under ``egress``; see the module."""
    target = cwd / request.out
    try:
        directory = _open_directory(target.parent, workspace)
    except (OSError, ValueError) as exc:
        return FetchResult("failed", request.url, error=str(exc))
    try:
        return _follow(request, egress, directory, target.name, resolver)
    finally:
        os.close(directory)


def _open_directory(parent: Path, workspace: Path) -> int:
    """Open the destination directory; it must be inside the workspace."""
    root = os.path.realpath(workspace)
    fd = os.open(os.path.realpath(parent), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    # Where the opened directory really is (it may have moved since realpath).
    proc = Path(f"/proc/self/fd/{fd}")
    where = str(proc.readlink()) if proc.is_dir() else os.path.realpath(parent)
    if os.path.commonpath([where, root]) != root:
        os.close(fd)
        msg = f"--out must be inside the workspace ({root}), not in {where}"
        raise ValueError(msg)
    return fd


def _follow(
    request: FetchRequest,
    egress: Egress,
    directory: int,
    name: str,
    resolver: Resolver,
) -> FetchResult:
    url = request.url
    for _ in range(_MAX_REDIRECTS + 1):
        hop = _hop(url)
        if isinstance(hop, str):
            return FetchResult("failed", url, error=hop)
        outcome = _get(hop, url, egress, resolver)
        if isinstance(outcome, FetchResult):
            return outcome
        response, connection = outcome
        with contextlib.closing(connection):
            if response.status in _REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location") or "")
                continue
            if response.status != 200:  # noqa: PLR2004
                error = f"HTTP {response.status} {response.reason}"
                return FetchResult("failed", url, error=error)
            return _store(response, request, directory, name, url)
    return FetchResult("failed", url, error="more than 5 redirects")


def _get(
    hop: tuple[Request, str], url: str, egress: Egress, resolver: Resolver
) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection] | FetchResult:
    """Judge, resolve, check, connect and send the GET for one hop."""
    request, path = hop
    verdict = egress.judge(request)
    if not verdict.allowed:
        return FetchResult("blocked", url, error=verdict.reason, rule=verdict.rule)
    try:
        addresses = resolver(request.host, request.port)
    except OSError as exc:
        return FetchResult("failed", url, error=f"cannot resolve {request.host}: {exc}")
    refusal = egress.address_refusal(request.host, addresses)
    if refusal is not None:
        return FetchResult("blocked", url, error=refusal.reason, rule=refusal.rule)
    try:
        connection = _connect(request, [str(a) for a in addresses])
        connection.request("GET", path, headers={"Accept-Encoding": "identity"})
        return connection.getresponse(), connection
    except (OSError, http.client.HTTPException) as exc:
        return FetchResult("failed", url, error=f"{request.target}: {exc}")


def _connect(request: Request, addresses: list[str]) -> http.client.HTTPConnection:
    """Connect to the first checked address that answers (TLS for https)."""
    errors = []
    for address in addresses:
        try:
            sock = socket.create_connection((address, request.port), timeout=_TIMEOUT)
        except OSError as exc:
            errors.append(f"{address}: {exc.strerror or exc}")
            continue
        connection = http.client.HTTPConnection(request.host, request.port)
        if request.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=request.host)
        connection.sock = sock
        return connection
    raise OSError("cannot connect: " + "; ".join(errors))


def _store(
    response: http.client.HTTPResponse,
    request: FetchRequest,
    directory: int,
    name: str,
    url: str,
) -> FetchResult:
    """Stream the body to a temporary name, check it, rename it into place."""
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > request.max_bytes:
        error = f"{declared} bytes is more than --max-bytes {request.max_bytes}"
        return FetchResult("failed", url, error=error)
    temporary = f".{name}.guard-fetch-{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    digest, size = hashlib.sha256(), 0
    try:
        fd = os.open(temporary, flags, 0o666, dir_fd=directory)
        with os.fdopen(fd, "wb") as handle:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > request.max_bytes:
                    raise _TooBig(request.max_bytes)  # noqa: TRY301
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        found = digest.hexdigest()
        if request.sha256 is not None and found != request.sha256:
            error = f"sha256 mismatch: expected {request.sha256}, got {found}; removed"
            _remove(temporary, directory)
            return FetchResult("failed", url, found, size, error)
        os.rename(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except (OSError, http.client.HTTPException, _TooBig) as exc:
        _remove(temporary, directory)
        return FetchResult("failed", url, None, size, str(exc))
    return FetchResult("succeeded", url, found, size)


class _TooBig(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is more than --max-bytes {limit}")


def _remove(name: str, directory: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)


def guarded_fetch(
    invocation: Invocation, request: FetchRequest, options: RunOptions
) -> int:
    """Judge, record and do one download; return guard fetch's exit status.

    0 downloaded (and the hash matched); 1 the download failed (HTTP error,
    too big, hash mismatch: nothing left at ``--out``); 126 blocked (by the
    policy, the session, or a redirect to a host the rules refuse); 125 the
    record could not be written.
    """
    from statetrace_guard.execute import (  # noqa: PLC0415 - fetch path only
        ACTIVE_VARIABLE,
        Blocked,
        egress_for,
        finish,
        prepare,
    )

    if invocation.env.get(ACTIVE_VARIABLE):
        _say(
            "guard: blocked: guard fetch writes the guard's own records; "
            "run it as `guard run -- guard fetch ...`, not inside a guarded program"
        )
        return ExitCode.RUN_BLOCKED
    argv = options.argv or request.argv()
    prepared = prepare(
        invocation,
        replace(options, argv=argv),
        judge=lambda words, level, policy, place: fetch_judgement(
            request, words, level, policy, place
        ),
        own_enforcement=FETCH_ENFORCEMENT,
    )
    if isinstance(prepared, Blocked):
        _say(prepared.message)
        return prepared.exit_status
    try:
        started = time.monotonic()
        result = download(
            request, egress_for(prepared), invocation.workspace, invocation.cwd
        )
        code = _exit_code(result)
        extra = {
            **prepared.facts.extra,
            "program": "guard fetch",
            "out_path": request.out,
            "hash_sha256": result.sha256 or "",
        }
        prepared = replace(prepared, facts=replace(prepared.facts, extra=extra))
        outcome = {
            "exit_status": code,
            "duration_ms": (time.monotonic() - started) * 1000,
            "error": result.error,
            "fetch": {
                "status": result.status,
                "url": result.url,
                "bytes": result.size,
                "rule": result.rule,
                "expected_sha256": request.sha256,
            },
        }
        for warning in finish(prepared, outcome):
            _say(warning)
    finally:
        shutil.rmtree(prepared.private_tmp, ignore_errors=True)
    _report(result, request)
    return code


def _exit_code(result: FetchResult) -> int:
    if result.status == "succeeded":
        return ExitCode.OK
    return ExitCode.RUN_BLOCKED if result.status == "blocked" else ExitCode.NEGATIVE


def _report(result: FetchResult, request: FetchRequest) -> None:
    if result.status == "succeeded":
        sys.stdout.write(f"{result.sha256}  {request.out}\n")
        return
    rule = f" (rule {result.rule})" if result.rule else ""
    _say(f"guard: fetch {result.status}: {result.url}: {result.error}{rule}")


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
