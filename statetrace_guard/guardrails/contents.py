"""What a commit would contain: paths and where their content is.

For each kind of commit-making command (see :mod:`.commits`) git itself is
asked, with read-only plumbing (:mod:`.gitcmd`), which paths the new commit(s)
would add or change and which blob or working-tree file holds each one's
content. Deleted paths are left out: removing a file is never refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from statetrace_guard.guardrails.commits import AddIntent, CommitIntent
from statetrace_guard.guardrails.gitcmd import (
    Git,
    GitFailed,
    RawChange,
    blob_id,
    parse_ls_files,
    parse_raw,
    pathspec_args,
)

__all__ = [
    "Content",
    "Repository",
    "commit_contents",
    "new_commits",
    "open_repository",
    "staged_contents",
]

_EMPTY_TREE = {
    "sha1": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "sha256": "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}
_NO_ABBREV = ("--raw", "-z", "--no-renames", "--no-abbrev")
_LOG = ("log", "--format=", "--no-ext-diff", "--no-textconv", *_NO_ABBREV)
_REGULAR_MODES = frozenset({"100644", "100755", "120000"})


@dataclass(frozen=True, slots=True)
class Content:
    """Where one path's content is: a blob id, or a working-tree file."""

    path: str
    blob: str | None = None
    file: str | None = None
    text: str | None = None  # content already at hand (an ``am`` patch's lines)


@dataclass(frozen=True, slots=True)
class Repository:
    """An opened repository: its top level, object format, and git in it."""

    top: str
    object_format: str
    git: Git


def open_repository(git: Git) -> Repository | None:
    """Find the repository git would use from its directory; None if none.

    Raises:
        GitFailed: git failed for another reason than "not a repository".
    """
    try:
        out = git("rev-parse", "--show-toplevel", "--show-object-format")
    except GitFailed as failed:
        if "not a git repository" in failed.message:
            return None
        raise
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) < 2:  # noqa: PLR2004 - a bare repository has no top level
        raise GitFailed("the repository has no working tree")
    return Repository(lines[0], lines[1].strip(), git)


def commit_contents(
    repo: Repository, intent: CommitIntent, adds: Sequence[AddIntent] = ()
) -> list[Content]:
    """The paths (with content) the commits made by ``intent`` would hold.

    Args:
        repo: the repository the commit goes to.
        intent: the commit-making command.
        adds: ``git add`` commands that run before it in the same command
            line (what they stage is not in the index yet).

    Raises:
        GitFailed: git could not answer (the guard then refuses the commit).
    """
    kind = intent.kind
    staged = [item for add in adds for item in _staged_by(repo, add)]
    if kind == "commit":
        return _merged(staged, _commit(repo, intent))
    if intent.flags & {"continue", "resolved", "skip"}:
        return _merged(staged, _index(repo, "HEAD", ()))
    return _BY_KIND[kind](repo, intent)


def staged_contents(repo: Repository) -> list[Content]:
    """What the index holds against HEAD: the commit a pre-commit hook sees."""
    return _index(repo, "HEAD", ())


def new_commits(repo: Repository, tips: Sequence[str]) -> tuple[int, list[Content]]:
    """Commits reachable from ``tips`` that no reference reaches yet, and their changes.

    A reference-transaction hook in the ``prepared`` state sees the new tips
    before any reference moves: what ``--not --all`` leaves are exactly the
    commits this transaction brings in (a commit, a rebase, a cherry-pick,
    ``commit-tree`` plus ``update-ref``, ``--no-verify`` or not).
    """
    out = repo.git("rev-list", *tips, "--not", "--all", "--")
    commits = out.decode("ascii", "replace").split()
    if not commits:
        return 0, []
    log = repo.git(*_LOG, "-m", "--first-parent", "--no-walk=unsorted", *commits, "--")
    return len(commits), _latest(parse_raw(log), old=False)


def _merged(first: list[Content], then: list[Content]) -> list[Content]:
    """One content per path; the later list wins (the working tree over the index)."""
    found = {item.path: item for item in first}
    found.update((item.path, item) for item in then)
    return list(found.values())


def _staged_by(repo: Repository, add: AddIntent) -> list[Content]:
    """What a ``git add`` before the commit would stage: new and changed files."""
    if add.problem is not None:
        raise GitFailed(f"git add: {add.problem}")
    git = repo.git
    if add.directory is not None:
        git = Git(os.path.join(repo.git.directory, add.directory), git.env)
    here = Repository(repo.top, repo.object_format, git)
    found = _worktree(here, add.pathspecs)
    if not add.tracked_only:
        ignored = () if add.force else ("--exclude-standard",)
        out = git(
            "ls-files",
            "-z",
            "--others",
            "--full-name",
            *ignored,
            *pathspec_args(add.pathspecs),
        )
        found.extend(
            Content(name, file=os.path.join(repo.top, name))
            for name in (
                raw.decode("utf-8", "surrogateescape") for raw in out.split(b"\0")
            )
            if name
        )
    return found


def _commit(repo: Repository, intent: CommitIntent) -> list[Content]:
    flags = intent.flags
    specs = intent.operands
    base = "HEAD^" if "amend" in flags else "HEAD"
    changes: dict[str, Content] = {}
    only = bool(specs) and not flags & {"i", "a"}
    for item in _index(repo, base, specs if only else ()):
        changes[item.path] = item
    if flags & {"a", "p"} or specs:
        for item in _worktree(repo, specs):
            changes[item.path] = item
    return list(changes.values())


def _index(repo: Repository, base: str, specs: Iterable[str]) -> list[Content]:
    """Index against ``base`` (the empty tree when ``base`` does not exist)."""
    spec_args = pathspec_args(tuple(specs))
    try:
        out = repo.git("diff-index", "--cached", *_NO_ABBREV, base, *spec_args)
    except GitFailed as failed:
        if "bad revision" not in failed.message and "ambiguous" not in failed.message:
            raise
        empty = _EMPTY_TREE.get(repo.object_format, _EMPTY_TREE["sha1"])
        out = repo.git("diff-index", "--cached", *_NO_ABBREV, empty, *spec_args)
    return [Content(c.path, blob=c.new) for c in _added(parse_raw(out))]


def _worktree(repo: Repository, specs: tuple[str, ...]) -> list[Content]:
    """Tracked files whose working-tree content differs from the index."""
    if repo.git.has_filters():
        return list(_hashed_worktree(repo, specs))
    out = repo.git("diff-files", *_NO_ABBREV, *pathspec_args(specs))
    return [
        Content(change.path, file=os.path.join(repo.top, change.path))
        for change in parse_raw(out)
        if change.status in ("M", "T")
    ]


def _hashed_worktree(repo: Repository, specs: tuple[str, ...]) -> Iterator[Content]:
    """The same without git reading files: hash them here (no filter runs)."""
    out = repo.git("ls-files", "-s", "-z", "--full-name", *pathspec_args(specs))
    for mode, oid, path in parse_ls_files(out):
        if mode not in _REGULAR_MODES:
            continue
        full = os.path.join(repo.top, path)
        data = _read_worktree(full)
        if data is not None and blob_id(data, repo.object_format) != oid:
            yield Content(path, file=full)


def _read_worktree(full: str) -> bytes | None:
    try:
        if os.path.islink(full):
            return os.fsencode(os.readlink(full))
        with open(full, "rb") as handle:
            return handle.read()
    except OSError:
        return None  # deleted or unreadable: git would not commit new content


def _merge(repo: Repository, intent: CommitIntent) -> list[Content]:
    revisions = [("@{-1}" if rev == "-" else rev) for rev in intent.operands]
    changes: dict[str, Content] = {}
    for revision in revisions or ["@{upstream}"]:
        out = repo.git(
            "diff", "--no-ext-diff", "--no-textconv", *_NO_ABBREV, f"HEAD...{revision}"
        )
        for change in _added(parse_raw(out)):
            changes[change.path] = Content(change.path, blob=change.new)
    return list(changes.values())


def _rebase(repo: Repository, intent: CommitIntent) -> list[Content]:
    operands = intent.operands
    branch = operands[1] if len(operands) > 1 else "HEAD"
    if "root" in intent.flags:
        span = branch
    else:
        upstream = operands[0] if operands else "@{upstream}"
        span = f"{upstream}..{branch}"
    out = repo.git(*_LOG, "--no-merges", span, "--")
    return _latest(parse_raw(out), old=False)


def _picks(repo: Repository, intent: CommitIntent) -> list[Content]:
    revisions = list(intent.operands)
    walk = any(".." in rev or rev.startswith("^") for rev in revisions)
    args = [*_LOG, "-m", "--first-parent"]
    if not walk:
        args.append("--no-walk=unsorted")
    out = repo.git(*args, *revisions, "--")
    return _latest(parse_raw(out), old=intent.kind == "revert")


def _latest(changes: Iterable[RawChange], *, old: bool) -> list[Content]:
    """One content per path: a cherry-pick's new side, a revert's old side."""
    found: dict[str, Content] = {}
    for change in changes:
        if old:
            if change.status != "A":  # reverting an addition deletes the file
                found.setdefault(change.path, Content(change.path, blob=change.old))
        elif change.status != "D":
            found.setdefault(change.path, Content(change.path, blob=change.new))
    return list(found.values())


def _commit_tree(repo: Repository, intent: CommitIntent) -> list[Content]:
    if not intent.operands:
        raise GitFailed("git commit-tree names no tree")
    tree = intent.operands[0]
    parents = [value for key, value in intent.values if key == "p"]
    if parents:
        out = repo.git("diff-tree", "-r", *_NO_ABBREV, parents[0], tree)
        return [Content(c.path, blob=c.new) for c in _added(parse_raw(out))]
    out = repo.git("ls-tree", "-r", "-z", "--full-tree", tree)
    return [
        Content(path, blob=oid)
        for mode, oid, path in parse_ls_files(out)
        if mode in _REGULAR_MODES
    ]


def _patches(repo: Repository, intent: CommitIntent) -> list[Content]:
    """``git am FILE...``: the paths and added lines of each patch."""
    if not intent.operands:
        raise GitFailed("git am reads its patches from standard input")
    contents: list[Content] = []
    for name in intent.operands:
        path = os.path.join(repo.git.directory, name)
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            raise GitFailed(f"cannot read the patch {name}: {exc.strerror}") from exc
        contents.extend(_patch_files(text))
    return contents


def _patch_files(text: str) -> Iterator[Content]:
    """Split a patch into (path, added lines); binary and deleted files included.

    ``diff --git a/X b/X`` starts a file (a binary one has no ``+++`` line);
    a plain diff's ``+++ b/X`` does when there is no git header.
    """
    path: str | None = None
    added: list[str] = []
    deleted = False
    plain = "\ndiff --git " not in f"\n{text}"
    for line in text.splitlines():
        header = _patch_header(line, plain=plain)
        if header is not None:
            if path is not None and not deleted:
                yield Content(path, text="\n".join(added))
            path, added, deleted = header or None, [], False
        elif line.startswith("deleted file mode"):
            deleted = True
        elif path is not None and line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
    if path is not None and not deleted:
        yield Content(path, text="\n".join(added))


def _patch_header(line: str, *, plain: bool) -> str | None:
    """The path a header line starts ("" for /dev/null), or None if not one."""
    if line.startswith("diff --git "):
        return line.rpartition(" b/")[2].strip('"')
    if plain and line.startswith("+++ "):
        target = line[4:].strip()
        return "" if target == "/dev/null" else target.removeprefix("b/")
    return None


def _added(changes: Iterable[RawChange]) -> Iterator[RawChange]:
    """Changes that leave content behind (not deletions)."""
    return (change for change in changes if change.status != "D")


_BY_KIND = {
    "merge": _merge,
    "rebase": _rebase,
    "cherry-pick": _picks,
    "revert": _picks,
    "am": _patches,
    "commit-tree": _commit_tree,
}
