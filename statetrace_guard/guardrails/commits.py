"""Which git commands make a commit, and what each would put in it.

Pure: an argv in, a :class:`CommitIntent` out (or None for a git command that
makes no commit). What the intent names is looked up in the repository by
:mod:`statetrace_guard.guardrails.inspect`; this module only reads options the
way git's own option parser does (bundled short options, attached values,
unique prefixes of long options, ``--`` ending the options).

Commands that make commits: ``commit`` (``-a``, ``--amend``, ``-i``/``-o``
with paths, ``-p``), ``commit-tree``, ``merge``, ``rebase``, ``cherry-pick``,
``revert``, ``am``; aliases from the repository's config (the caller passes
the lookup) are followed. ``stash`` and ``notes`` make commits git keeps
outside the branches: they are not commits here. ``fast-import`` and
``filter-branch`` make commits from input guard cannot read: they come back
with a ``problem`` and the guard refuses them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "GIT_LOCATION_VARIABLES",
    "AddIntent",
    "CommitIntent",
    "add_intent",
    "commit_intent",
    "git_words",
]

CommitKind = Literal[
    "commit", "commit-tree", "merge", "rebase", "cherry-pick", "revert", "am"
]
# (directory the git command runs in, or None for its cwd; alias name)
AliasLookup = Callable[[str | None, str], str | None]

# Variables that move the repository, its index or its objects: with one set
# for the command, the commit is not the one guard would inspect.
GIT_LOCATION_VARIABLES = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    }
)
_VALUED_GLOBALS = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix"}
)
_VALUED_GLOBALS_EQ = ("--git-dir=", "--work-tree=", "--namespace=", "--exec-path=")
_MOVING_GLOBALS = ("--git-dir", "--work-tree", "--namespace", "--super-prefix")
_MAX_ALIAS_HOPS = 5
_UNREADABLE = {
    "fast-import": "git fast-import makes commits from its input",
    "filter-branch": "git filter-branch rewrites commits with filters",
    "filter-repo": "git filter-repo rewrites commits",
    "replay": "git replay makes commits guard does not follow",
    "quiltimport": "git quiltimport makes commits from patches",
    "subtree": "git subtree makes commits guard does not follow",
}
_ADDS = ("add", "stage")
# git never lets an alias shadow one of its own commands: only other names are
# looked up in the repository's config (one ``git config`` per unusual name).
_GIT_COMMANDS = frozenset(
    [
        "add",
        "am",
        "annotate",
        "apply",
        "archive",
        "bisect",
        "blame",
        "branch",
        "bugreport",
        "bundle",
        "cat-file",
        "check-attr",
        "check-ignore",
        "check-mailmap",
        "check-ref-format",
        "checkout",
        "checkout-index",
        "cherry",
        "cherry-pick",
        "citool",
        "clean",
        "clone",
        "column",
        "commit",
        "commit-graph",
        "commit-tree",
        "config",
        "count-objects",
        "credential",
        "describe",
        "diagnose",
        "diff",
        "diff-files",
        "diff-index",
        "diff-tree",
        "difftool",
        "fast-export",
        "fast-import",
        "fetch",
        "fetch-pack",
        "filter-branch",
        "for-each-ref",
        "for-each-repo",
        "format-patch",
        "fsck",
        "gc",
        "grep",
        "gui",
        "hash-object",
        "help",
        "hook",
        "index-pack",
        "init",
        "init-db",
        "instaweb",
        "interpret-trailers",
        "lfs",
        "log",
        "ls-files",
        "ls-remote",
        "ls-tree",
        "maintenance",
        "merge",
        "merge-base",
        "merge-file",
        "merge-tree",
        "mergetool",
        "mktag",
        "mktree",
        "multi-pack-index",
        "mv",
        "name-rev",
        "notes",
        "pack-objects",
        "pack-refs",
        "patch-id",
        "prune",
        "pull",
        "push",
        "quiltimport",
        "range-diff",
        "read-tree",
        "rebase",
        "reflog",
        "remote",
        "repack",
        "replace",
        "replay",
        "request-pull",
        "rerere",
        "reset",
        "restore",
        "rev-list",
        "rev-parse",
        "revert",
        "rm",
        "send-email",
        "shortlog",
        "show",
        "show-branch",
        "show-ref",
        "sparse-checkout",
        "stage",
        "stash",
        "status",
        "stripspace",
        "submodule",
        "subtree",
        "svn",
        "switch",
        "symbolic-ref",
        "tag",
        "unpack-objects",
        "update-index",
        "update-ref",
        "var",
        "verify-commit",
        "verify-pack",
        "verify-tag",
        "version",
        "whatchanged",
        "worktree",
        "write-tree",
    ]
)


@dataclass(frozen=True, slots=True)
class _Options:
    """One subcommand's option grammar: which options take a value."""

    short_values: str  # short options that take a value (``m`` of ``-m``)
    short_optional: str  # short options whose value must be attached (``-S``)
    long_values: frozenset[str]
    long_flags: frozenset[str]
    long_optional: frozenset[str] = frozenset()  # ``--gpg-sign[=KEY]``


_COMMIT = _Options(
    short_values="mFCct",
    short_optional="uS",
    long_values=frozenset(
        {
            "message",
            "file",
            "reuse-message",
            "reedit-message",
            "template",
            "author",
            "date",
            "cleanup",
            "fixup",
            "squash",
            "trailer",
            "pathspec-from-file",
        }
    ),
    long_flags=frozenset(
        {
            "all",
            "amend",
            "include",
            "only",
            "patch",
            "interactive",
            "dry-run",
            "allow-empty",
            "allow-empty-message",
            "no-verify",
            "verify",
            "edit",
            "no-edit",
            "signoff",
            "no-signoff",
            "quiet",
            "verbose",
            "status",
            "no-status",
            "short",
            "branch",
            "porcelain",
            "long",
            "null",
            "reset-author",
            "no-post-rewrite",
            "pathspec-file-nul",
            "no-gpg-sign",
        }
    ),
    long_optional=frozenset({"gpg-sign", "untracked-files"}),
)
_MERGE = _Options(
    short_values="mFsX",
    short_optional="S",
    long_values=frozenset(
        {
            "message",
            "file",
            "strategy",
            "strategy-option",
            "into-name",
            "cleanup",
        }
    ),
    long_flags=frozenset(
        {
            "commit",
            "no-commit",
            "squash",
            "no-squash",
            "ff",
            "no-ff",
            "ff-only",
            "abort",
            "quit",
            "continue",
            "edit",
            "no-edit",
            "stat",
            "no-stat",
            "verify",
            "no-verify",
            "quiet",
            "verbose",
            "progress",
            "no-progress",
            "allow-unrelated-histories",
            "rerere-autoupdate",
            "no-rerere-autoupdate",
            "autostash",
            "no-autostash",
            "signoff",
            "no-signoff",
            "no-gpg-sign",
            "overwrite-ignore",
            "no-overwrite-ignore",
            "verify-signatures",
            "no-verify-signatures",
            "summary",
            "no-summary",
            "no-log",
        }
    ),
    long_optional=frozenset({"gpg-sign", "log"}),
)
_REBASE = _Options(
    short_values="sXx",
    short_optional="CS",
    long_values=frozenset(
        {"onto", "strategy", "strategy-option", "exec", "whitespace", "empty"}
    ),
    long_flags=frozenset(
        {
            "continue",
            "skip",
            "abort",
            "quit",
            "edit-todo",
            "show-current-patch",
            "root",
            "interactive",
            "keep-base",
            "apply",
            "merge",
            "quiet",
            "verbose",
            "stat",
            "no-stat",
            "verify",
            "no-verify",
            "force-rebase",
            "no-ff",
            "fork-point",
            "no-fork-point",
            "autosquash",
            "no-autosquash",
            "autostash",
            "no-autostash",
            "committer-date-is-author-date",
            "ignore-date",
            "reset-author-date",
            "signoff",
            "keep-empty",
            "no-keep-empty",
            "reapply-cherry-picks",
            "no-reapply-cherry-picks",
            "allow-empty-message",
            "update-refs",
            "no-update-refs",
            "ignore-whitespace",
            "no-gpg-sign",
            "no-rerere-autoupdate",
            "rerere-autoupdate",
        }
    ),
    long_optional=frozenset({"gpg-sign", "rebase-merges"}),
)
_PICK = _Options(
    short_values="mX",
    short_optional="S",
    long_values=frozenset({"mainline", "strategy", "strategy-option", "cleanup"}),
    long_flags=frozenset(
        {
            "continue",
            "skip",
            "abort",
            "quit",
            "no-commit",
            "edit",
            "no-edit",
            "signoff",
            "ff",
            "allow-empty",
            "allow-empty-message",
            "keep-redundant-commits",
            "rerere-autoupdate",
            "no-rerere-autoupdate",
            "no-gpg-sign",
            "reference",
        }
    ),
    long_optional=frozenset({"gpg-sign", "empty"}),
)
_AM = _Options(
    short_values="",
    short_optional="pCS",
    long_values=frozenset(
        {"whitespace", "directory", "exclude", "include", "patch-format", "resolvemsg"}
    ),
    long_flags=frozenset(
        {
            "continue",
            "resolved",
            "skip",
            "abort",
            "quit",
            "show-current-patch",
            "signoff",
            "keep",
            "keep-non-patch",
            "keep-cr",
            "no-keep-cr",
            "scissors",
            "no-scissors",
            "message-id",
            "no-message-id",
            "quiet",
            "utf8",
            "no-utf8",
            "3way",
            "no-3way",
            "ignore-space-change",
            "ignore-whitespace",
            "reject",
            "interactive",
            "committer-date-is-author-date",
            "ignore-date",
            "no-verify",
            "no-gpg-sign",
            "allow-empty",
        }
    ),
    long_optional=frozenset({"gpg-sign", "empty"}),
)
_COMMIT_TREE = _Options(
    short_values="pmF",
    short_optional="S",
    long_values=frozenset(),
    long_flags=frozenset({"no-gpg-sign"}),
    long_optional=frozenset({"gpg-sign"}),
)
_GRAMMARS: dict[str, tuple[CommitKind, _Options]] = {
    "commit": ("commit", _COMMIT),
    "merge": ("merge", _MERGE),
    "rebase": ("rebase", _REBASE),
    "cherry-pick": ("cherry-pick", _PICK),
    "revert": ("revert", _PICK),
    "am": ("am", _AM),
    "commit-tree": ("commit-tree", _COMMIT_TREE),
}
# Long options of ``commit`` that mean the same as a short one.
_LONG_AS_SHORT = {
    "all": "a",
    "amend": "amend",
    "include": "i",
    "only": "o",
    "patch": "p",
    "interactive": "p",
    "message": "m",
    "file": "F",
    "reuse-message": "C",
    "reedit-message": "c",
    "template": "t",
    "mainline": "m",
    "onto": "onto",
}


@dataclass(frozen=True, slots=True)
class CommitIntent:
    """A git command that would make commits, as its options describe them.

    Attributes:
        kind: which kind of commit-making command it is.
        directory: where git runs (the joined ``-C`` values), or None for
            the command's working directory.
        flags: the options given, by their short name where one exists
            (``a``, ``i``, ``o``, ``p``, ``amend``, ``no-commit``, ...).
        values: options with values, in order (``("m", "wip")``).
        operands: the positional arguments (paths for ``commit``, revisions
            for ``merge``/``cherry-pick``/``revert``, patch files for ``am``).
        alias: the alias the command went through, if any.
        problem: why guard cannot tell what the commit would hold (the guard
            then refuses it), else None.
    """

    kind: CommitKind
    directory: str | None = None
    flags: frozenset[str] = frozenset()
    values: tuple[tuple[str, str], ...] = ()
    operands: tuple[str, ...] = ()
    alias: str | None = None
    problem: str | None = None
    pathspec_flags: tuple[str, ...] = field(default=())

    def value(self, name: str) -> str | None:
        """The last value given for option ``name``, if any."""
        found = [value for key, value in self.values if key == name]
        return found[-1] if found else None

    @property
    def messages(self) -> tuple[str, ...]:
        """The ``-m`` messages (scanned for secrets: they go into the commit)."""
        return tuple(value for key, value in self.values if key == "m")

    @property
    def makes_commit(self) -> bool:
        """False for the spellings that stop, abort or only stage."""
        stops = {"abort", "quit", "edit-todo", "show-current-patch", "dry-run"}
        if self.flags & stops:
            return False
        if self.kind == "merge":
            return not self.flags & {"no-commit", "squash", "ff-only"}
        if self.kind in ("cherry-pick", "revert"):
            return not self.flags & {"no-commit", "n"}
        return True


def git_words(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The words after the program when ``argv`` runs git, else None.

    ``git-commit`` (a subcommand run from git's exec path by its own name)
    is ``git commit``.
    """
    if not argv:
        return None
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
    program = program.removesuffix(".exe")
    if program == "git":
        return tuple(argv[1:])
    sub = program.removeprefix("git-")
    if sub != program and (sub in _GRAMMARS or sub in _UNREADABLE or sub in _ADDS):
        return (sub, *argv[1:])
    return None


def commit_intent(
    argv: Sequence[str], aliases: AliasLookup | None = None
) -> CommitIntent | None:
    """Return what a git command line would commit, or None if it makes none.

    Args:
        argv: the simple command's argv (``git ...``).
        aliases: looks an alias up in the repository's config (None: aliases
            are not followed, as in a replay without the repository).

    Returns:
        The intent (possibly with a ``problem``), or None.
    """
    words = git_words(argv)
    if words is None:
        return None
    return _intent(words, aliases, 0, None)


def _intent(
    words: tuple[str, ...],
    aliases: AliasLookup | None,
    hops: int,
    alias: str | None,
) -> CommitIntent | None:
    globals_, index, problem = _globals(words)
    if index >= len(words):
        return None
    sub, rest = words[index], words[index + 1 :]
    directory = _directory(globals_)
    if sub in _UNREADABLE:
        return CommitIntent("commit", directory, problem=_UNREADABLE[sub], alias=alias)
    grammar = _GRAMMARS.get(sub)
    if grammar is None:
        return _follow_alias(sub, rest, globals_, aliases, hops)
    kind, options = grammar
    intent = _parse(kind, options, rest)
    pathspec_flags = tuple(name for name, _ in globals_ if name.endswith("-pathspecs"))
    intent = replace(
        intent, directory=directory, alias=alias, pathspec_flags=pathspec_flags
    )
    if problem is not None:
        intent = replace(intent, problem=problem)
    return intent if intent.makes_commit else None


def _follow_alias(
    sub: str,
    rest: tuple[str, ...],
    globals_: list[tuple[str, str]],
    aliases: AliasLookup | None,
    hops: int,
) -> CommitIntent | None:
    """Expand ``git NAME`` through ``alias.NAME`` (``-c`` first, then the repo)."""
    if sub.startswith("-") or sub in _GIT_COMMANDS:
        return None
    inline = [value for name, value in globals_ if name == "-c"]
    definition = _inline_alias(inline, sub)
    if definition is None and aliases is not None:
        definition = aliases(_directory(globals_), sub)
    if definition is None:
        return None
    if definition.startswith("!"):
        return CommitIntent(
            "commit", problem=f"alias {sub} runs a shell command", alias=sub
        )
    if hops >= _MAX_ALIAS_HOPS:
        return CommitIntent("commit", problem=f"alias {sub} loops", alias=sub)
    try:
        expansion = tuple(shlex.split(definition))
    except ValueError:
        return CommitIntent("commit", problem=f"alias {sub} cannot be read", alias=sub)
    prefix = tuple(part for pair in globals_ for part in _unsplit(pair))
    return _intent((*prefix, *expansion, *rest), aliases, hops + 1, sub)


def _inline_alias(values: list[str], name: str) -> str | None:
    found = None
    for value in values:
        key, sep, definition = value.partition("=")
        if sep and key.lower() == f"alias.{name.lower()}":
            found = definition
    return found


def _unsplit(pair: tuple[str, str]) -> tuple[str, ...]:
    name, value = pair
    return (name, value) if name in _VALUED_GLOBALS else (name,)


def _globals(words: tuple[str, ...]) -> tuple[list[tuple[str, str]], int, str | None]:
    """Read git's global options; return them, the subcommand's index, a problem."""
    found: list[tuple[str, str]] = []
    problem = None
    i = 0
    while i < len(words) and words[i].startswith("-"):
        word = words[i]
        if word in _VALUED_GLOBALS and i + 1 < len(words):
            found.append((word, words[i + 1]))
            i += 2
        elif word.startswith(_VALUED_GLOBALS_EQ) or word.startswith("--config-env"):
            found.append((word.partition("=")[0], word.partition("=")[2]))
            i += 1
        else:
            found.append((word, ""))
            i += 1
        name = found[-1][0]
        if name in _MOVING_GLOBALS or name == "--bare":
            problem = f"git {name} moves the repository guard would inspect"
    return found, i, problem


def _directory(globals_: list[tuple[str, str]]) -> str | None:
    """Join ``-C`` values the way git does (each relative to the previous)."""
    place: str | None = None
    for name, value in globals_:
        if name == "-C" and value:
            if place is None or value.startswith("/"):
                place = value
            else:
                place = f"{place.rstrip('/')}/{value}"
    return place


def _parse(kind: CommitKind, options: _Options, words: tuple[str, ...]) -> CommitIntent:
    flags: set[str] = set()
    values: list[tuple[str, str]] = []
    operands: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            operands.extend(words[i + 1 :])
            break
        if word.startswith("--"):
            i += _long(word, words, i, options, flags, values, problems)
        elif word.startswith("-") and word != "-":
            i += _short(word, words, i, options, flags, values)
        else:
            operands.append(word)
            i += 1
    return CommitIntent(
        kind,
        flags=frozenset(flags),
        values=tuple(values),
        operands=tuple(operands),
        problem=problems[0] if problems else None,
    )


def _long(
    word: str,
    words: tuple[str, ...],
    i: int,
    options: _Options,
    flags: set[str],
    values: list[tuple[str, str]],
    problems: list[str],
) -> int:
    """Read one long option; return how many words it used."""
    name, sep, attached = word[2:].partition("=")
    full = _expand(name, options)
    if full is None:
        problems.append(f"git option --{name} is unknown or ambiguous here")
        return 1
    key = _LONG_AS_SHORT.get(full, full)
    if full == "pathspec-from-file":
        problems.append("--pathspec-from-file names paths guard cannot see")
    if full in options.long_values:
        if sep:
            values.append((key, attached))
            return 1
        if i + 1 < len(words):
            values.append((key, words[i + 1]))
            return 2
        return 1
    flags.add(key)
    if sep and full in options.long_optional:
        values.append((key, attached))
    return 1


def _expand(name: str, options: _Options) -> str | None:
    """Resolve a long option git would accept: exact or a unique prefix."""
    known = options.long_values | options.long_flags | options.long_optional
    if name in known:
        return name
    matches = [option for option in known if option.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if name.startswith("no-") and name[3:] in known:
        return name  # a negation: stops nothing that makes the commit
    return None


def _short(
    word: str,
    words: tuple[str, ...],
    i: int,
    options: _Options,
    flags: set[str],
    values: list[tuple[str, str]],
) -> int:
    """Read a bundle of short options (``-am msg``, ``-qmwip``)."""
    for at in range(1, len(word)):
        letter = word[at]
        if letter in options.short_values:
            rest = word[at + 1 :]
            if rest:
                values.append((letter, rest))
                return 1
            if i + 1 < len(words):
                values.append((letter, words[i + 1]))
                return 2
            return 1
        if letter in options.short_optional:
            return 1  # -S[keyid]: the rest of the word is its value
        flags.add(letter)
    return 1


@dataclass(frozen=True, slots=True)
class AddIntent:
    """A ``git add`` (or ``git stage``) that runs before a commit in one command.

    ``git add -A && git commit -m wip`` commits what the add stages, which is
    not in the index yet when the command is judged: the inspector adds the
    files it would stage (untracked ones unless ignored, changed tracked ones).

    Attributes:
        directory: the joined ``-C`` values, or None.
        pathspecs: the paths given (none with ``-A``/``-u`` means the tree).
        tracked_only: ``-u``: only files git already tracks.
        force: ``-f``: ignored files too.
        problem: why the staged set cannot be known, else None.
    """

    directory: str | None
    pathspecs: tuple[str, ...]
    tracked_only: bool = False
    force: bool = False
    problem: str | None = None


_ADD = _Options(
    short_values="",
    short_optional="",
    long_values=frozenset({"chmod", "pathspec-from-file"}),
    long_flags=frozenset(
        {
            "all",
            "update",
            "force",
            "intent-to-add",
            "patch",
            "interactive",
            "edit",
            "dry-run",
            "verbose",
            "ignore-errors",
            "ignore-missing",
            "ignore-removal",
            "no-all",
            "no-ignore-removal",
            "refresh",
            "renormalize",
            "sparse",
            "pathspec-file-nul",
            "no-warn-embedded-repo",
        }
    ),
)
# _parse names long options by commit's short letters; add's own letters differ.
_ADD_LONG = {
    "a": "A",
    "update": "u",
    "force": "f",
    "dry-run": "n",
    "intent-to-add": "N",
    "interactive": "p",
}


def add_intent(argv: Sequence[str]) -> AddIntent | None:
    """Return what ``git add ARGS`` would stage, or None for no staging."""
    words = git_words(argv)
    if words is None:
        return None
    globals_, index, problem = _globals(words)
    if index >= len(words) or words[index] not in _ADDS:
        return None
    parsed = _parse("commit", _ADD, words[index + 1 :])
    flags = {_ADD_LONG.get(flag, flag) for flag in parsed.flags}
    if flags & {"n", "N", "refresh"}:
        return None
    specs = parsed.operands
    if not specs and flags & {"A", "u", "p"}:
        specs = (":/",)  # -A, -u and -p without paths mean the whole tree
    if not specs:
        return None
    return AddIntent(
        directory=_directory(globals_),
        pathspecs=specs,
        tracked_only=bool(flags & {"u", "p"}),
        force="f" in flags,
        problem=problem or parsed.problem,
    )
