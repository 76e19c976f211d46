"""Handlers for network clients whose arguments need code.

Every network client is ``network`` whatever its arguments (a ``file://``
URL is not worth the risk of misreading one). What the code adds to the
entry's option lists (``specs/posix_net.toml``): the addresses found among
the operands, the files a download names after its URL (``curl -O``,
``wget``), ssh options whose value runs a local command (``-o
ProxyCommand=``), rsync's remote operands and socat's EXEC addresses.
"""

from __future__ import annotations

from statetrace_guard.classify.engine import Judge, Parsed, options_of
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.loopback import is_loopback_url
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    NETWORK,
    WRITE,
    Verdict,
    dynamic,
    network,
)
from statetrace_guard.levels import Effect

__all__ = [
    "download",
    "loopback_server",
    "network_client",
    "rsync",
    "socat",
    "ssh",
    "url_args",
]


def url_args(args: tuple[Word, ...]) -> tuple[str, ...]:
    """Return the arguments that name a remote resource (URL or host)."""
    out = []
    for word in args:
        text = word.text
        if text.startswith("-") or not text:
            continue
        head = text.split("/", 1)[0]
        if "://" in text or "@" in head or "." in head or ":" in head:
            out.append(text)
    return tuple(out)


def network_client(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """A client: network, plus the files its options write, plus config code."""
    # NOTE(net): a word known only at run time (curl $URL, xargs curl) is
    # taken as an address, as ever: the client is network (L3 and the
    # operator's opt-in) whatever it expands to.
    parsed = options_of(entry, args)
    writes = [v for kind, _, v in parsed.options if kind == "write" and v is not None]
    effects = set(NETWORK)
    reasons = [f"{name} talks to the network"]
    risky = ("code", "dynamic", "exec", "shell")
    if any(kind in risky for kind, _, _ in parsed.options):
        effects.add(Effect.DYNAMIC)  # a config can set the output file anywhere
        reasons.append(f"{name} reads a config or option that can do anything")
    if writes:
        effects.add(Effect.WRITE)
    return Verdict(
        frozenset(effects), entry.spec, tuple(reasons), tuple(writes), url_args(args)
    )


def download(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``curl -O``, ``wget URL``: the downloaded file is named after the URL."""
    verdict = network_client(entry, name, args, ctx, judge)
    parsed = options_of(entry, args)
    given = {spelling: value for _, spelling, value in parsed.options}
    dirs = [given.get(o) for o in entry.data.get("output_dir_options", ())]
    folder = next((d.text for d in dirs if d is not None), ".")
    names_after_url = set(entry.data.get("remote_name_flags", ())) & set(given)
    no_file = set(entry.data.get("no_file_flags", ())) & set(given)
    writes = list(verdict.writes)
    if names_after_url or (not entry.data.get("remote_name_flags") and not no_file):
        writes = [w for w in writes if w.text != folder]
        writes.extend(_downloaded(verdict.urls, folder))
    loopback = Effect.DYNAMIC not in verdict.effects and _loopback_only(entry, parsed)
    if not writes and not loopback:
        return verdict
    return Verdict(
        verdict.effects | WRITE if writes else verdict.effects,
        verdict.spec,
        verdict.reasons,
        tuple(writes),
        verdict.urls,
        loopback=loopback,
    )


def _loopback_only(entry: ProgramEntry, parsed: Parsed) -> bool:
    """Every URL names loopback and no option sends the request elsewhere.

    Only for clients whose entry lists ``loopback_refused_options``; a long
    option is refused also by a prefix of one (getopt's abbreviations), an
    option word that may expand to anything (``$OPT``) refuses it all.
    """
    refused = entry.data.get("loopback_refused_options")
    if refused is None or parsed.problems:
        return False
    url_options = entry.data.get("url_options", ())
    targets = list(parsed.operands)
    for _, spelling, value in parsed.options:
        option = spelling.split("=", 1)[0]
        if _refused_option(option, refused):
            return False
        if option in url_options and value is not None:
            targets.append(value)
    return bool(targets) and all(
        word.static and is_loopback_url(word.text) for word in targets
    )


def _refused_option(option: str, refused: tuple[str, ...]) -> bool:
    if option in refused:
        return True
    long = option.startswith("--") and len(option) > 2  # noqa: PLR2004 - "--"
    return long and any(name.startswith(option) for name in refused)


def _downloaded(urls: tuple[str, ...], folder: str) -> list[Word]:
    """The files a download names after its URLs: ``folder/basename``.

    The basename is the last path segment (no query); a URL ending in ``/``
    or naming only a host gives a name chosen by the client, in ``folder``.
    """
    out = []
    for url in urls or ("",):
        path = url.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
        base = path.rsplit("/", 1)[-1] if "/" in path else ""
        out.append(Word(f"{folder}/{base}" if base not in ("", ".", "..") else folder))
    return out


def loopback_server(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """A server: network, loopback traffic when bound to loopback only.

    Bound to every address (the default) it serves the machine's networks
    wherever the kernel does not fence the session.
    """
    verdict = network_client(entry, name, args, ctx, judge)
    parsed = options_of(entry, args)
    binds = [
        value
        for _, spelling, value in parsed.options
        if spelling in entry.data.get("bind_options", ()) and value is not None
    ]
    loopback = (
        not parsed.problems
        and Effect.DYNAMIC not in verdict.effects
        and bool(binds)
        and all(w.static and w.text in _LOOPBACK_BINDS for w in binds)
    )
    if not loopback:
        return verdict
    return Verdict(
        verdict.effects,
        verdict.spec,
        (f"{name} serves loopback only",),
        verdict.writes,
        verdict.urls,
        loopback=True,
    )


_LOOPBACK_BINDS = frozenset({"127.0.0.1", "::1", "localhost"})


def ssh(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """ssh, scp: network; ``-o ProxyCommand=`` and configs run local commands."""
    parsed = options_of(entry, args)
    urls = url_args(args)
    keys = tuple(entry.data.get("command_config_keys", ()))
    joined = " ".join(w.text for w in args).lower()
    runs = any(key in joined for key in keys)
    risky = any(
        kind in ("code", "dynamic", "exec", "shell") for kind, _, _ in parsed.options
    )
    if runs or risky:
        why = f"{name} option runs a local command or reads a config that may"
        return Verdict(NETWORK | DYNAMIC, entry.spec, (why,), urls=urls)
    return network(entry.spec, urls, f"{name} connects to a remote host")


def rsync(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """rsync: local copy writes its destination; a ``host:path`` is network."""
    parsed = options_of(entry, args)
    if parsed.problems or any(
        kind in ("exec", "shell", "code", "dynamic") for kind, _, _ in parsed.options
    ):
        return dynamic(entry.spec, "rsync -e/--rsh or a remote option runs a program")
    writes = [v for kind, _, v in parsed.options if kind == "write" and v is not None]
    remote = [w.text for w in parsed.operands if ":" in w.text.split("/", 1)[0]]
    if remote:
        return Verdict(
            NETWORK | WRITE if writes else NETWORK,
            entry.spec,
            ("rsync to or from a remote host",),
            tuple(writes),
            tuple(remote),
        )
    return Verdict(
        WRITE,
        entry.spec,
        ("rsync copies locally",),
        (*writes, *parsed.operands[-1:]),
    )


def socat(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """socat: network; an ``EXEC:``/``SYSTEM:`` address runs a program."""
    upper = " ".join(w.text for w in args).upper()
    if any(address in upper for address in entry.data.get("exec_addresses", ())):
        return Verdict(NETWORK | DYNAMIC, entry.spec, ("socat EXEC/SYSTEM",))
    if any(not w.static for w in args):
        return Verdict(NETWORK | DYNAMIC, entry.spec, ("socat address not static",))
    return network(entry.spec, url_args(args), "socat relays sockets")
