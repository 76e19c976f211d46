"""The table of code handlers, and the small ones that fit in a few lines.

A registry entry names a handler when its program's grammar needs code;
``HANDLERS`` maps the names in ``handler_names.py`` to functions (front
ends, which hand a command to another parser, are the dispatcher's own).
"""

from __future__ import annotations

import itertools

from statetrace_guard.classify import (
    assigns,
    fileops,
    git,
    interp,
    net,
    readtools,
    wrappers,
)
from statetrace_guard.classify.assigns import subscript_runs
from statetrace_guard.classify.engine import Handler, Judge, generic, options_of
from statetrace_guard.classify.environment import dangerous_env, redirects_writes
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
)

__all__ = ["HANDLERS"]


def _less(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``less +CMD FILE`` runs CMD at start (``+!id`` runs a shell command)."""
    for word in args:
        if word.text.startswith("+") or may_be_option(word):
            return dynamic(entry.spec, f"{name} {word.text} runs pager commands")
    return generic(entry, name, args, ctx, judge)


def _date(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``date +FORMAT`` prints; ``date MMDDhhmm`` sets the clock."""
    parsed = options_of(entry, args)
    if any(not w.text.startswith("+") for w in parsed.operands):
        return dynamic(entry.spec, f"{name} sets the system clock")
    return generic(entry, name, args, ctx, judge)


def _test(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """``test -v 'a[$(id)]'`` evaluates the subscript: the ``$(id)`` runs."""
    for before, word in itertools.pairwise(args):
        if before.text == "-v" and (not word.static or subscript_runs(word.text)):
            why = f"{name} -v evaluates the array subscript of {word.text}"
            return dynamic(entry.spec, why)
    return generic(entry, name, args, ctx, judge)


def _setx(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``setx NAME VALUE [/M]`` persists a variable in the registry."""
    parsed = options_of(entry, args)
    names = [w.text for w in parsed.operands[:1]]
    machine = any(spelling == "m" for _, spelling, _ in parsed.options)
    hive = "HKLM" if machine else "HKCU"
    return Verdict(
        entry.effects,
        entry.spec,
        (entry.reason,),
        (Word(f"{hive}:\\Environment"),),
        env_sets=tuple(names),
    )


def _cmd_set(
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    _ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``set NAME=V``, ``set /a N=1``, ``set /p N=?``: an environment change."""
    rest = [w for w in args if w.text.lower() not in ("/a", "/p")]
    text = " ".join(w.text for w in rest).strip('"')
    name = text.split("=", 1)[0].strip() if "=" in text else ""
    static = all(w.static for w in rest)
    effects = set(READ)
    reasons = [f"set {name} changes the environment" if name else "set lists variables"]
    if not static or (name and dangerous_env(name.upper())):
        effects.add(*DYNAMIC)
        reasons.append(f"set {name or text}: steers later commands or is not static")
    writes: tuple[Word, ...] = ()
    if static and name and redirects_writes(name.upper()):
        value = text.split("=", 1)[1].strip()
        writes = (Word(value),)
        effects.add(*WRITE)
        reasons.append(f"{name} sends later writes to {value}")
    return Verdict(
        frozenset(effects),
        entry.spec,
        tuple(reasons),
        writes,
        env_sets=(name,) if name and static else (),
    )


HANDLERS: dict[str, Handler] = {
    "git": git.git,
    "git-config": git.git_config,
    "git-branch": git.git_branch,
    "tar": fileops.tar,
    "dd": fileops.dd,
    "sed": interp.sed,
    "awk": interp.awk,
    "python": interp.python,
    "interpreter": interp.interpreter,
    "find": wrappers.find,
    "xargs": wrappers.xargs,
    "fd": readtools.fd,
    "parallel": wrappers.parallel,
    "env": wrappers.env,
    "command": wrappers.command,
    "watch": wrappers.watch,
    "download": net.download,
    "network-client": net.network_client,
    "loopback-server": net.loopback_server,
    "ssh": net.ssh,
    "rsync": net.rsync,
    "socat": net.socat,
    "less": _less,
    "date": _date,
    "test": _test,
    "declare": assigns.declare,
    "unset": assigns.unset,
    "read": assigns.read,
    "printf": assigns.printf,
    "mapfile": assigns.mapfile,
    "getopts": assigns.getopts,
    "wait": assigns.wait,
    "let": assigns.let,
    "setx": _setx,
    "cmd-set": _cmd_set,
}
