"""The filtering proxy on loopback, with curl as the program (issue 18)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import threading

import pytest
from netservers import LoopbackServer, free_port, have_tools, make_certificate

from statetrace_guard.online.egress import Egress
from statetrace_guard.online.hosts import parse_pattern
from statetrace_guard.online.proxy import ProxyServer, resolve
from statetrace_guard.policy import load_policy_bytes

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))

POLICY = b"""
name = "t"
[[network]]
id = "loopback"
host = "127.0.0.1"
schemes = ["https", "http"]
[[network]]
id = "by-name"
host = "localhost"
schemes = ["https", "http"]
[[network]]
id = "rebind"
host = "rebind.test"
[[network]]
id = "get-only"
host = "127.0.0.2"
methods = ["GET", "HEAD"]
schemes = ["http"]
"""


def rules():
    return load_policy_bytes(POLICY, "t").network


class Proxy:
    """A ProxyServer on a loopback port, served on a thread."""

    def __init__(self, egress: Egress, resolver=resolve) -> None:
        self.records = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.server = ProxyServer(
            self.listener, egress, self.records.append, resolver=resolver
        )
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()

    def curl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["curl", "-sS", "-k", "--max-time", "30", "-x", self.url, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def recorded(self, count: int = 1) -> list:
        """The records, once ``count`` are there (they follow the answer)."""
        for _ in range(500):
            if len(self.records) >= count:
                break
            threading.Event().wait(0.02)
        assert len(self.records) == count
        return self.records

    def close(self) -> None:
        self.server.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def servers(tmp_path):
    with (
        LoopbackServer() as http,
        LoopbackServer(make_certificate(tmp_path)) as tls,
    ):
        yield http, tls


@pytest.fixture
def proxy():
    def rebinding(host: str, port: int):
        if host == "rebind.test":
            return [ipaddress.ip_address("169.254.169.254")]
        return resolve(host, port)

    made = Proxy(Egress(rules()), rebinding)
    yield made
    made.close()


class TestAllowed:
    def test_plain_http_through_the_proxy(self, proxy, servers):
        """A plain GET is forwarded; the record has bytes, duration and the rule."""
        http, _ = servers
        result = proxy.curl(
            "-o", "/dev/null", "-w", "%{http_code}", http.url("/bytes/300000")
        )
        assert (result.returncode, result.stdout) == (0, "200")
        (record,) = proxy.recorded()
        fields = record.as_fields()
        assert fields["status"] == "succeeded"
        assert fields["rule"] == "loopback"
        assert fields["bytes_down"] > 300000
        assert fields["bytes_up"] > 0
        assert fields["duration_ms"] > 0

    def test_tls_tunnel(self, proxy, servers):
        """CONNECT to the TLS server relays the handshake and the body."""
        _, tls = servers
        result = proxy.curl(
            "-o", "/dev/null", "-w", "%{http_code}", tls.url("/bytes/5000")
        )
        assert (result.returncode, result.stdout) == (0, "200")
        (record,) = proxy.recorded()
        assert record.action == "connect"
        assert record.bytes_down > 5000

    def test_bodies_go_up(self, proxy, servers):
        """Content-Length and chunked request bodies reach the server whole."""
        http, _ = servers
        sent = proxy.curl("-d", "hello there", http.url("/echo"))
        assert sent.stdout == "hello there"
        chunked = proxy.curl(
            "-H", "Transfer-Encoding: chunked", "-d", "in chunks", http.url("/echo")
        )
        assert chunked.stdout == "in chunks"


class TestRefused:
    def test_unlisted_host(self, proxy):
        """A host no entry allows gets a 403 naming the rule, before any lookup."""
        result = proxy.curl("https://evil.example/")
        assert result.returncode != 0
        assert "403" in result.stderr
        (record,) = proxy.recorded()
        assert (record.status, record.rule) == ("blocked", "network:no-rule")
        assert record.addresses == ()

    def test_plain_refusal_body_names_the_rule(self, proxy):
        """The agent's tool prints why: the body and a header name the rule."""
        result = proxy.curl("-i", "http://evil.example/")
        assert "403 Forbidden by guard rule network:no-rule" in result.stdout
        assert "X-Guard-Rule: network:no-rule" in result.stdout
        assert "no [[network]] entry allows evil.example" in result.stdout

    def test_name_resolving_to_loopback(self, servers):
        """localhost is allowed by name, but resolves to an address no rule names."""
        http, _ = servers
        by_name = Egress(tuple(r for r in rules() if r.id != "loopback"))
        proxy = Proxy(by_name)
        try:
            result = proxy.curl("-i", http.url("/bytes/2", host="localhost"))
        finally:
            proxy.close()
        assert "rule network:address" in result.stdout
        assert "a loopback address that no [[network]] entry names" in result.stdout
        (record,) = proxy.recorded()
        assert (record.status, record.rule) == ("blocked", "network:address")

    def test_named_address_lets_the_name_through(self, proxy, servers):
        """With an entry naming 127.0.0.1, the name localhost reaches it."""
        http, _ = servers
        assert proxy.curl(http.url("/bytes/2", host="localhost")).stdout == "xx"

    def test_rebinding_to_metadata(self, proxy):
        """A name that resolves to the metadata service is refused."""
        result = proxy.curl("https://rebind.test/")
        assert "403" in result.stderr
        (record,) = proxy.recorded()
        assert "169.254.169.254, a cloud metadata address" in record.reason

    def test_method_not_allowed(self, proxy):
        """A GET-only entry refuses POST; the reason says what it allows."""
        result = proxy.curl("-i", "-d", "x", f"http://127.0.0.2:{free_port()}/")
        assert "get-only allows GET, HEAD only" in result.stdout

    def test_approval_narrows(self, servers):
        """An approval naming one server refuses the other, with its rule."""
        http, tls = servers
        egress = Egress(
            rules(),
            approval_id="req-1",
            approval_hosts=(parse_pattern(f"127.0.0.1:{http.port}", with_port=True),),
        )
        proxy = Proxy(egress)
        try:
            assert proxy.curl(http.url()).returncode == 0
            refused = proxy.curl(tls.url())
            assert refused.returncode != 0
            assert proxy.recorded(2)[-1].rule == "approval:req-1"
        finally:
            proxy.close()

    def test_malformed_request(self, proxy):
        """A request that is not HTTP is answered 400 and recorded."""
        port = int(proxy.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"HELLO there\r\n\r\n")
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400")
        (record,) = proxy.recorded()
        assert record.rule == "network:bad-request"


class TestFailures:
    def test_nothing_listening(self, proxy):
        """An allowed host that refuses the connection is a 502, recorded failed."""
        result = proxy.curl("-i", f"http://127.0.0.1:{free_port()}/")
        assert "502" in result.stdout
        (record,) = proxy.recorded()
        assert record.status == "failed"
        assert "cannot connect" in (record.error or "")

    def test_closed_mid_transfer(self, proxy, servers):
        """Closing the proxy cuts a slow transfer: curl fails, the record says so."""
        http, _ = servers
        started = threading.Event()
        result = {}

        def fetch():
            started.set()
            result["run"] = proxy.curl("-o", "/dev/null", http.url("/slow/20000000"))

        thread = threading.Thread(target=fetch)
        thread.start()
        started.wait()
        for _ in range(200):
            if proxy.server._sockets:
                break
            threading.Event().wait(0.02)
        proxy.close()
        thread.join(60)
        assert not thread.is_alive()
        assert result["run"].returncode != 0
        (record,) = proxy.recorded()
        assert record.status == "failed"
        assert record.bytes_down < 20000000
