"""The effective allow-list: policy entries, approval narrowing, addresses."""

from __future__ import annotations

import ipaddress

import pytest

from statetrace_guard.errors import PolicyError
from statetrace_guard.online.egress import (
    NO_RULE,
    Egress,
    Request,
    egress_from_wire,
    parse_example,
)
from statetrace_guard.online.hosts import parse_pattern
from statetrace_guard.policy import load_policy, load_policy_bytes

POLICY = b"""
name = "t"
[[network]]
id = "gh"
host = "github.com"
ports = [443]
[[network]]
id = "gh-sub"
host = "*.github.com"
[[network]]
id = "evil"
host = "evil.github.com"
level = "never"
[[network]]
id = "mirror"
host = "mirror.internal"
methods = ["GET", "HEAD"]
schemes = ["http"]
[[network]]
id = "lan"
host = "10.1.2.0/24"
"""


def egress(**kwargs) -> Egress:
    return Egress(load_policy_bytes(POLICY, "t").network, **kwargs)


def tunnel(host: str, port: int = 443) -> Request:
    return Request(host, port, None, "https")


class TestJudge:
    @pytest.mark.parametrize(
        ("request_", "allowed", "rule"),
        [
            (tunnel("github.com"), True, "gh"),
            (tunnel("github.com", 22), False, "gh"),
            (tunnel("api.github.com", 8443), True, "gh-sub"),
            (tunnel("evil.github.com"), False, "evil"),
            (tunnel("evilgithub.com"), False, NO_RULE),
            (Request("mirror.internal", 80, "GET", "http"), True, "mirror"),
            (Request("mirror.internal", 80, "POST", "http"), False, "mirror"),
            (tunnel("mirror.internal"), False, "mirror"),
            (Request("github.com", 443, "GET", "http"), False, "gh"),
            (tunnel("10.1.2.3", 22), True, "lan"),
        ],
    )
    def test_verdicts(self, request_, allowed, rule):
        """Host, port, method and scheme decide; a refusal wins over an allowance."""
        verdict = egress().judge(request_)
        assert (verdict.allowed, verdict.rule) == (allowed, rule)

    def test_reason_names_what_is_allowed(self):
        """A near miss says what the entry does allow."""
        verdict = egress().judge(Request("mirror.internal", 80, "POST", "http"))
        assert "mirror allows GET, HEAD only" in verdict.reason

    def test_approval_narrows(self):
        """An approval's hosts narrow the policy; never widen it."""
        narrowed = egress(
            approval_id="req-1",
            approval_hosts=(parse_pattern("api.github.com:443", with_port=True),),
        )
        assert narrowed.judge(tunnel("api.github.com")).allowed
        blocked = narrowed.judge(tunnel("github.com"))
        assert (blocked.allowed, blocked.rule) == (False, "approval:req-1")
        assert "covers only api.github.com:443" in blocked.reason
        assert not narrowed.judge(tunnel("api.github.com", 8443)).allowed
        wider = egress(
            approval_id="req-2", approval_hosts=(parse_pattern("evilgithub.com"),)
        )
        assert wider.judge(tunnel("evilgithub.com")).rule == NO_RULE

    def test_wire_round_trip(self):
        """The proxy process gets the same allow-list."""
        original = egress(
            approval_id="req-1",
            approval_hosts=(parse_pattern("[::1]:80", with_port=True),),
        )
        assert egress_from_wire(original.to_wire()) == original


class TestAddresses:
    def addresses(self, *texts):
        return [ipaddress.ip_address(text) for text in texts]

    def test_public_addresses_pass(self):
        """A name resolving to public addresses is fine."""
        assert (
            egress().address_refusal("github.com", self.addresses("140.82.1.1")) is None
        )

    def test_rebinding_is_refused(self):
        """A name resolving to a loopback or metadata address is refused."""
        refusal = egress().address_refusal(
            "api.github.com", self.addresses("140.82.1.1", "169.254.169.254")
        )
        assert refusal is not None
        assert refusal.rule == "network:address"
        assert "169.254.169.254, a cloud metadata address" in refusal.reason

    def test_named_private_address_passes(self):
        """An entry naming the network lets a private address through."""
        assert egress().address_refusal("x", self.addresses("10.1.2.7")) is None
        assert egress().address_refusal("x", self.addresses("10.1.3.7")) is not None


class TestPolicySection:
    def test_builtin_entries(self):
        """The built-in policy allows the package registries it needs, over https."""
        rules = {rule.id: rule for rule in load_policy(None).network}
        assert rules["pypi"].pattern.matches("pypi.org")
        assert rules["github-subdomains"].pattern.matches("api.github.com")
        assert not rules["github"].pattern.matches("evilgithub.com")

    @pytest.mark.parametrize(
        ("entry", "field_error"),
        [
            ('host = "git*.com"', "wildcard"),
            ('host = "a.com"\nports = [0]', "greater than or equal"),
            ('host = "a.com"\nmethods = ["get"]', "pattern"),
            ('host = "a.com"\nlevel = "L2"', "L3"),
            ('host = "a.com"\nmatch = ["https://b.com/"]', "is not matched"),
            ('host = "*.a.com"\nnot_match = ["https://x.a.com/"]', "is matched"),
            ('host = "a.com"\nmatch = ["http://a.com/"]', "is not matched"),
            ('host = "a.com"\nbogus = 1', "Extra inputs"),
        ],
    )
    def test_rejects_bad_entries(self, entry, field_error):
        """Bad patterns, ports, methods, levels and failing examples are errors."""
        raw = f'name = "t"\n[[network]]\n{entry}\n'.encode()
        with pytest.raises(PolicyError, match=field_error):
            load_policy_bytes(raw, "t.toml")

    def test_under_extends(self):
        """Entries of an extending policy are appended; a refusal there wins."""
        raw = (
            b'extends = "builtin:statetrace"\nname = "mine"\n'
            b'[[network]]\nid = "mirror"\nhost = "mirror.example"\n'
            b'[[network]]\nid = "no-raw"\nhost = "*.githubusercontent.com"\n'
            b'level = "never"\n'
        )
        policy = load_policy_bytes(raw, "mine.toml")
        ids = [rule.id for rule in policy.network]
        assert ids[: len(load_policy(None).network)] == [
            rule.id for rule in load_policy(None).network
        ]
        assert ids[-2:] == ["mirror", "no-raw"]
        egress = Egress(policy.network)
        assert egress.judge(tunnel("mirror.example")).allowed
        assert egress.judge(tunnel("pypi.org")).allowed
        refused = egress.judge(tunnel("objects.githubusercontent.com"))
        assert (refused.allowed, refused.rule) == (False, "no-raw")

    def test_extends_cannot_reuse_an_id(self):
        """An extending policy's entry may not take a built-in entry's id."""
        raw = b'extends = "builtin:statetrace"\nname = "m"\n[[network]]\nid = "pypi"\nhost = "x.example"\n'
        with pytest.raises(PolicyError, match="duplicate"):
            load_policy_bytes(raw, "m.toml")

    def test_duplicate_ids(self):
        """Two entries for one host need ids of their own."""
        raw = b'name = "t"\n[[network]]\nhost = "a.com"\n[[network]]\nhost = "A.com."\n'
        with pytest.raises(PolicyError, match="duplicate"):
            load_policy_bytes(raw, "t.toml")

    def test_never_examples(self):
        """A refusal's examples say which hosts it refuses."""
        raw = (
            b'name = "t"\n[[network]]\nhost = "*.evil.example"\nlevel = "never"\n'
            b'match = ["https://a.evil.example/"]\nnot_match = ["https://evil.example/"]\n'
        )
        assert load_policy_bytes(raw, "t.toml").network[0].never

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("https://h.example/p", Request("h.example", 443, None, "https")),
            ("GET https://h.example/p", Request("h.example", 443, "GET", "https")),
            ("http://h.example:8080/", Request("h.example", 8080, "GET", "http")),
            ("POST http://h.example/", Request("h.example", 80, "POST", "http")),
            ("h.example:22", Request("h.example", 22, None, "https")),
        ],
    )
    def test_examples(self, text, expected):
        """Examples read as tunnels, plain requests or the guard's own GETs."""
        assert parse_example(text) == expected
