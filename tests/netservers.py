"""Loopback HTTP and TLS servers the online tests start (and stop).

``GET /bytes/N`` answers N bytes; ``GET /slow/N`` answers N bytes slowly
(64 KiB every 50 ms, for cutting a transfer in the middle);
``GET /redirect/URL`` answers 302 to URL; ``POST /echo`` answers the body
it got. The TLS server uses a self-signed certificate for
``localhost`` and ``127.0.0.1`` made with openssl in the test's directory.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

__all__ = ["LoopbackServer", "free_port", "have_tools", "make_certificate"]

_BLOCK = b"x" * 65536


def have_tools() -> str | None:
    """Why the online tests cannot run here, or None."""
    for tool in ("curl", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    return None


def free_port() -> int:
    """A port nothing listens on at the moment (for refusal tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        kind, _, size = self.path.strip("/").partition("/")
        count = int(size) if size.isdigit() else 2
        self.send_response(200)
        self.send_header("Content-Length", str(count))
        self.end_headers()
        slow = kind == "slow"
        while count > 0:
            piece = _BLOCK[: min(count, len(_BLOCK))]
            try:
                self.wfile.write(piece)
            except OSError:
                return
            count -= len(piece)
            if slow:
                time.sleep(0.05)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else self._chunked()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return body


class LoopbackServer:
    """A threaded HTTP(S) server on 127.0.0.1; a context manager."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(certificate[0]), str(certificate[1]))
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True
            )
        self.port = int(self.server.server_address[1])
        self.scheme = "https" if certificate else "http"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/bytes/2", host: str = "127.0.0.1") -> str:
        """A URL on this server."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost / 127.0.0.1."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    with contextlib.suppress(FileNotFoundError):
        cert.unlink()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
