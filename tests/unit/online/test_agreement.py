"""The classifier agrees with the egress proxy on the hosts it can see."""

from __future__ import annotations

from pathlib import Path

import pytest

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.execute import block_message
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy
from statetrace_guard.result import verdict_json

OPT_IN = {"STATETRACE_AGENT_ALLOW_NET": "1"}


def judge(argv, level=Level.L3, env=OPT_IN):
    place = make_place(Path("/tmp"), Path("/tmp"), Path("/tmp/Logs"), None, env)
    return evaluate(argv, level, load_policy(None), place).verdict


class TestHosts:
    def test_allowed_hosts_are_listed(self):
        """URLs on allowed hosts: network, with the hosts and their rules."""
        verdict = judge(("curl", "-o", "x.zip", "https://api.github.com/x"))
        assert verdict.allowed
        (command,) = verdict_json(verdict)["commands"]
        assert command["hosts"] == [
            {"host": "api.github.com", "allowed": True, "rule": "github-subdomains"}
        ]

    @pytest.mark.parametrize(
        "url",
        [
            "https://evilgithub.com/x",
            "https://github.com.evil.example/x",
            "https://169.254.169.254/latest/meta-data",
            "https://127.0.0.1:8000/",
        ],
    )
    def test_refused_hosts_block(self, url):
        """A host the proxy would refuse blocks the command at L3 with opt-in."""
        verdict = judge(("curl", url))
        assert not verdict.allowed
        assert verdict.host_block is not None
        assert verdict.host_block.rule in verdict.rules
        message = block_message(verdict)
        assert f"(rule {verdict.host_block.rule})" in message
        assert "(network):" in message

    def test_level_still_speaks_first(self):
        """Below L3 the level is what blocks, and the message says so."""
        verdict = judge(("curl", "https://evilgithub.com/"), level=Level.L1)
        assert verdict.host_block is None
        assert "needs L3" in block_message(verdict)

    def test_unseen_hosts_are_the_proxys(self):
        """No URL with a scheme: nothing for the classifier to judge by host."""
        verdict = judge(("curl", "-o", "x.bin", "evil.example"))
        assert verdict.allowed
        assert all(command.hosts == () for command in verdict.commands)

    def test_every_url_counts(self):
        """One refused host among allowed ones blocks the whole command."""
        verdict = judge(
            ("bash", "-c", "curl https://pypi.org/simple/ && curl https://x.example/")
        )
        assert not verdict.allowed
        assert verdict.host_block is not None
        assert verdict.host_block.host == "x.example"
