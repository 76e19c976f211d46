"""Windows-only native programs, as PowerShell scripts call them.

``schtasks``, ``setx``, ``reg``, ``icacls``, ``certutil``, ``bitsadmin``,
``winget``/``choco``/``scoop``, ``sc.exe`` and the living-off-the-land
launchers. Windows options start with ``/`` or ``-`` and any case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from statetrace_guard.classify.model import SimpleCommand
from statetrace_guard.levels import Effect

__all__ = ["WINDOWS_NATIVES", "classify_windows_native"]

_R = Effect.READ
_W = Effect.WRITE
_N = Effect.NETWORK
_I = Effect.INSTALL
_D = Effect.DYNAMIC

_Result = tuple[
    frozenset[Effect], str, tuple[str, ...], tuple[str, ...], tuple[str, ...]
]
# The fields are: effects, reason, writes, urls, env_sets.


def _flags(argv: Sequence[str]) -> list[str]:
    """Lower-case option names without their ``/`` or ``-``."""
    return [a[1:].lower() for a in argv[1:] if a[:1] in {"/", "-"} and len(a) > 1]


def _result(effects: set[Effect], reason: str, **kw: tuple[str, ...]) -> _Result:
    """Pack one result."""
    return (
        frozenset(effects),
        reason,
        kw.get("writes", ()),
        kw.get("urls", ()),
        kw.get("env_sets", ()),
    )


def _schtasks(argv: Sequence[str]) -> _Result:
    """Query reads; Run/End act on an existing task; Create/Delete/Change persist."""
    flags = _flags(argv)
    if "query" in flags:
        return _result({_R}, "schtasks /Query lists tasks")
    if "run" in flags or "end" in flags:
        return _result({_W}, "schtasks /Run starts an existing scheduled task")
    if any(f in flags for f in ("create", "delete", "change")):
        return _result(
            {_W, _D},
            "schtasks changes scheduled tasks (outside the workspace)",
            writes=("task:scheduler",),
        )
    return _result({_D}, "schtasks without a known action")


def _setx(argv: Sequence[str]) -> _Result:
    """``setx NAME VALUE`` persists a variable in the registry."""
    names = [a for a in argv[1:] if a[:1] not in {"/", "-"}]
    env = (names[0],) if names else ()
    hive = "HKLM" if "m" in _flags(argv) else "HKCU"
    return _result(
        {_W, _D},
        "setx writes the environment into the registry",
        writes=(f"{hive}:\\Environment",),
        env_sets=env,
    )


def _reg(argv: Sequence[str]) -> _Result:
    """``reg query`` reads; every other verb writes the registry or a file."""
    verb = argv[1].lower() if len(argv) > 1 else ""
    key = argv[2] if len(argv) > 2 else "HKLM:"  # noqa: PLR2004 - reg VERB KEY
    if verb == "query":
        return _result({_R}, "reg query reads the registry")
    if verb == "export" and len(argv) > 3:  # noqa: PLR2004 - reg export KEY FILE
        return _result({_W}, "reg export writes a file", writes=(argv[3],))
    return _result({_W, _D}, f"reg {verb} changes the registry", writes=(key,))


def _icacls(argv: Sequence[str]) -> _Result:
    """``icacls PATH`` reads ACLs; /grant, /deny, /reset ... change them."""
    changing = {"grant", "deny", "remove", "reset", "setowner", "setintegritylevel"}
    flags = {f.split(":", 1)[0] for f in _flags(argv)}
    path = argv[1] if len(argv) > 1 else "."
    if flags & (changing | {"restore", "inheritance"}):
        return _result({_W}, "icacls changes permissions", writes=(path,))
    return _result({_R}, "icacls shows permissions")


def _urls(argv: Sequence[str]) -> tuple[str, ...]:
    """Arguments that look like URLs or UNC paths."""
    return tuple(a for a in argv[1:] if "://" in a or a.startswith("\\\\"))


def _certutil(argv: Sequence[str]) -> _Result:
    """certutil: -urlcache/-verifyctl download; -encode/-decode write files."""
    flags = _flags(argv)
    if any(f in flags for f in ("urlcache", "verifyctl", "url", "ping")) or _urls(argv):
        return _result(
            {_N, _W},
            "certutil downloads (LOLBAS)",
            urls=_urls(argv),
            writes=tuple(a for a in argv[2:] if a[:1] not in "/-")[-1:],
        )
    if any(f in flags for f in ("encode", "decode", "decodehex", "encodehex")):
        files = [a for a in argv[1:] if a[:1] not in {"/", "-"}]
        return _result({_W}, "certutil writes a decoded file", writes=tuple(files[1:2]))
    if "hashfile" in flags or "dump" in flags:
        return _result({_R}, "certutil reads")
    return _result({_D}, "certutil can change certificate stores")


def _bitsadmin(argv: Sequence[str]) -> _Result:
    """Bitsadmin transfers files over the network."""
    flags = _flags(argv)
    if flags and flags[0] in {"list", "info", "monitor", "getstate"}:
        return _result({_R}, "bitsadmin lists jobs")
    return _result({_N, _W, _D}, "bitsadmin transfers files (LOLBAS)", urls=_urls(argv))


def _package_manager(argv: Sequence[str]) -> _Result:
    """winget/choco/scoop: install verbs install; queries use the network."""
    verb = next((a.lower() for a in argv[1:] if a[:1] not in {"/", "-"}), "")
    if verb in {"install", "upgrade", "update", "uninstall", "remove", "add", "import"}:
        return _result({_I, _N}, f"{argv[0]} {verb} installs software")
    if verb in {"list", "ls", "show", "search", "find", "info", "export", "--version"}:
        return _result({_N}, f"{argv[0]} {verb} queries package sources")
    return _result({_D}, f"{argv[0]} {verb}: unknown action")


def _sc_exe(argv: Sequence[str]) -> _Result:
    """sc.exe: query reads; everything else changes services."""
    verb = argv[1].lower() if len(argv) > 1 else ""
    if verb in {"query", "queryex", "qc", "qdescription", "getdisplayname", "sdshow"}:
        return _result({_R}, "sc query reads service state")
    return _result({_W, _D}, f"sc {verb} changes services", writes=("service:sc",))


def _read(reason: str) -> Callable[[Sequence[str]], _Result]:
    """A program that only reads."""
    return lambda _argv: _result({_R}, reason)


def _net(reason: str) -> Callable[[Sequence[str]], _Result]:
    """A program that uses the network."""
    return lambda argv: _result({_N}, reason, urls=tuple(argv[1:2]))


def _dynamic(reason: str) -> Callable[[Sequence[str]], _Result]:
    """A program that runs arbitrary code or changes the machine."""
    return lambda _argv: _result({_D}, reason)


WINDOWS_NATIVES: dict[str, Callable[[Sequence[str]], _Result]] = {
    "schtasks": _schtasks,
    "setx": _setx,
    "reg": _reg,
    "icacls": _icacls,
    "certutil": _certutil,
    "bitsadmin": _bitsadmin,
    "winget": _package_manager,
    "choco": _package_manager,
    "scoop": _package_manager,
    "sc": _sc_exe,
    "msiexec": lambda _a: _result({_I, _D}, "msiexec installs packages"),
    "whoami": _read("whoami reads identity"),
    "hostname": _read("hostname reads the name"),
    "ipconfig": _read("ipconfig reads network settings"),
    "systeminfo": _read("systeminfo reads system facts"),
    "tasklist": _read("tasklist lists processes"),
    "where": _read("where.exe finds programs"),
    "ver": _read("ver prints the version"),
    "ping": _net("ping sends packets"),
    "tracert": _net("tracert sends packets"),
    "nslookup": _net("nslookup queries DNS"),
    "net": _dynamic("net changes users, shares and services"),
    "netsh": _dynamic("netsh changes network configuration"),
    "wmic": _dynamic("wmic runs WMI methods"),
    "mshta": _dynamic("mshta runs HTML applications (LOLBAS)"),
    "rundll32": _dynamic("rundll32 runs DLL code (LOLBAS)"),
    "regsvr32": _dynamic("regsvr32 runs DLL code (LOLBAS)"),
    "cscript": _dynamic("cscript runs scripts"),
    "wscript": _dynamic("wscript runs scripts"),
    "cmdkey": _dynamic("cmdkey changes stored credentials"),
    "taskkill": _dynamic("taskkill kills processes"),
    "runas": _dynamic("runas runs as another user"),
    "installutil": _dynamic("installutil runs assembly code (LOLBAS)"),
    "msbuild": _dynamic("msbuild runs project code"),
    "forfiles": _dynamic("forfiles runs a command per file"),
    "wsl": _dynamic("wsl runs Linux commands"),
}


def classify_windows_native(stem: str, argv: Sequence[str]) -> SimpleCommand | None:
    """Classify a Windows-only program, or ``None`` when it is not one.

    Args:
        stem: the program's base name, lower case, without ``.exe``.
        argv: the whole argv as written (``argv[0]`` the program).

    Returns:
        One simple command, or ``None`` for programs this table does not know.
    """
    rule = WINDOWS_NATIVES.get(stem)
    if rule is None:
        return None
    effects, reason, writes, urls, env_sets = rule(argv)
    return SimpleCommand(
        argv=tuple(argv),
        shell="pwsh",
        name=stem,
        effects=effects,
        spec=f"win:{stem}",
        reasons=(reason,),
        writes=writes,
        urls=urls,
        env_sets=env_sets,
    )
