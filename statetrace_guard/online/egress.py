"""The effective allow-list and its verdict on one connection (pure).

The policy's ``[[network]]`` entries say which hosts, ports, methods and
schemes an L3 program may reach; the approval in force may narrow that to
its ``--hosts``. :class:`Egress` is the two together, and
:meth:`Egress.judge` answers for one request: allowed by which entry, or
blocked by which entry (or ``network:no-rule``, ``approval:<id>``) and why.
:meth:`Egress.address_refusal` is the second question, asked after the
proxy resolved the name itself: an address that is not globally routable is
refused unless an entry names it (so a name that resolves to one, a DNS
rebinding, is refused too).

An :class:`Egress` travels to the proxy process as plain values
(:meth:`Egress.to_wire`, :func:`egress_from_wire`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statetrace_guard.online.hosts import (
    Address,
    HostPattern,
    normalize_host,
    parse_address,
    parse_pattern,
    refused_kind,
)

__all__ = [
    "NO_RULE",
    "Egress",
    "EgressVerdict",
    "NetRule",
    "Request",
    "egress_from_wire",
    "parse_example",
]

NO_RULE = "network:no-rule"
_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class NetRule:
    """One ``[[network]]`` entry ready for matching.

    Attributes:
        id: names the entry in records and in the proxy's refusals.
        pattern: the host pattern.
        ports: the ports it allows; empty for any.
        methods: plain-HTTP methods it allows (upper case); empty for any.
            A CONNECT tunnel (TLS: the method is not visible) needs an
            empty set or ``CONNECT`` in it.
        schemes: ``https`` and/or ``http``; plain-HTTP forwarding and
            ``guard fetch`` of an ``http://`` URL need ``http``.
        never: a refusal: whatever else allows the host, it is blocked.
        description: why the entry exists.
    """

    id: str
    pattern: HostPattern
    ports: frozenset[int] = frozenset()
    methods: frozenset[str] = frozenset()
    schemes: frozenset[str] = frozenset({"https"})
    never: bool = False
    description: str = ""

    def misfit(self, request: Request) -> str | None:
        """What about ``request`` (its host aside) this entry does not allow."""
        if self.ports and request.port not in self.ports:
            return "port " + ", ".join(str(port) for port in sorted(self.ports))
        if request.scheme not in self.schemes:
            return ", ".join(sorted(self.schemes))
        method = request.method or "CONNECT"
        if self.methods and method not in self.methods:
            return ", ".join(sorted(self.methods))
        return None

    def admits(self, request: Request) -> bool:
        """Whether this entry alone allows ``request`` (a refusal never does)."""
        return (
            not self.never
            and self.pattern.matches(request.host)
            and self.misfit(request) is None
        )

    def to_wire(self) -> dict[str, Any]:
        """Plain values for another process."""
        return {
            "id": self.id,
            "host": self.pattern.text,
            "ports": sorted(self.ports),
            "methods": sorted(self.methods),
            "schemes": sorted(self.schemes),
            "never": self.never,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """What one connection asks for.

    Attributes:
        host: the normalised host name or IP literal.
        port: the port.
        method: the HTTP method; None for a CONNECT tunnel.
        scheme: ``http`` for plain forwarding, ``https`` for a tunnel.
    """

    host: str
    port: int
    method: str | None
    scheme: str

    @property
    def target(self) -> str:
        """``host:port`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EgressVerdict:
    """Allowed or blocked, the entry that decided, and why."""

    allowed: bool
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Egress:
    """The policy's entries narrowed by the approval in force."""

    rules: tuple[NetRule, ...]
    approval_id: str | None = None
    approval_hosts: tuple[HostPattern, ...] = ()

    def judge(self, request: Request) -> EgressVerdict:
        """Decide one request by host, port, method and scheme."""
        by_host = [rule for rule in self.rules if rule.pattern.matches(request.host)]
        refusal = next((rule for rule in by_host if rule.never), None)
        if refusal is not None:
            return EgressVerdict(
                allowed=False,
                rule=refusal.id,
                reason=f"{request.host} is refused by [[network]] {refusal.id}",
            )
        verdict = _first_fit(by_host, request)
        if verdict.allowed and self.approval_hosts:
            return self._narrowed(request, verdict)
        return verdict

    def _narrowed(self, request: Request, verdict: EgressVerdict) -> EgressVerdict:
        if any(p.matches(request.host, request.port) for p in self.approval_hosts):
            return verdict
        covered = ", ".join(p.display for p in self.approval_hosts)
        return EgressVerdict(
            allowed=False,
            rule=f"approval:{self.approval_id}",
            reason=f"approval {self.approval_id} covers only {covered}, "
            f"not {request.target}",
        )

    def address_refusal(
        self, host: str, addresses: Iterable[Address]
    ) -> EgressVerdict | None:
        """Refuse when any address ``host`` resolved to is refused; else None."""
        for address in addresses:
            named = [r for r in self.rules if r.pattern.names_address(address)]
            never = next((rule for rule in named if rule.never), None)
            if never is not None:
                return EgressVerdict(
                    allowed=False,
                    rule=never.id,
                    reason=f"{host} ({address}) is refused by {never.id}",
                )
            kind = refused_kind(address)
            if kind is not None and not named:
                what = (
                    host if host == str(address) else f"{host} resolves to {address},"
                )
                return EgressVerdict(
                    allowed=False,
                    rule="network:address",
                    reason=f"{what} a {kind} address that no [[network]] entry names",
                )
        return None

    def host_verdict(self, host: str) -> EgressVerdict:
        """Decide by host alone, as the classifier can from a URL it sees.

        Ports, methods and what a name resolves to are the proxy's to judge;
        an IP literal is refused here as there unless an entry names it.
        """
        matching = [rule for rule in self.rules if rule.pattern.matches(host)]
        refusal = next((rule for rule in matching if rule.never), None)
        if refusal is not None:
            return EgressVerdict(
                allowed=False,
                rule=refusal.id,
                reason=f"{host} is refused by [[network]] {refusal.id}",
            )
        address = parse_address(host)
        if address is not None:
            refused = self.address_refusal(host, [address])
            if refused is not None:
                return refused
        if not matching:
            return EgressVerdict(
                allowed=False,
                rule=NO_RULE,
                reason=f"no [[network]] entry allows {host}",
            )
        first = matching[0].id
        return EgressVerdict(allowed=True, rule=first, reason=f"allowed by {first}")

    def to_wire(self) -> dict[str, Any]:
        """Plain values for the proxy process."""
        return {
            "rules": [rule.to_wire() for rule in self.rules],
            "approval_id": self.approval_id,
            "approval_hosts": [p.display for p in self.approval_hosts],
        }


def _first_fit(rules: Sequence[NetRule], request: Request) -> EgressVerdict:
    """The first entry that allows the request, else why the closest did not."""
    if not rules:
        return EgressVerdict(
            allowed=False,
            rule=NO_RULE,
            reason=f"no [[network]] entry allows {request.host}",
        )
    misfit = ""
    for rule in rules:
        why = rule.misfit(request)
        if why is None:
            return EgressVerdict(
                allowed=True, rule=rule.id, reason=f"allowed by {rule.id}"
            )
        misfit = misfit or f"{rule.id} allows {why} only"
    return EgressVerdict(
        allowed=False,
        rule=rules[0].id,
        reason=f"{request.target} ({_what(request)}) is not allowed: {misfit}",
    )


def _what(request: Request) -> str:
    return f"{request.method} over {request.scheme}" if request.method else "tunnel"


def _rule_from_wire(data: Mapping[str, Any]) -> NetRule:
    return NetRule(
        id=str(data["id"]),
        pattern=parse_pattern(str(data["host"])),
        ports=frozenset(int(port) for port in data["ports"]),
        methods=frozenset(str(method) for method in data["methods"]),
        schemes=frozenset(str(scheme) for scheme in data["schemes"]),
        never=bool(data["never"]),
        description=str(data.get("description", "")),
    )


def egress_from_wire(data: Mapping[str, Any]) -> Egress:
    """Rebuild an :class:`Egress` from :meth:`Egress.to_wire`."""
    return Egress(
        rules=tuple(_rule_from_wire(rule) for rule in data["rules"]),
        approval_id=data.get("approval_id"),
        approval_hosts=tuple(
            parse_pattern(text, with_port=True) for text in data["approval_hosts"]
        ),
    )


def parse_example(text: str) -> Request:
    """Read a ``[[network]]`` example: ``[METHOD] URL`` or ``host[:port]``.

    ``https://h/p`` is a tunnel to h:443, ``GET http://h/p`` a plain GET,
    ``GET https://h/p`` a GET the guard makes itself (``guard fetch``),
    ``h:22`` a tunnel to port 22.

    Raises:
        ValueError: not an example of that form.
    """
    from urllib.parse import urlsplit  # noqa: PLC0415 - policy loading only

    from statetrace_guard.online.hosts import split_host_port  # noqa: PLC0415

    method, _, rest = text.strip().rpartition(" ")
    if "://" not in rest:
        host, port = split_host_port(rest)
        return Request(normalize_host(host), port or 443, method or None, "https")
    parts = urlsplit(rest)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        msg = f"not an http(s) URL: {rest!r}"
        raise ValueError(msg)
    port = parts.port or _DEFAULT_PORTS[scheme]
    if scheme == "https":  # a tunnel, or a request the guard makes (fetch)
        return Request(normalize_host(parts.hostname), port, method or None, "https")
    return Request(normalize_host(parts.hostname), port, method or "GET", "http")
