"""Host names, host patterns and refused addresses: one implementation.

Every place that asks "is this host allowed?" (the proxy, ``guard fetch``,
the classifier, the approval check) normalises with :func:`normalize_host`
and matches with :meth:`HostPattern.matches`, so they cannot disagree.

A host is normalised to lower case, without one trailing dot, with Unicode
labels in their IDNA (``xn--``) form and IP literals in canonical form, so
``GitHub.COM.``, ``github.com`` and ``github`` U+3002 ``com`` are one host.

Patterns: ``github.com`` (that host only), ``*.github.com`` (any name below
it, at a dot boundary: never ``github.com`` itself, never
``evilgithub.com``), ``*`` (any host), an IP address or a CIDR network
(``127.0.0.1``, ``10.0.0.0/8``, ``::1``); approvals may add ``:PORT``.

Addresses that are not globally routable (loopback, private, link-local,
shared, reserved, multicast) and the clouds' metadata services are refused
unless a pattern names them (:func:`refused_kind`, :meth:`names_address`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Address",
    "HostPattern",
    "normalize_host",
    "normalized_pattern",
    "parse_address",
    "parse_pattern",
    "refused_kind",
    "split_host_port",
    "url_host_port",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PatternKind = Literal["exact", "suffix", "any", "address"]

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_MAX_NAME = 253
_MAX_PORT = 65535
# Metadata services, some of them globally routable (Azure's wire server).
_METADATA = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ftp": 21, "ssh": 22, "git": 9418}


def parse_address(text: str) -> Address | None:
    """Return ``text`` as an IP address (brackets allowed), or None."""
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return ipaddress.ip_address(inner)
    except ValueError:
        return None


def normalize_host(text: str) -> str:
    """Return the canonical form of a host name or IP literal.

    Raises:
        ValueError: it is not a host name (empty label, bad character,
            too long, a zone id, not encodable with IDNA).
    """
    address = parse_address(text.strip())
    if address is not None:
        return str(address)
    name = text.strip().lower()
    name = name.removesuffix(".") if not name.endswith("..") else name
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            msg = f"not a host name: {text!r} ({exc})"
            raise ValueError(msg) from exc
    labels = name.split(".")
    if len(name) > _MAX_NAME or not all(_LABEL.match(label) for label in labels):
        msg = f"not a host name: {text!r}"
        raise ValueError(msg)
    return name


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.

    A bare IPv6 address (``::1``) has no port.

    Raises:
        ValueError: the port is not a number from 1 to 65535.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            msg = f"not host[:port]: {text!r}"
            raise ValueError(msg)
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None


def url_host_port(url: str) -> tuple[str, int | None] | None:
    """The normalised host and port of a URL or bare ``host[:port]``.

    The port is the URL's, else its scheme's default, else None. None when
    no host can be read (the caller fails closed).
    """
    from urllib.parse import urlsplit  # noqa: PLC0415 - not on the run path

    try:
        if "://" not in url:
            host, port = split_host_port(url.split("/", 1)[0])
            return normalize_host(host), port
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        scheme_port = _DEFAULT_PORTS.get(parts.scheme.lower())
        return normalize_host(parts.hostname), parts.port or scheme_port
    except ValueError:
        return None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= _MAX_PORT:
        msg = f"not a port: {text!r}"
        raise ValueError(msg)
    return int(text)


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One allowed host, family of hosts, or network.

    Attributes:
        text: the pattern in normal form (``*.github.com``, ``10.0.0.0/8``).
        kind: ``exact``, ``suffix`` (``*.``), ``any`` (``*``) or ``address``.
        value: the normalised host, or the suffix without ``*.``.
        network: for ``address`` patterns, the network it covers.
        port: the one port an approval entry allows, None for any.
    """

    text: str
    kind: PatternKind
    value: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host: str, port: int | None = None) -> bool:
        """Whether normalised ``host`` (and ``port`` when given) is covered."""
        if self.port is not None and port is not None and port != self.port:
            return False
        if self.kind == "any":
            return True
        if self.kind == "exact":
            return host == self.value
        if self.kind == "suffix":
            return host.endswith("." + self.value)
        address = parse_address(host)
        return address is not None and self.names_address(address)

    @property
    def display(self) -> str:
        """The pattern with its port: ``a.example:443``, ``[::1]:80``."""
        if self.port is None:
            return self.text
        host = f"[{self.text}]" if ":" in self.text else self.text
        return f"{host}:{self.port}"

    def names_address(self, address: Address) -> bool:
        """Whether this pattern names ``address`` itself (not by a host name)."""
        return self.network is not None and _unmapped(address) in self.network


def parse_pattern(text: str, *, with_port: bool = False) -> HostPattern:
    """Parse a host pattern; ``with_port`` also accepts a ``:PORT`` suffix.

    Raises:
        ValueError: not a pattern this module understands.
    """
    port = None
    if with_port and "/" not in text:
        text, port = split_host_port(text)
    text = text.strip()
    if text == "*":
        return HostPattern("*", "any", "", port=port)
    if text.startswith("*."):
        suffix = normalize_host(text[2:])
        return HostPattern(f"*.{suffix}", "suffix", suffix, port=port)
    if "*" in text:
        msg = f"a wildcard may only lead the pattern (*.example.com): {text!r}"
        raise ValueError(msg)
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            msg = f"not a network: {text!r}"
            raise ValueError(msg) from exc
        return HostPattern(str(network), "address", str(network), network)
    host = normalize_host(text)
    address = parse_address(host)
    if address is None:
        return HostPattern(host, "exact", host, port=port)
    network = ipaddress.ip_network(_unmapped(address))
    return HostPattern(host, "address", host, network, port)


def normalized_pattern(text: str) -> str:
    """An approval's host entry in normal form: ``pattern`` or ``pattern:PORT``.

    Raises:
        ValueError: not a host pattern (the message says why).
    """
    try:
        return parse_pattern(text, with_port=True).display
    except ValueError as error:
        msg = f"not a host pattern (host, *.host, host:port, IP, CIDR): {text!r}"
        raise ValueError(msg) from error


def _unmapped(address: Address) -> Address:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refused_kind(address: Address) -> str | None:
    """Why ``address`` is refused unless a rule names it, or None.

    Returns:
        ``cloud metadata``, ``loopback``, ``link-local``, ``private``,
        ``unspecified``, ``multicast`` or ``not globally routable``.
    """
    address = _unmapped(address)
    if address in _METADATA:
        return "cloud metadata"
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None if address.is_global else "not globally routable"
