"""Host normalisation, pattern matching and refused addresses (issue 18)."""

from __future__ import annotations

import ipaddress

import pytest

from statetrace_guard.online.hosts import (
    normalize_host,
    parse_pattern,
    refused_kind,
    split_host_port,
)

# (pattern, host, matches): the suffix table of issue 18.
SUFFIX_TABLE = [
    ("github.com", "github.com", True),
    ("github.com", "evilgithub.com", False),
    ("github.com", "api.github.com", False),
    ("github.com", "github.com.evil.example", False),
    ("github.com", "GitHub.COM", True),
    ("github.com", "github.com.", True),
    ("github.com.", "github.com", True),
    ("GITHUB.com", "github.com", True),
    ("*.github.com", "api.github.com", True),
    ("*.github.com", "a.b.github.com", True),
    ("*.github.com", "github.com", False),
    ("*.github.com", "evilgithub.com", False),
    ("*.github.com", "api.evilgithub.com", False),
    ("*.github.com", "api.github.com.", True),
    ("*.github.com", "API.GitHub.Com", True),
    ("*.github.com", "github.com.evil.example", False),
    ("*.github.com", "xgithub.com", False),
    # IDNA: a Unicode name and its xn-- form are one host; look-alikes are not.
    ("bücher.example", "xn--bcher-kva.example", True),
    ("xn--bcher-kva.example", "BÜCHER.example", True),
    ("*.bücher.example", "www.xn--bcher-kva.example", True),
    ("github.com", "g\u0131thub.com", False),  # dotless i
    ("github.com", "github\u3002com", True),  # ideographic full stop
    ("github.com", "\uff47\uff49\uff54\uff48\uff55\uff42.com", True),  # fullwidth
    ("*", "anything.example", True),
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("127.0.0.0/8", "127.0.0.2", True),
    ("127.0.0.0/8", "localhost", False),
    ("::1", "[::1]", True),
    ("::1", "0:0:0:0:0:0:0:1", True),
    ("10.0.0.0/8", "::ffff:10.1.2.3", True),
]


class TestSuffixTable:
    @pytest.mark.parametrize(("pattern", "host", "expected"), SUFFIX_TABLE)
    def test_matches(self, pattern, host, expected):
        """A pattern covers exactly the hosts the table says, at dot boundaries."""
        assert parse_pattern(pattern).matches(normalize_host(host)) is expected


class TestNormalize:
    @pytest.mark.parametrize(
        "text",
        ["", ".", "a..b", "exa mple.com", "-bad.com", "bad-.com", "a" * 64 + ".com"],
    )
    def test_rejects_non_hosts(self, text):
        """Empty labels, spaces, edge hyphens and long labels are not host names."""
        with pytest.raises(ValueError, match="not a host name"):
            normalize_host(text)

    def test_canonical_ip_literals(self):
        """IP literals are written one way."""
        assert normalize_host("[0:0::1]") == "::1"
        assert normalize_host("10.0.0.1") == "10.0.0.1"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("github.com:443", ("github.com", 443)),
            ("[::1]:8080", ("::1", 8080)),
            ("::1", ("::1", None)),
            ("host", ("host", None)),
        ],
    )
    def test_split_host_port(self, text, expected):
        """host[:port] and [v6][:port] split; a bare IPv6 address has no port."""
        assert split_host_port(text) == expected

    @pytest.mark.parametrize("text", ["host:0", "host:x", "host:70000", "[::1]x"])
    def test_rejects_bad_ports(self, text):
        """Ports are 1-65535."""
        with pytest.raises(ValueError, match="not"):
            split_host_port(text)


class TestPatterns:
    @pytest.mark.parametrize("text", ["git*.com", "*github.com", "a.*.com", "1.2.3/99"])
    def test_rejects_bad_patterns(self, text):
        """A wildcard only leads a pattern; networks must parse."""
        with pytest.raises(ValueError, match=r"wildcard|not a network"):
            parse_pattern(text)

    def test_port_in_approval_patterns(self):
        """Approval entries may carry one port."""
        pattern = parse_pattern("127.0.0.1:8080", with_port=True)
        assert pattern.matches("127.0.0.1", 8080)
        assert not pattern.matches("127.0.0.1", 8081)
        assert parse_pattern("*.github.com:443", with_port=True).matches(
            "api.github.com", 443
        )


class TestRefusedAddresses:
    @pytest.mark.parametrize(
        ("address", "kind"),
        [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("192.168.0.1", "private"),
            ("172.16.0.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("168.63.129.16", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("100.64.0.1", "not globally routable"),
            ("0.0.0.0", "unspecified"),  # noqa: S104 - an address, not a bind
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("224.0.0.1", "multicast"),
        ],
    )
    def test_refused(self, address, kind):
        """Non-global and metadata addresses are refused, mapped forms too."""
        assert refused_kind(ipaddress.ip_address(address)) == kind

    @pytest.mark.parametrize("address", ["8.8.8.8", "140.82.112.3", "2606:4700::1"])
    def test_global_addresses_pass(self, address):
        """Globally routable addresses are not refused."""
        assert refused_kind(ipaddress.ip_address(address)) is None
