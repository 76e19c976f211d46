"""The git spec: global options, then the subcommand's own rules.

Global options that make git run programs (``-c core.pager=``,
``-c alias.x=!cmd``, ``--config-env``, ``--exec-path``) are ``dynamic``;
so are diff drivers (``--ext-diff``, ``--textconv``) and unknown
subcommands (they may be aliases). ``--output`` writes its file.
"""

from __future__ import annotations

from dataclasses import replace

from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.net import url_args
from statetrace_guard.classify.paths import is_within, resolve_path
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    NETWORK,
    WRITE,
    Verdict,
    dynamic,
    may_be_option,
    read,
    write,
)

__all__ = ["git_spec"]

_READ = frozenset(
    {
        "status",
        "log",
        "diff",
        "show",
        "rev-parse",
        "blame",
        "grep",
        "ls-files",
        "ls-tree",
        "cat-file",
        "describe",
        "shortlog",
        "reflog",
        "whatchanged",
        "rev-list",
        "merge-base",
        "name-rev",
        "show-ref",
        "for-each-ref",
        "count-objects",
        "version",
        "help",
        "diff-tree",
        "diff-files",
        "diff-index",
        "cherry",
        "range-diff",
        "check-ignore",
        "check-attr",
        "var",
        "annotate",
        "verify-commit",
        "fsck",
        "show-branch",
        "--version",
        "--help",
    }
)
_WRITE = frozenset(
    {
        "add",
        "commit",
        "checkout",
        "switch",
        "restore",
        "reset",
        "merge",
        "rebase",
        "cherry-pick",
        "revert",
        "rm",
        "mv",
        "init",
        "apply",
        "am",
        "clean",
        "gc",
        "prune",
        "notes",
        "update-index",
        "read-tree",
        "write-tree",
        "commit-tree",
        "update-ref",
        "symbolic-ref",
        "format-patch",
        "repack",
        "sparse-checkout",
        "worktree",
        "stage",
        "bisect",
        "maintenance",
    }
)
_NETWORK = frozenset(
    {
        "clone",
        "fetch",
        "pull",
        "push",
        "ls-remote",
        "remote",
        "archive",
        "send-email",
        "request-pull",
        "svn",
    }
)
_VALUED_GLOBAL = frozenset(
    {
        "-C",
        "-c",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--super-prefix",
        "--config-env",
        "--exec-path",
    }
)
_DANGEROUS_ARGS = (
    "--ext-diff",
    "--textconv",
    "--upload-pack",
    "--receive-pack",
    "--exec",
    "--extcmd",
    "--open-files-in-pager",
)
# Subcommand-specific flags that run a program.
_SUB_DANGER = {"rebase": ("-x",), "grep": ("-O",), "bisect": ("run",)}
# Config keys a -c may set that cause git to run a program.
_DYNAMIC_CONFIG = (
    "alias.",
    "core.pager",
    "core.sshcommand",
    "core.editor",
    "core.fsmonitor",
    "core.hookspath",
    "core.askpass",
    "pager.",
    "diff.",
    "filter.",
    "merge.",
    "gpg.",
    "credential.",
    "sequence.editor",
    "protocol.",
    "url.",
    "uploadpack.",
    "receivepack.",
    "include.",
    "includeif.",
    "remote.",
    "http.",
    "browser.",
    "web.",
    "man.",
    "instaweb.",
    "interactive.",
    "submodule.",
    "ssh.",
    "core.gitproxy",
    "core.worktree",
    "core.attributesfile",
    "core.gitdir",
    "core.sparsecheckout",
)


def _globals(args: tuple[Word, ...]) -> tuple[list[tuple[str, Word]], int]:
    """Return the global options (name, value) and the subcommand's index."""
    found: list[tuple[str, Word]] = []
    i = 0
    while i < len(args) and args[i].text.startswith("-") and args[i].static:
        name, sep, value = args[i].text.partition("=")
        if name in _VALUED_GLOBAL and not sep and i + 1 < len(args):
            found.append((name, args[i + 1]))
            i += 2
            continue
        found.append((name, Word(value)))
        i += 1
    return found, i


def _global_problem(found: list[tuple[str, Word]]) -> str | None:
    for name, value in found:
        if name in ("--config-env", "--exec-path", "--git-dir", "--work-tree"):
            return f"git {name} changes what git runs or where"
        if name == "-c" and (
            not value.static or value.text.lower().startswith(_DYNAMIC_CONFIG)
        ):
            return f"git -c {value.text} may run a program"
    return None


def _foreign_repository(where: Word, ctx: ClassifyContext) -> str | None:
    """Why git would run in a repository outside the workspace, else ``None``.

    NOTE(git): a repository's own config runs programs (``core.fsmonitor``,
    ``core.pager``, hooks); the guard protects only the workspace's. After
    ``printf '[core]fsmonitor=cmd' > /tmp/r/.git/config`` (a temp write),
    ``git -C /tmp/r status`` would run ``cmd``.
    """
    if not where.static:
        return "git -C names a directory known only at run time"
    if not ctx.cwd:
        return "git runs in a directory known only at run time (after cd)"
    resolved = resolve_path(where.text, ctx.cwd)
    if resolved is None or not is_within(resolved, ctx.workspace):
        place = resolved or where.text
        return f"git runs in {place}, outside the workspace: its config may run code"
    return None


def _git_dir(found: list[tuple[str, Word]]) -> Word:
    for name, value in found:
        if name == "-C":
            return value
    return Word(".")


def _sub_verdict(sub: str, rest: tuple[Word, ...], where: Word) -> Verdict:
    key = f"posix:git-{sub}"
    if sub in _NETWORK:
        return _git_network(sub, rest, key)
    if sub in ("branch", "tag", "stash", "config", "submodule", "lfs"):
        return _listing_or_write(sub, rest, where, key)
    if sub in _READ:
        return read(key, f"git {sub} only reads")
    if sub in _WRITE:
        return write(key, [where], f"git {sub} changes the repository")
    return dynamic(key, f"git {sub}: unknown subcommand (may be an alias)")


def _git_network(sub: str, rest: tuple[Word, ...], key: str) -> Verdict:
    if sub == "remote" and (not rest or rest[0].text in ("-v", "get-url")):
        return read(key, "git remote lists remotes")
    if sub == "archive" and not any(w.text.startswith("--remote") for w in rest):
        return write(key, [], "git archive writes an archive")
    effects = NETWORK | WRITE if sub in ("clone", "pull", "fetch") else NETWORK
    return Verdict(effects, key, (f"git {sub} talks to a remote",), urls=url_args(rest))


def _listing_or_write(  # noqa: PLR0911 - one return per rule, read top-down
    sub: str, rest: tuple[Word, ...], where: Word, key: str
) -> Verdict:
    listing = {
        "branch": (
            "-l",
            "--list",
            "-a",
            "-r",
            "-v",
            "-vv",
            "--show-current",
            "--contains",
            "--merged",
            "--no-merged",
            "--all",
            "--remotes",
        ),
        "tag": ("-l", "--list", "-n", "--contains", "--points-at"),
        "stash": ("list", "show"),
        "config": ("--get", "--list", "-l", "--get-all", "--get-regexp", "get"),
        "submodule": ("status", "summary", "foreach"),
        "lfs": ("ls-files", "status", "env", "version"),
    }[sub]
    if sub == "submodule" and any(w.text in ("update", "sync", "add") for w in rest):
        return Verdict(NETWORK | WRITE, key, ("git submodule fetches",))
    if sub == "submodule" and any(w.text == "foreach" for w in rest):
        return dynamic(key, "git submodule foreach runs a command")
    if (not rest and sub != "stash") or (
        rest and rest[0].text in listing and sub != "config"
    ):
        return read(key, f"git {sub} lists")
    if sub == "config" and rest[0].text in listing:
        return read(key, "git config reads a value")
    if sub == "config" and any(
        w.text.lower().startswith(_DYNAMIC_CONFIG) or not w.static for w in rest
    ):
        return dynamic(key, "git config sets a key that runs programs")
    if sub == "lfs":
        return Verdict(NETWORK | WRITE, key, ("git lfs transfers objects",))
    return write(key, [where], f"git {sub} changes the repository")


def git_spec(_name: str, args: tuple[Word, ...], ctx: ClassifyContext) -> Verdict:  # noqa: PLR0911 - one return per rule, read top-down
    """Classify ``git [global options] SUBCOMMAND [args]``."""
    found, index = _globals(args)
    problem = _global_problem(found)
    if problem:
        return dynamic("posix:git", problem)
    where = _git_dir(found)
    if index >= len(args):
        return read("posix:git", "git without a subcommand prints help")
    sub_word, rest = args[index], args[index + 1 :]
    if not sub_word.static:
        return dynamic("posix:git", "git subcommand is not static")
    for word in rest:
        flag = word.text.split("=", 1)[0]
        if flag in _DANGEROUS_ARGS or flag in _SUB_DANGER.get(sub_word.text, ()):
            return dynamic("posix:git", f"git {flag} may run a program")
        if word.static and flag == "--output":
            return write(
                "posix:git",
                [Word(word.text.partition("=")[2])],
                "git --output writes a file",
            )
        if may_be_option(word):
            return dynamic("posix:git", "a git argument may expand to an option")
    verdict = _sub_verdict(sub_word.text, rest, where)
    foreign = _foreign_repository(where, ctx)
    if foreign:
        return replace(
            verdict,
            effects=verdict.effects | DYNAMIC,
            reasons=(*verdict.reasons, foreign),
        )
    return verdict
