"""The proxy as a process: its listener handed over, its records, its death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from netservers import LoopbackServer, free_port, have_tools

from statetrace_guard.audit.verify import verify_file
from statetrace_guard.online.egress import Egress
from statetrace_guard.online.plumbing import (
    proxy_environment,
    send_listener,
    start_proxy,
)
from statetrace_guard.policy import load_policy_bytes

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))

POLICY = b'name = "t"\n[[network]]\nid = "lo"\nhost = "127.0.0.1"\nschemes = ["http"]\n'


def plan(log_dir):
    return {
        "egress": Egress(load_policy_bytes(POLICY, "t").network).to_wire(),
        "command": {
            "session_id": "2026-01-01_session-0001",
            "task_id": "ST-1",
            "task_ids": ["ST-1"],
            "plan_refs": [],
            "level": "L3",
            "pid": os.getpid(),
            "argv": ["curl", "http://127.0.0.1/"],
            "cwd": str(log_dir),
            "policy_sha256": "0" * 64,
            "env": {"STATETRACE_AGENT_ALLOW_NET": "1"},
            "extra": {"program": "curl"},
        },
        "log_dir": str(log_dir),
    }


@pytest.fixture
def running(tmp_path):
    port = free_port()
    proxy = start_proxy(plan(tmp_path / "Logs"))
    send_listener(proxy.channel, port)  # here, as the program's setup would
    proxy.channel = -1
    yield proxy, f"http://127.0.0.1:{port}", tmp_path / "Logs"
    proxy.stop()


def curl(proxy_url, *args):
    return subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-x", proxy_url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(path, count):
    for _ in range(500):
        if path.exists() and len(lines(path)) >= count:
            return lines(path)
        time.sleep(0.02)
    raise AssertionError(f"{path} has fewer than {count} lines")


class TestProxyProcess:
    def test_records_every_connection(self, running):
        """One chained session record and one NetOps line per connection."""
        proxy, url, logs = running
        with LoopbackServer() as http:
            assert curl(url, http.url("/bytes/1000")).returncode == 0
            assert curl(url, "http://blocked.example/").returncode == 0
        session = logs / "Sessions" / "2026-01-01_session-0001.jsonl"
        records = wait_for(session, 3)[1:]
        assert [r["decision"] for r in records] == ["allow", "block"]
        assert records[0]["argv"][0] == "GET"
        assert records[0]["command"] == ["curl", "http://127.0.0.1/"]
        assert records[0]["effects"] == ["network"]
        assert records[0]["connection"]["bytes_down"] > 1000
        assert records[1]["rules"] == ["network:no-rule"]
        (netops,) = (logs / "NetOps").glob("*.json")
        entries = wait_for(netops, 3)[1:]
        assert entries[0]["Action"] == "request"
        assert entries[0]["Program"] == "curl"
        assert entries[0]["Arguments"]["Rule"] == "lo"
        assert entries[0]["Arguments"]["BytesDown"] > 1000
        assert entries[0]["Result"]["Status"] == "succeeded"
        assert entries[1]["Result"]["Status"] == "blocked"
        assert entries[1]["Arguments"]["Host"] == "blocked.example"
        proxy.stop()
        assert verify_file(session).ok
        assert verify_file(netops).ok

    def test_killed_mid_transfer(self, running):
        """A killed proxy fails the transfer at once; stop() says it was killed."""
        proxy, url, _ = running
        with LoopbackServer() as http:
            fetch = subprocess.Popen(
                [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-x",
                    url,
                    http.url("/slow/50000000"),
                ],
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)
            os.kill(proxy.pid, signal.SIGKILL)
            assert fetch.wait(timeout=30) != 0
        assert proxy.stop() == "the proxy was killed by signal 9"

    def test_no_listener_no_proxy(self, tmp_path):
        """A program that never started (its end closed) ends the proxy quietly."""
        proxy = start_proxy(plan(tmp_path))
        proxy.close_channel()
        for _ in range(500):
            if proxy._reap(os.WNOHANG) is not None:
                break
            time.sleep(0.01)
        assert proxy.stop() is None
        assert not (tmp_path / "Sessions").exists()


def test_environment_points_at_the_proxy():
    """Upper- and lower-case proxy variables; loopback goes direct."""
    env = proxy_environment(3128)
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://127.0.0.1:3128"
    assert env["ALL_PROXY"] == env["all_proxy"] == "http://127.0.0.1:3128"
    assert "127.0.0.1" in env["NO_PROXY"].split(",")
