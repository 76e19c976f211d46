"""Specs for network clients and package installers.

Every network client is ``network`` whatever its arguments (a ``file://`` URL
is not worth the risk of misreading one); options that run local programs
(``ssh -o ProxyCommand``, ``rsync -e``, ``socat EXEC:``) add ``dynamic``.
Installers are ``install`` (which implies network); their listing
subcommands are read-only.
"""

from __future__ import annotations

from collections.abc import Callable

from statetrace_guard.classify.fileops import operands
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    INSTALL,
    NETWORK,
    WRITE,
    Verdict,
    dynamic,
    network,
    read,
)

__all__ = ["NET_SPECS", "url_args"]

Spec = Callable[[str, tuple[Word, ...], ClassifyContext], Verdict]

_SSH_EXEC_OPTS = (
    "proxycommand",
    "localcommand",
    "permitlocalcommand",
    "knownhostscommand",
)
_NET_CLIENTS = (
    "curl",
    "wget",
    "nc",
    "ncat",
    "netcat",
    "telnet",
    "ftp",
    "tftp",
    "sftp",
    "ping",
    "ping6",
    "traceroute",
    "tracepath",
    "mtr",
    "dig",
    "nslookup",
    "host",
    "whois",
    "http",
    "https",
    "httpie",
    "xh",
    "aria2c",
    "axel",
    "lftp",
    "lynx",
    "links",
    "w3m",
    "nmap",
    "smbclient",
    "ncftp",
    "curlie",
    "grpcurl",
    "websocat",
)
# Options whose value is a file the client writes, per client family.
_CURL_OUT = frozenset({"-o", "--output", "-c", "--cookie-jar", "-D", "--dump-header",
                       "--trace", "--trace-ascii", "--stderr", "--output-dir",
                       "--etag-save", "--libcurl", "--hsts", "--alt-svc"})  # fmt: skip
# Options that read a config which can name any output file or command.
_CONFIG_OPTS = {"curl": ("-K", "--config"), "wget": ("-e", "--execute", "--config")}
_WGET_OUT = frozenset({"-O", "--output-document", "-P", "--directory-prefix", "-o",
                       "--output-file", "-a", "--append-output"})  # fmt: skip


_OUT_BY_CLIENT = {"curl": _CURL_OUT, "wget": _WGET_OUT, "aria2c": _WGET_OUT}


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


def _client(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    urls = url_args(args)
    valued = _OUT_BY_CLIENT.get(name, frozenset())
    _, opts = operands(args, valued)
    writes = [Word(v) for k, v in opts.items() if k in valued and v]
    if name.startswith("curl") and {"-O", "--remote-name", "--remote-name-all"} & set(
        opts
    ):
        folder = opts.get("--output-dir") or "."
        writes.extend(_downloaded(urls, folder))  # -O: the URL's basename
    if name == "wget" and not {"-O", "--output-document", "--spider"} & set(opts):
        folder = opts.get("-P") or opts.get("--directory-prefix") or "."
        writes = [w for w in writes if w.text != folder]
        writes.extend(_downloaded(urls, folder))
    effects = NETWORK | WRITE if writes else NETWORK
    config = _CONFIG_OPTS.get(name, ())
    if any(w.text.startswith(config) for w in args if config):
        effects |= DYNAMIC  # a config can set the output file anywhere
    return Verdict(
        effects, f"posix:{name}", (f"{name} talks to the network",), tuple(writes), urls
    )


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


def _ssh(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    joined = " ".join(w.text for w in args).lower()
    urls = url_args(args)
    if any(opt in joined for opt in _SSH_EXEC_OPTS) or "-f" in joined.split():
        return Verdict(
            NETWORK | DYNAMIC,
            f"posix:{name}",
            (f"{name} option runs a local command",),
            urls=urls,
        )
    if any(w.text in ("-F", "-S") or w.text.startswith("-F") for w in args):
        return Verdict(
            NETWORK | DYNAMIC,
            f"posix:{name}",
            (f"{name} reads a config that may run commands",),
            urls=urls,
        )
    return network(f"posix:{name}", urls, f"{name} connects to a remote host")


def _rsync(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    pos, opts = operands(args, frozenset({"-e", "--rsh", "--rsync-path"}))
    if any(k in opts for k in ("-e", "--rsh", "--rsync-path")) or any(
        k.startswith("-") and "e" in k[1:] and not k.startswith("--") for k in opts
    ):
        return dynamic("posix:rsync", "rsync -e/--rsh runs a program")
    remote = [w.text for w in pos if ":" in w.text.split("/", 1)[0]]
    if remote:
        return network("posix:rsync", remote, "rsync to or from a remote host")
    return Verdict(WRITE, "posix:rsync", ("rsync copies locally",), tuple(pos[-1:]))


def _socat(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    upper = " ".join(w.text for w in args).upper()
    if "EXEC:" in upper or "SYSTEM:" in upper:
        return Verdict(NETWORK | DYNAMIC, "posix:socat", ("socat EXEC/SYSTEM",))
    return network("posix:socat", url_args(args), "socat relays sockets")


def _scp(_name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
    if any("proxycommand" in w.text.lower() or w.text == "-S" for w in args):
        return Verdict(NETWORK | DYNAMIC, "posix:scp", ("scp runs a program",))
    return network("posix:scp", url_args(args), "scp copies over the network")


# Subcommands of package managers: which install, which only read.
_INSTALL_SUBS = frozenset(
    {
        "install",
        "add",
        "ci",
        "i",
        "update",
        "upgrade",
        "get",
        "sync",
        "reinstall",
        "uninstall",
        "remove",
        "rm",
        "un",
        "dist-upgrade",
        "full-upgrade",
        "build-dep",
        "download",
        "fetch",
        "link",
        "publish",
        "tap",
        "global",
        "lock",
        "autoremove",
        "purge",
        "wheel",
        "require",
        "exec",
        "dlx",
        "create",
        "init",
        "x",
    }
)
_READ_SUBS = frozenset(
    {
        "list",
        "ls",
        "show",
        "freeze",
        "check",
        "search",
        "info",
        "help",
        "--version",
        "-V",
        "version",
        "-v",
        "config",
        "outdated",
        "why",
        "policy",
        "depends",
        "env",
        "doctor",
        "--help",
        "-h",
        "audit",
        "inspect",
        "debug",
        "cache",
    }
)
_RUN_SUBS = frozenset(
    {
        "run",
        "test",
        "t",
        "start",
        "run-script",
        "restart",
        "stop",
        "tst",
        "exec",
        "x",
        "dlx",
    }
)


def _first_sub(args: tuple[Word, ...]) -> Word | None:
    for word in args:
        if not word.text.startswith("-") or not word.static:
            return word
    return args[0] if args else None


def _package_manager(  # noqa: PLR0911 - one return per rule, read top-down
    name: str, args: tuple[Word, ...], _ctx: ClassifyContext
) -> Verdict:
    sub = _first_sub(args)
    spec = f"posix:{name}"
    if sub is None:
        return read(spec, f"{name} without a subcommand prints help")
    if not sub.static:
        return dynamic(spec, f"{name} subcommand is not static")
    if name == "uv" and sub.text in ("pip", "tool"):
        return _package_manager("pip", args[args.index(sub) + 1 :], _ctx)
    if sub.text in _RUN_SUBS and name in ("npm", "yarn", "pnpm", "bun", "uv", "poetry"):
        return dynamic(spec, f"{name} {sub.text} runs project code")
    if sub.text in _INSTALL_SUBS:
        return Verdict(
            INSTALL,
            spec,
            (f"{name} {sub.text} installs packages",),
            urls=url_args(args),
        )
    if sub.text in _READ_SUBS:
        return _settings_change(name, args, sub) or read(
            spec, f"{name} {sub.text} only reads"
        )
    return dynamic(spec, f"{name} {sub.text}: not a known subcommand")


# ``npm config set script-shell x``, ``pip config set``, ``pip cache purge``:
# these subcommands read only with one of these actions (or none).
_SETTINGS_SUBS = frozenset({"config", "cache", "env"})
_SETTINGS_READS = frozenset(
    {"list", "ls", "get", "show", "dir", "info", "debug", "view", "--list", "-l"}
)


def _settings_change(name: str, args: tuple[Word, ...], sub: Word) -> Verdict | None:
    """A ``config``/``cache``/``env`` action that changes user settings, or None.

    The settings live outside the workspace (``~/.npmrc``, pip.conf) and
    steer later runs (npm's ``script-shell``, pip's index).
    """
    if sub.text not in _SETTINGS_SUBS:
        return None
    rest = args[args.index(sub) + 1 :]
    action = next((w for w in rest if not (w.static and w.text.startswith("-"))), None)
    flags = {w.text for w in rest if w.static and w.text.startswith("-")}
    if action is None and (not rest or flags & _SETTINGS_READS or "--help" in flags):
        return None
    if action is not None and action.static and action.text in _SETTINGS_READS:
        return None
    what = action.text if action is not None else " ".join(w.text for w in rest)
    why = f"{name} {sub.text} {what} changes settings outside the workspace"
    return dynamic(f"posix:{name}", why)


def _writes_env(args: tuple[Word, ...]) -> bool:
    """``go env -w GOFLAGS=-toolexec=x`` persists settings for later builds."""
    return any(w.text in ("-w", "-u") or not w.static for w in args)


def _pkg_tool_with_install(installs: frozenset[str], reads: frozenset[str]) -> Spec:
    """Build a spec for a toolchain with an ``install`` subcommand (cargo, go)."""

    def spec(name: str, args: tuple[Word, ...], _ctx: ClassifyContext) -> Verdict:
        sub = _first_sub(args)
        key = f"posix:{name}"
        if sub is not None and sub.text == "env" and _writes_env(args):
            return dynamic(key, f"{name} env -w/-u changes later builds' settings")
        if sub is None or (sub.static and sub.text in reads):
            return read(key, f"{name} only reads")
        if sub.static and sub.text in installs:
            return Verdict(INSTALL, key, (f"{name} {sub.text} installs",))
        return dynamic(key, f"{name} {sub.text} builds or runs project code")

    return spec


NET_SPECS: dict[str, Spec] = {
    **dict.fromkeys(_NET_CLIENTS, _client),
    "ssh": _ssh,
    "autossh": _ssh,
    "scp": _scp,
    "rsync": _rsync,
    "socat": _socat,
    **dict.fromkeys(
        (
            "pip",
            "pip3",
            "pipx",
            "npm",
            "yarn",
            "pnpm",
            "bun",
            "apt",
            "apt-get",
            "dnf",
            "yum",
            "apk",
            "zypper",
            "pacman",
            "brew",
            "port",
            "snap",
            "flatpak",
            "gem",
            "conda",
            "mamba",
            "micromamba",
            "poetry",
            "composer",
            "nuget",
            "choco",
            "winget",
            "scoop",
            "uv",
            "pdm",
            "hatch",
            "bundle",
            "bundler",
            "easy_install",
            "luarocks",
            "opam",
            "cpan",
            "cpanm",
        ),
        _package_manager,
    ),
    "cargo": _pkg_tool_with_install(
        frozenset({"install", "add", "fetch", "update", "publish", "login"}),
        frozenset({"--version", "-V", "version", "help", "--help", "metadata", "tree"}),
    ),
    "go": _pkg_tool_with_install(
        frozenset({"install", "get", "mod"}),
        frozenset({"version", "env", "help", "list", "doc", "fmt"}),
    ),
    "npx": lambda _name, _args, _ctx: Verdict(
        INSTALL | DYNAMIC, "posix:npx", ("npx downloads and runs a package",)
    ),
}
