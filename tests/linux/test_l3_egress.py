"""L3 egress end to end: the program's only way out is the guard's proxy (issue 18).

Servers on the host's 127.0.0.1 (a plain HTTP one and a TLS one with a
certificate made here); a managed session escalated to L3, approved for the
HTTP server's port only; the operator's opt-in set. The program runs in its
own network namespace: its 127.0.0.1 is not the host's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from netservers import LoopbackServer, have_tools, make_certificate

from statetrace_guard.daemon import protocol
from statetrace_guard.sandbox.linux import LinuxBackend

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
    pytest.mark.skipif(have_tools() is not None, reason=str(have_tools())),
    pytest.mark.skipif(
        sys.platform.startswith("linux") and not LinuxBackend().probe().netns,
        reason="no network namespaces here",
    ),
]

POLICY = """extends = "builtin:statetrace"
name = "egress-test"
[[network]]
id = "loopback-servers"
host = "{host}"
schemes = ["https", "http"]
"""
OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1"}
PROBE = """
import json, os, socket, urllib.request
for name in ("NO_PROXY", "no_proxy"):  # the servers are on the host's loopback
    os.environ.pop(name, None)
out = {}
def attempt(name, action):
    try:
        out[name] = ["ok", repr(action())]
    except Exception as exc:
        out[name] = ["error", f"{type(exc).__name__}: {exc}"]
def raw(host, port):
    with socket.create_connection((host, port), timeout=5):
        return "connected"
attempt("raw_host_server", lambda: raw("127.0.0.1", int(os.environ["HTTP_PORT"])))
attempt("raw_outside", lambda: raw("192.0.2.1", 80))
attempt("resolve", lambda: socket.getaddrinfo("pypi.org", 443))
attempt("via_proxy_refused", lambda: urllib.request.urlopen(os.environ["TLS_URL"], timeout=20).status)
def test_probe():
    with open("probe.json", "w") as handle:
        json.dump(out, handle)
"""


def records(workspace: Path, folder: str, pattern: str) -> list[dict]:
    found = []
    for path in sorted((workspace / "Logs" / folder).glob(pattern)):
        lines = path.read_text().splitlines()
        found.extend(json.loads(line) for line in lines if line.strip())
    return found


def netops(workspace: Path) -> list[dict]:
    return [r for r in records(workspace, "NetOps", "*.json") if r["event"] == "netops"]


def sessions(workspace: Path) -> list[dict]:
    return records(workspace, "Sessions", "*.jsonl")


class Online:
    """A workspace at L3 (approved for one host:port) with the opt-in."""

    def __init__(self, guard, workspace: Path, http, tls) -> None:
        self.guard, self.workspace, self.http, self.tls = guard, workspace, http, tls
        (workspace / "guard.toml").write_text(POLICY.format(host="127.0.0.1"))
        (workspace / "docs" / "plans").mkdir(parents=True)
        (workspace / "docs" / "plans" / "PlanA.md").write_text("# Plan A\n")
        started = guard(
            "session", "start", "--task", "ST-N-001", "--plan", "docs/plans/PlanA.md",
            "--level", "L1",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        self.session = started.stdout.decode().split()[0]
        asked = guard(
            "run", "--session", self.session, "--",
            "guard", "escalate", "--to", "L3", "--reason", "fetch test data",
        )  # fmt: skip
        self.request = asked.stderr.decode().split("requested: ")[1].split()[0]
        approved = guard(
            "approve", self.request, "--hosts", f"127.0.0.1:{http.port}",
            "--expires", "1h",
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr

    def run(self, *argv: str, env: dict[str, str] | None = None):
        return self.guard(
            "run", "--session", self.session, "--level", "L3", "--", *argv,
            env={**OPT_IN, **(env or {})}, timeout=120,
        )  # fmt: skip


@pytest.fixture
def servers(tmp_path):
    with (
        LoopbackServer() as http,
        LoopbackServer(make_certificate(tmp_path)) as tls,
    ):
        yield http, tls


@pytest.fixture
def online(guard, workspace, servers):
    return Online(guard, workspace, *servers)


def curl(*args: str) -> tuple[str, ...]:
    # --noproxy '' overrides NO_PROXY (loopback stays inside the namespace).
    return ("curl", "-sS", "--noproxy", "", "--max-time", "60", *args)


class TestThroughTheProxy:
    def test_approved_server_is_reached_and_recorded(self, online):
        """curl through the proxy reaches the approved server; NetOps has the figures."""
        url = online.http.url("/bytes/200000")
        done = online.run(*curl("-o", "/dev/null", "-w", "%{http_code}", url))
        assert (done.returncode, done.stdout) == (0, b"200"), done.stderr
        (line,) = [n for n in netops(online.workspace) if n["Action"] == "request"]
        assert line["Arguments"]["Decision"] == "allow"
        assert line["Arguments"]["Rule"] == "loopback-servers"
        assert line["Arguments"]["BytesDown"] > 200000
        assert line["Result"]["DurationMs"] is not None
        assert line["Result"]["Status"] == "succeeded"
        assert line["Program"] == "curl"
        started = [
            r for r in sessions(online.workspace) if r["event"] == "command.started"
        ]
        assert started[-1]["enforcement"]["network"] == "proxy"
        shown = online.guard("log", "--effect", "network", "--wide")
        assert f"GET {url} allow (loopback-servers) succeeded" in shown.stdout.decode()
        assert online.guard("verify").returncode == 0

    def test_the_other_server_is_refused_by_the_approval(self, online):
        """A URL the classifier cannot see: the proxy refuses it, naming the rule."""
        (online.workspace / "probe_test.py").write_text(PROBE)
        env = {"HTTP_PORT": str(online.http.port), "TLS_URL": online.tls.url()}
        done = online.run(
            "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "probe_test.py",
            env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        probe = json.loads((online.workspace / "probe.json").read_text())
        rule = f"approval:{online.request}"
        assert probe["via_proxy_refused"][0] == "error"
        assert f"Forbidden by guard rule {rule}" in probe["via_proxy_refused"][1]
        # Nothing else gets out: the host's server is not on this loopback,
        # and there is no route anywhere.
        assert "ConnectionRefusedError" in probe["raw_host_server"][1]
        assert probe["raw_outside"][0] == "error"
        blocked = [n for n in netops(online.workspace) if n["Action"] == "connect"]
        assert blocked[-1]["Arguments"]["Rule"] == rule
        assert blocked[-1]["Result"]["Status"] == "blocked"

    def test_noproxy_gets_nothing(self, online):
        """Bypassing the proxy reaches nothing: the namespace has no way out."""
        done = online.run("curl", "-sS", "--noproxy", "*", online.http.url())
        assert done.returncode == 7  # could not connect
        assert not [n for n in netops(online.workspace) if n["Action"] == "request"]

    def test_classifier_refuses_what_it_sees(self, online):
        """The TLS server's URL, visible in argv: refused before anything runs."""
        done = online.run(*curl("-k", online.tls.url()))
        assert done.returncode == 126
        assert f"approval {online.request} does not cover" in done.stderr.decode()


def test_name_resolving_to_a_refused_address(guard, workspace, servers):
    """An entry allows localhost by name; it resolves to loopback: refused."""
    http, _ = servers
    (workspace / "guard.toml").write_text(POLICY.format(host="localhost"))
    done = guard(
        "run", "--level", "L3", "--", *curl(http.url("/bytes/10", host="localhost")),
        env=OPT_IN, timeout=120,
    )  # fmt: skip
    assert b"a loopback address that no [[network]] entry names" in done.stdout
    assert b"(rule network:address)" in done.stdout
    (line,) = [n for n in netops(workspace) if n["Action"] == "request"]
    assert (line["Arguments"]["Rule"], line["Result"]["Status"]) == (
        "network:address",
        "blocked",
    )


def test_proxy_killed_mid_transfer(guard, workspace, servers):
    """The program sees a failed transfer, the record says why, nothing hangs."""
    http, _ = servers
    (workspace / "guard.toml").write_text(POLICY.format(host="127.0.0.1"))
    env = {**os.environ, **OPT_IN}
    argv = [sys.executable, "-m", "statetrace_guard", "run", "--level", "L3", "--"]
    started = time.monotonic()
    with subprocess.Popen(
        [*argv, *curl("-o", "/dev/null", http.url("/slow/50000000"))],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as running:
        proxy = _wait_for_proxy(running.pid)
        time.sleep(1.0)  # mid-transfer: the body takes a minute
        proxy.send_signal(signal.SIGKILL)
        _, stderr = running.communicate(timeout=60)
    assert running.returncode not in (0, 125, 126)
    assert time.monotonic() - started < 60
    assert b"the proxy was killed by signal 9" in stderr
    failed = [r for r in sessions(workspace) if r["event"] == "network.proxy"]
    assert failed[0]["reasons"] == ["the proxy was killed by signal 9"]
    (line,) = [n for n in netops(workspace) if n["Action"] == "proxy"]
    assert line["Result"]["Status"] == "failed"
    finished = [r for r in sessions(workspace) if r["event"] == "command.finished"]
    assert finished[-1]["egress_error"] == "the proxy was killed by signal 9"


def _wait_for_proxy(guard_pid: int) -> psutil.Process:
    """The guard's child that is not the program (once curl runs): the proxy."""
    deadline = time.monotonic() + 60
    guard = psutil.Process(guard_pid)
    while time.monotonic() < deadline:
        try:
            tree = guard.children(recursive=True)
            if any(p.name() == "curl" for p in tree):
                return next(p for p in guard.children() if p.name() != "curl")
        except (psutil.Error, StopIteration):
            pass
        time.sleep(0.05)
    raise AssertionError("no proxy process appeared")


@pytest.fixture
def daemon_env(monkeypatch):
    """Turn the resident helper on for this test; end it afterwards."""
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON", "on")
    monkeypatch.setenv("STATETRACE_GUARD_DAEMON_IDLE", "30")
    yield
    pid = _ping()
    if pid:
        os.kill(pid, signal.SIGKILL)


def _ping() -> int | None:
    """The resident helper's pid when one answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(protocol.socket_path())
            protocol.send_message(sock, {"op": "ping"})
            return int(protocol.recv_message(sock)["pid"])
    except (OSError, protocol.ProtocolError):
        return None


@pytest.mark.usefixtures("daemon_env")
def test_through_the_resident_helper(online):
    """The helper's supervisor starts the proxy the same way."""
    online.guard("run", "--level", "L0", "--", "true")
    online.guard("run", "--level", "L0", "--", "true")
    deadline = time.monotonic() + 30
    while _ping() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    done = online.run(*curl("-o", "/dev/null", "-w", "%{http_code}", online.http.url()))
    assert (done.returncode, done.stdout) == (0, b"200"), done.stderr
    started = [r for r in sessions(online.workspace) if r["event"] == "command.started"]
    assert started[-1]["extra"]["via"] == "daemon"
    (line,) = [n for n in netops(online.workspace) if n["Action"] == "request"]
    assert line["Result"]["Status"] == "succeeded"
