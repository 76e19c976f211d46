"""The git handlers: global options, then the subcommand's entry.

Global options that make git run programs (``-c core.pager=``,
``-c alias.x=!cmd``, ``--config-env``, ``--exec-path=DIR``) are
``dynamic``; the keys that run programs are the entry's
``dangerous_config``. ``-C``, ``--git-dir`` and ``--work-tree`` name the
repository: one outside the workspace has a config the guard does not
protect, so git there is ``dynamic``. The subcommand is judged by its own
entry (``specs/git.toml``); a write target ``.git/config`` there is the
repository's own config, resolved here (the workspace's, or ``--git-dir``'s).

``git config`` and ``git branch``/``tag``/``checkout``/``switch`` need code
for their grammar: whether the command lists or changes is decided by the
presence of operands, not by an option alone.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from statetrace_guard.classify.engine import Judge, Parsed, options_of, verdict_of
from statetrace_guard.classify.knowledge import ProgramEntry
from statetrace_guard.classify.model import ClassifyContext, Word
from statetrace_guard.classify.paths import is_within, resolve_path
from statetrace_guard.classify.verdict import (
    DYNAMIC,
    READ,
    WRITE,
    Verdict,
    dynamic,
    read,
    write,
)

__all__ = ["git", "git_branch", "git_config"]

_REPO_CONFIG = ".git/config"
# A start point in one of these is a remote-tracking branch: git sets up
# tracking (branch.<name>.remote/merge) in the repository's config.
_REMOTE_PREFIXES = ("origin/", "upstream/", "refs/remotes/")
# checkout/switch options that create a branch (the start point follows).
_CREATING = frozenset({"-b", "-B", "-c", "-C", "--orphan"})


def git(  # noqa: PLR0911 - one return per rule, read top-down
    entry: ProgramEntry,
    _name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    judge: Judge,
) -> Verdict:
    """Classify ``git [global options] SUBCOMMAND [args]``."""
    if len(args) == 1 and args[0].static and args[0].text in entry.versions:
        return read(entry.spec, f"git {args[0].text} prints")
    parsed = options_of(entry, args, stop_at_operand=True)
    problem = _global_problem(entry, parsed)
    if problem:
        return dynamic(entry.spec, problem)
    where, git_dir = _location(entry, parsed)
    if parsed.rest_at is None:
        return read(entry.spec, "git without a subcommand prints help")
    sub_word = args[parsed.rest_at]
    rest = args[parsed.rest_at + 1 :]
    if not sub_word.static:
        return dynamic(entry.spec, "git subcommand is not static")
    sub = entry.subcommands.get(sub_word.text)
    if sub is None:
        why = f"git {sub_word.text}: not a subcommand the registry knows (an alias?)"
        return dynamic(f"{entry.spec}-{sub_word.text}", why)
    verdict = judge(sub, f"git {sub_word.text}", rest, ctx)
    verdict = _place_writes(verdict, where, git_dir, ctx)
    foreign = _foreign_repository(where, git_dir, ctx)
    if foreign:
        return replace(
            verdict,
            effects=verdict.effects | DYNAMIC,
            reasons=(*verdict.reasons, foreign),
        )
    return verdict


def _global_problem(entry: ProgramEntry, parsed: Parsed) -> str | None:
    """Why a global option makes git run a program, else ``None``."""
    if parsed.problems:
        return parsed.problems[0]
    dangerous = tuple(entry.data.get("dangerous_config", ()))
    safe = frozenset(entry.data.get("safe_config_values", ()))
    for kind, spelling, value in parsed.options:
        if kind == "code":
            return f"git {spelling} changes what git runs"
        if spelling == "--exec-path" and value is not None:
            return "git --exec-path=DIR runs git's programs from DIR"
        if spelling == "-c":
            if value is None or not value.static:
                return "git -c with a value known only at run time"
            setting = value.text.lower()
            if setting.startswith(dangerous) and setting not in safe:
                return f"git -c {value.text} may run a program"
    return None


def _location(entry: ProgramEntry, parsed: Parsed) -> tuple[Word, Word | None]:
    """The directory git runs in (``-C``) and the git directory, if given."""
    where = Word(".")
    git_dir = None
    repository = set(entry.data.get("repository_options", ()))
    for _, spelling, value in parsed.options:
        if spelling not in repository or value is None:
            continue
        if spelling == "-C":
            joined = (
                value.text
                if where.text == "."
                else posixpath.join(where.text, value.text)
            )
            where = Word(joined, value.static and where.static)
        else:
            git_dir = value if spelling == "--git-dir" else git_dir or value
    return where, git_dir


def _foreign_repository(
    where: Word, git_dir: Word | None, ctx: ClassifyContext
) -> str | None:
    """Why git would run in a repository outside the workspace, else ``None``.

    NOTE(git): a repository's own config runs programs (``core.fsmonitor``,
    ``core.pager``, hooks); the guard protects only the workspace's. After
    ``printf '[core]fsmonitor=cmd' > /tmp/r/.git/config`` (a temp write),
    ``git -C /tmp/r status`` would run ``cmd``.
    """
    for place in (where, git_dir):
        if place is None:
            continue
        if not place.static:
            return "git names a directory known only at run time"
        if not ctx.cwd:
            return "git runs in a directory known only at run time (after cd)"
        resolved = resolve_path(place.text, ctx.cwd)
        if resolved is None or not is_within(resolved, ctx.workspace):
            shown = resolved or place.text
            return (
                f"git runs in {shown}, outside the workspace: its config may run code"
            )
    return None


def _place_writes(
    verdict: Verdict, where: Word, git_dir: Word | None, ctx: ClassifyContext
) -> Verdict:
    """Resolve ``.git/...`` targets to the repository's, ``.`` to ``-C``'s."""
    if not verdict.writes:
        return verdict
    placed = tuple(_place(w, where, git_dir, ctx) for w in verdict.writes)
    return replace(verdict, writes=placed)


def _place(
    target: Word, where: Word, git_dir: Word | None, ctx: ClassifyContext
) -> Word:
    if target.text.startswith(".git/") or target.text == ".git":
        inner = target.text[len(".git") :].lstrip("/")
        if git_dir is not None:
            return Word(posixpath.join(git_dir.text, inner), git_dir.static)
        # git finds the repository upwards from where it runs: in the
        # workspace that is the workspace's own repository.
        base = posixpath.join(ctx.workspace, ".git") if ctx.workspace else ".git"
        return Word(posixpath.join(base, inner) if inner else base)
    if target.text == "." and where.text != ".":
        return where
    return target


def git_config(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``git config``: reads with a get action or one operand; else writes.

    The written file: ``--global`` (home: outside), ``--system``, ``-f FILE``,
    else the repository's own config (needs L2).
    """
    parsed = options_of(entry, args)
    given = {spelling for _, spelling, _ in parsed.options}
    words = [w.text for w in parsed.operands]
    reads = set(entry.data.get("read_actions", ()))
    writes = set(entry.data.get("write_actions", ()))
    if parsed.problems or any(k == "dynamic" for k, _, _ in parsed.options):
        return dynamic(entry.spec, f"{name}: opens an editor or an option is unknown")
    action = next((w for w in words[:1] if w in reads | writes), None)
    if action is not None:
        words = words[1:]
    listing = bool(given & reads) or action in reads
    changing = bool(given & writes) or action in writes
    if not changing and (listing or len(words) <= 1):
        return read(entry.spec, f"{name} reads a value")
    return _config_write(entry, name, parsed, words, ctx)


def _config_write(
    entry: ProgramEntry,
    name: str,
    parsed: Parsed,
    words: list[str],
    ctx: ClassifyContext,
) -> Verdict:
    dangerous = tuple(entry.data.get("dangerous_config", ())) or _parent_dangerous(ctx)
    key = words[0].lower() if words else ""
    if any(not w.static for w in parsed.operands) or key.startswith(dangerous):
        return dynamic(entry.spec, f"{name} sets a key that runs programs ({key})")
    given = {spelling: value for _, spelling, value in parsed.options}
    if "--global" in given:
        target = Word("~/.gitconfig")
    elif "--system" in given:
        target = Word("/etc/gitconfig")
    elif given.get("-f") is not None or given.get("--file") is not None:
        target = given.get("-f") or given["--file"]  # type: ignore[assignment]
    else:
        target = Word(_REPO_CONFIG)
    return write(entry.spec, [target], f"{name} writes {target.text}")


def _parent_dangerous(_ctx: ClassifyContext) -> tuple[str, ...]:
    from statetrace_guard.classify.registry import builtin_knowledge  # noqa: PLC0415

    found = builtin_knowledge().programs("posix", "git")
    return tuple(found[0].data.get("dangerous_config", ())) if found else ()


def git_branch(
    entry: ProgramEntry,
    name: str,
    args: tuple[Word, ...],
    ctx: ClassifyContext,
    _judge: Judge,
) -> Verdict:
    """``git branch``/``tag`` list unless given a name; ``checkout``/``switch`` write.

    Options in ``config_flags`` (rename, copy, delete, upstream, tracking)
    rewrite the repository's config; so does a new branch that starts at a
    remote-tracking branch (git sets up tracking).
    """
    parsed = options_of(entry, args)
    if parsed.problems or any(k == "dynamic" for k, _, _ in parsed.options):
        return dynamic(entry.spec, f"{name}: opens an editor or an option is unknown")
    given = {spelling for _, spelling, _ in parsed.options}
    listing = set(entry.data.get("listing_flags", ()))
    config = set(entry.data.get("config_flags", ()))
    operands = parsed.operands
    creating = bool(given & _CREATING)
    start = operands[:1] if creating else operands[1:2]
    tracking = "--no-track" not in given and (
        bool(given & config) or any(w.text.startswith(_REMOTE_PREFIXES) for w in start)
    )
    if tracking:
        why = f"{name} rewrites the repository's config (branch settings)"
        return Verdict(WRITE, entry.spec, (why,), (Word(_REPO_CONFIG),))
    lists = given <= listing and (not operands or bool(given & {"-l", "--list"}))
    if entry.effects == READ and lists:
        return read(entry.spec, f"{name} lists")
    own = verdict_of(entry, parsed, ctx)
    return write(
        entry.spec, [*own.writes] or [Word(".")], f"{name} changes the repository"
    )
