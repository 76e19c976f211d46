"""The filtering HTTP proxy an L3 program reaches from inside its namespace.

The program's network namespace has loopback only; its one way out is this
proxy, listening there on a socket the program's setup created inside the
namespace and handed out (a socket stays in the namespace it was created
in, whoever serves it). The proxy itself runs outside, in the guard's own
namespace, and speaks plain HTTP/1.1 proxying:

* ``CONNECT host:port``: a tunnel (TLS); the bytes are relayed untouched,
  with ``splice(2)`` (kernel to kernel, no copy through Python);
* ``GET http://host/path`` and other methods in absolute form: one request
  per connection, forwarded with ``Connection: close``, the response
  relayed back (its connection headers replaced by ``Connection: close``).

For each connection the proxy asks :class:`~statetrace_guard.online.egress.Egress`
(host, port, method, scheme), resolves the name itself, refuses a name that
resolves to an address no entry names (:meth:`Egress.address_refusal`),
connects to the checked address (never to the name again: no second lookup
for a rebinding to answer), and reports a :class:`Connection` to its
recorder when the connection ends. A refusal is a ``403`` whose status line
and body name the rule, so the program's tool prints why.

NOTE(online): threads, not asyncio: every relay is two blocking ``splice``
loops that release the GIL; an agent's program opens a handful of
connections, and a thread per direction keeps each loop trivial.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from statetrace_guard.online.egress import Egress, Request
from statetrace_guard.online.hosts import (
    Address,
    normalize_host,
    parse_address,
    split_host_port,
)

__all__ = [
    "Connection",
    "ProxyServer",
    "Recorder",
    "resolve",
]

_MAX_HEAD = 65536
_HEAD_TIMEOUT = 30.0
_CONNECT_TIMEOUT = 10.0
_MAX_CONNECTIONS = 256
_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_METHOD = re.compile(r"^[A-Z]{1,20}$")
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,16}$")
_VERSION = re.compile(rb"^HTTP/1\.[01]$")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "host",
    }
)


@dataclass
class Connection:
    """One connection as the proxy saw it; filled in while it runs.

    ``status`` ends as ``succeeded`` (relayed to the end), ``failed`` (could
    not connect, reset, cut) or ``blocked`` (refused, with ``rule``).
    """

    action: str  # "connect" (a CONNECT tunnel) or "request" (plain HTTP)
    method: str
    target: str  # "host:port" for a tunnel, the URL for a request
    host: str = ""
    port: int = 0
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.monotonic)
    allowed: bool = False
    rule: str = ""
    reason: str = ""
    status: str = "failed"
    error: str | None = None
    addresses: tuple[str, ...] = ()
    bytes_up: int = 0
    bytes_down: int = 0
    duration_ms: float = 0.0
    # The whole response (by its Content-Length) reached the program: a cut
    # when the command ends after that loses nothing.
    complete: bool = False

    def as_fields(self) -> dict[str, object]:
        """Plain values for the records."""
        return {
            "action": self.action,
            "method": self.method,
            "target": self.target,
            "host": self.host,
            "port": self.port,
            "decision": "allow" if self.allowed else "block",
            "rule": self.rule,
            "reason": self.reason,
            "status": self.status,
            "error": self.error,
            "addresses": list(self.addresses),
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "duration_ms": round(self.duration_ms, 3),
        }

    def add_up(self, count: int) -> None:
        """Count bytes from the program to the server."""
        self.bytes_up += count

    def add_down(self, count: int) -> None:
        """Count bytes from the server to the program."""
        self.bytes_down += count


Recorder = Callable[[Connection], None]
Adder = Callable[[int], None]
Resolver = Callable[[str, int], list[Address]]


class _Refusal(Exception):
    """Answer the program with ``status`` and end the connection."""

    def __init__(self, status: int, phrase: str, text: str, rule: str = "") -> None:
        super().__init__(text)
        self.status, self.phrase, self.text, self.rule = status, phrase, text, rule


def resolve(host: str, port: int) -> list[Address]:
    """The addresses of ``host`` (an IP literal is its own), in resolver order.

    Raises:
        OSError: the name does not resolve.
    """
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))


class ProxyServer:
    """Serves one program's proxy listener until :meth:`close`."""

    def __init__(
        self,
        listener: socket.socket,
        egress: Egress,
        record: Recorder,
        *,
        resolver: Resolver = resolve,
        connect_timeout: float = _CONNECT_TIMEOUT,
        refuse: threading.Event | None = None,
    ) -> None:
        """Serve ``listener`` (already listening) under ``egress``.

        Once ``refuse`` is set (the recorder could not write), every new
        connection is refused: nothing goes out unrecorded.
        """
        self._listener = listener
        self._egress = egress
        self._record = record
        self._resolve = resolver
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._slots = threading.BoundedSemaphore(_MAX_CONNECTIONS)
        self._closing = threading.Event()
        self._refuse = refuse or threading.Event()

    def serve(self) -> None:
        """Accept connections until closed; each is served on its own thread."""
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                time.sleep(0.05)  # out of descriptors: let connections end
                continue
            thread = threading.Thread(target=self._handle, args=(client,), daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, cut open connections, wait for their records."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        with self._lock:
            open_sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._listener.close()

    def _handle(self, client: socket.socket) -> None:
        conn = Connection("request", "", "")
        try:
            with self._tracked(client):
                if self._refuse.is_set():
                    text = "the guard cannot record connections; nothing goes out"
                    raise _Refusal(503, "Unavailable", text)  # noqa: TRY301
                if not self._slots.acquire(blocking=False):
                    raise _Refusal(503, "Busy", "too many connections open")  # noqa: TRY301
                try:
                    self._serve_one(client, conn)
                finally:
                    self._slots.release()
        except _Refusal as refusal:
            conn.status = "blocked" if refusal.rule else "failed"
            conn.reason = refusal.text if refusal.rule else conn.reason
            conn.rule = refusal.rule or conn.rule
            conn.error = None if refusal.rule else refusal.text
            _answer(client, refusal)
        except OSError as exc:
            conn.status, conn.error = "failed", exc.strerror or str(exc)
        finally:
            client.close()
            conn.duration_ms = (time.monotonic() - conn.clock) * 1000
            try:
                self._record(conn)
            finally:
                # Only once recorded: close() waits for the threads it finds,
                # and the proxy process ends right after (a thread that left
                # the set first lost its record about half the time).
                with self._lock:
                    self._threads.discard(threading.current_thread())

    @contextlib.contextmanager
    def _tracked(self, sock: socket.socket) -> Iterator[None]:
        """Keep ``sock`` where :meth:`close` finds it while it is in use."""
        with self._lock:
            if self._closing.is_set():
                msg = "the proxy is closing"
                raise _Refusal(503, "Closing", msg)
            self._sockets.add(sock)
        try:
            yield
        finally:
            with self._lock:
                self._sockets.discard(sock)

    def _serve_one(self, client: socket.socket, conn: Connection) -> None:
        """Judge, connect and relay one connection."""
        client.settimeout(_HEAD_TIMEOUT)
        head, rest = _read_head(client)
        parsed = _parse_request(head)
        request = _describe(parsed, conn)
        verdict = self._egress.judge(request)
        conn.rule, conn.reason = verdict.rule, verdict.reason
        if not verdict.allowed:
            raise _Refusal(403, "Forbidden", verdict.reason, verdict.rule)
        conn.allowed = True
        upstream = self._open(request, conn)
        with upstream, self._tracked(upstream):
            if parsed.method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _tunnel(client, upstream, rest, conn)
            else:
                _forward(client, upstream, parsed, rest, conn)
        if self._closing.is_set() and conn.error is None and not conn.complete:
            conn.error = "cut: the proxy closed when the command ended"
        if conn.error is None:
            conn.status = "succeeded"

    def _open(self, request: Request, conn: Connection) -> socket.socket:
        """Resolve, check every address, connect to a checked one."""
        try:
            addresses = self._resolve(request.host, request.port)
        except OSError as exc:
            text = f"cannot resolve {request.host}: {exc.strerror or exc}"
            raise _Refusal(502, "Bad Gateway", text) from exc
        conn.addresses = tuple(str(address) for address in addresses)
        refusal = self._egress.address_refusal(request.host, addresses)
        if refusal is not None:
            conn.allowed = False
            conn.rule, conn.reason = refusal.rule, refusal.reason
            raise _Refusal(403, "Forbidden", refusal.reason, refusal.rule)
        errors = []
        for address in addresses:
            try:
                upstream = socket.create_connection(
                    (str(address), request.port), timeout=self._connect_timeout
                )
            except OSError as exc:
                errors.append(f"{address}: {exc.strerror or exc}")
                continue
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return upstream
        text = f"cannot connect to {request.target}: " + "; ".join(errors)
        raise _Refusal(502, "Bad Gateway", text)


@dataclass(frozen=True, slots=True)
class _Parsed:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the blank line; return the head and what came after it."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            raise _Refusal(431, "Header Too Large", "the head exceeds 64 KiB")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Refusal(400, "Bad Request", "connection closed before a full head")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    return head, rest


def _bad(text: str) -> _Refusal:
    return _Refusal(400, "Bad Request", text, "network:bad-request")


def _parse_request(head: bytes) -> _Parsed:
    """Parse a request head strictly; anything ambiguous is a 400."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _VERSION.match(parts[2]):  # noqa: PLR2004
        raise _bad("not an HTTP/1.x request line")
    method, target = parts[0].decode("ascii", "replace"), parts[1].decode("latin-1")
    if not _METHOD.match(method):
        raise _bad(f"not a method: {method!r}")
    headers = tuple(_header(line) for line in lines[1:])
    parsed = _Parsed(method, target, headers)
    lengths = set(parsed.values("content-length"))
    if len(lengths) > 1 or (lengths and parsed.values("transfer-encoding")):
        raise _bad("conflicting message framing")
    if lengths and not next(iter(lengths)).isdigit():
        raise _bad("bad Content-Length")
    codings = ",".join(parsed.values("transfer-encoding")).lower().replace(" ", "")
    if codings and codings != "chunked":
        raise _Refusal(501, "Not Implemented", f"transfer coding {codings!r}")
    return parsed


def _header(line: bytes) -> tuple[str, str]:
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.match(name) or b"\r" in line or b"\n" in line:
        raise _bad("malformed header line")
    return name.decode("ascii"), value.strip(b" \t").decode("latin-1")


def _describe(parsed: _Parsed, conn: Connection) -> Request:
    """The request the egress judges; fills in the connection's identity."""
    conn.method = parsed.method
    conn.target = parsed.target
    try:
        if parsed.method == "CONNECT":
            conn.action = "connect"
            host, port = split_host_port(parsed.target)
            if port is None:
                raise _bad("CONNECT needs host:port")
            request = Request(normalize_host(host), port, None, "https")
        else:
            parts = urlsplit(parsed.target)
            if parts.scheme.lower() != "http" or not parts.hostname:
                raise _bad("a proxy request needs an absolute http:// URL")
            request = Request(
                normalize_host(parts.hostname), parts.port or 80, parsed.method, "http"
            )
    except ValueError as exc:
        raise _bad(str(exc)) from exc
    conn.host, conn.port = request.host, request.port
    return request


def _tunnel(
    client: socket.socket, upstream: socket.socket, rest: bytes, conn: Connection
) -> None:
    """Relay both directions until both end; an error in one ends both."""
    client.settimeout(None)
    upstream.settimeout(None)
    if rest:
        upstream.sendall(rest)
        conn.add_up(len(rest))
    errors: list[str] = []
    up = threading.Thread(
        target=lambda: errors.extend(_pump(client, upstream, conn.add_up)),
        daemon=True,
    )
    up.start()
    errors.extend(_pump(upstream, client, conn.add_down))
    up.join()
    if errors:
        conn.error = errors[0]


def _forward(
    client: socket.socket,
    upstream: socket.socket,
    parsed: _Parsed,
    rest: bytes,
    conn: Connection,
) -> None:
    """One plain-HTTP request: head and body up, the response down."""
    parts = urlsplit(parsed.target)
    origin = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = parts.netloc.rsplit("@", 1)[-1]
    if any(v.lower() == "100-continue" for v in parsed.values("expect")):
        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    head = _upstream_head(parsed, origin, authority)
    upstream.sendall(head)
    conn.add_up(len(head))
    reader = _Reader(client, rest)
    length = parsed.values("content-length")
    if length:
        reader.copy_exact(upstream, int(length[0]), conn.add_up)
    elif parsed.values("transfer-encoding"):
        reader.copy_chunked(upstream, conn.add_up)
    upstream.settimeout(None)
    client.settimeout(None)
    _relay_response(upstream, client, conn)


def _upstream_head(parsed: _Parsed, origin: str, authority: str) -> bytes:
    named = {
        token.strip().lower()
        for value in parsed.values("connection")
        for token in value.split(",")
    }
    lines = [f"{parsed.method} {origin} HTTP/1.1", f"Host: {authority}"]
    lines.extend(
        f"{name}: {value}"
        for name, value in parsed.headers
        if name.lower() not in _HOP_BY_HOP and name.lower() not in named
    )
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _relay_response(
    upstream: socket.socket, client: socket.socket, conn: Connection
) -> None:
    """Rewrite the response head to ``Connection: close``, then relay the rest."""
    try:
        head, rest = _read_head(upstream)
    except _Refusal as refusal:
        raise _Refusal(502, "Bad Gateway", f"upstream: {refusal.text}") from refusal
    lines = head.split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line.partition(b":")[0].strip().lower()
        not in (b"connection", b"keep-alive", b"proxy-connection")
    ]
    out = b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n" + rest
    client.sendall(out)
    conn.add_down(len(out))
    expected = _content_length(kept)
    body = [len(rest)]

    def relayed(count: int) -> None:
        body[0] += count
        conn.add_down(count)

    errors = list(_pump(upstream, client, relayed))
    if errors:
        conn.error = errors[0]
    conn.complete = expected is not None and body[0] >= expected


def _content_length(header_lines: list[bytes]) -> int | None:
    """The response body's length when its head states one (and no chunking)."""
    length = None
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    return length


class _Reader:
    """Reads a request body from the program, bytes already read first."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self._sock = sock
        self._buffer = bytearray(pending)

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise _bad("the body ended early")
        self._buffer += chunk

    def copy_exact(self, dst: socket.socket, count: int, add: Adder) -> None:
        while count > 0:
            if not self._buffer:
                self._fill()
            piece = bytes(self._buffer[:count])
            del self._buffer[: len(piece)]
            dst.sendall(piece)
            add(len(piece))
            count -= len(piece)

    def line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise _bad("chunk line too long")
            self._fill()
        line, _, rest = bytes(self._buffer).partition(b"\r\n")
        self._buffer = bytearray(rest)
        return line

    def copy_chunked(self, dst: socket.socket, add: Adder) -> None:
        while True:
            line = self.line()
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or not all(
                c in b"0123456789abcdefABCDEF" for c in size_text
            ):
                raise _bad("bad chunk size")
            size = int(size_text, 16)
            dst.sendall(line + b"\r\n")
            add(len(line) + 2)
            if size == 0:
                break
            self.copy_exact(dst, size + 2, add)
        while trailer := self.line():
            dst.sendall(trailer + b"\r\n")
            add(len(trailer) + 2)
        dst.sendall(b"\r\n")
        add(2)


def _pump(src: socket.socket, dst: socket.socket, add: Adder) -> list[str]:
    """Relay ``src`` to ``dst`` until EOF; return the error that ended it, if any."""
    try:
        _splice_all(src, dst, add)
    except OSError as exc:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [exc.strerror or str(exc)]
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
    return []


def _splice_all(src: socket.socket, dst: socket.socket, add: Adder) -> None:
    """Move bytes socket -> pipe -> socket in the kernel (copy where unsupported)."""
    if not hasattr(os, "splice"):
        _copy_all(src, dst, add)
        return
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, _CHUNK)
        while moved := os.splice(src.fileno(), write_end, _CHUNK):
            while moved:
                sent = os.splice(read_end, dst.fileno(), moved)
                moved -= sent
                add(sent)
    finally:
        os.close(read_end)
        os.close(write_end)


def _copy_all(src: socket.socket, dst: socket.socket, add: Adder) -> None:
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    while count := src.recv_into(buffer):
        dst.sendall(view[:count])
        add(count)


def _answer(sock: socket.socket, refusal: _Refusal) -> None:
    """Tell the program why, in the status line, a header and the body."""
    rule = f" (rule {refusal.rule})" if refusal.rule else ""
    body = f"guard: {refusal.text}{rule}\n".encode()
    phrase = refusal.phrase
    if refusal.status == 403:  # noqa: PLR2004 - the phrase is what tools print
        phrase = f"Forbidden by guard rule {refusal.rule}"
    phrase = re.sub(r"[^\x20-\x7e]", "?", phrase)
    lines = [
        f"HTTP/1.1 {refusal.status} {phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if refusal.rule:
        lines.append("X-Guard-Rule: " + re.sub(r"[^\x21-\x7e]", "?", refusal.rule))
    with contextlib.suppress(OSError):
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
