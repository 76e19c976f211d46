"""Running git to read a repository, without letting the repository run code.

Every guardrail question goes through :class:`Git`: the git found on the
system's default path (not the agent's ``PATH``), a timeout, no pager, no
optional locks, ``core.fsmonitor`` off, and an environment without the
variables that make git run programs or read extra configuration
(``GIT_CONFIG_PARAMETERS``, ``GIT_EXEC_PATH``, ``GIT_EXTERNAL_DIFF``...). The
variables that say *which* repository, index or object store to use are kept:
they are what the command being judged would see. Only plumbing that reads
objects and the index is used; the one command that compares the working tree
(``diff-files``) runs only when the repository defines no filter drivers
(whose ``clean`` commands git would run); otherwise the files are hashed here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "GIT_TIMEOUT",
    "Git",
    "GitFailed",
    "RawChange",
    "blob_id",
    "parse_ls_files",
    "parse_raw",
    "pathspec_args",
]

GIT_TIMEOUT = 10.0
_SAFE_PATH = os.pathsep.join(("/usr/local/bin", "/usr/bin", "/bin"))
_DROPPED = (
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_CONFIG_KEY_",
    "GIT_CONFIG_VALUE_",
    "GIT_EXEC_PATH",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "PAGER",
    "GIT_TRACE",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_SSH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_TEMPLATE_DIR",
    "GIT_PROXY_COMMAND",
)
_SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false")


class GitFailed(Exception):
    """git could not answer; ``message`` says why in one line."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        """Keep the one-line message and git's exit status, if it ran."""
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class RawChange:
    """One line of ``--raw`` output: a path and its old and new blobs."""

    path: str
    status: str
    old: str
    new: str


def _program() -> str:
    found = shutil.which("git", path=_SAFE_PATH) or shutil.which("git")
    if found is None:
        raise GitFailed("git is not installed")
    return found


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    out = {name: value for name, value in env.items() if not name.startswith(_DROPPED)}
    out.update(
        GIT_OPTIONAL_LOCKS="0",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        LC_ALL="C",
    )
    return out


class Git:
    """git in one directory, hardened, with a timeout."""

    def __init__(
        self, directory: str, env: Mapping[str, str], timeout: float = GIT_TIMEOUT
    ) -> None:
        """Prepare to run git in ``directory`` with the command's environment."""
        self.directory = directory
        self.env = env
        self._env = _environment(env)
        self._timeout = timeout
        self._program: str | None = None

    def __call__(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run ``git ARGS`` and return its standard output.

        Raises:
            GitFailed: git is missing, timed out, or exited non-zero.
        """
        if self._program is None:
            self._program = _program()
        try:
            done = subprocess.run(
                [self._program, "--no-pager", *_SAFE_CONFIG, *args],
                cwd=self.directory,
                env=self._env,
                input=stdin,
                capture_output=True,
                timeout=self._timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"git {args[0]} took longer than {self._timeout:g}s"
            raise GitFailed(msg) from exc
        except OSError as exc:
            raise GitFailed(
                f"git cannot run in {self.directory}: {exc.strerror}"
            ) from exc
        if done.returncode != 0:
            first = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = first[0] if first else f"exit {done.returncode}"
            raise GitFailed(f"git {args[0]}: {why}", status=done.returncode)
        return done.stdout

    def has_filters(self) -> bool:
        """True when the configuration defines a filter driver git would run."""
        try:
            out = self("config", "--get-regexp", r"^filter\..*\.(clean|process)$")
        except GitFailed as failed:
            if failed.status == 1:  # no such key
                return False
            raise
        return bool(out.strip())


def parse_raw(out: bytes) -> Iterator[RawChange]:
    """Read ``--raw -z`` output (of diff-index, diff-files, diff-tree, log).

    Each change is ``:oldmode newmode old new STATUS NUL path NUL``; anything
    else (commit separators of ``log``) is skipped.
    """
    parts = out.split(b"\0")
    i = 0
    while i < len(parts):
        head = parts[i].lstrip(b"\n")
        if head.startswith(b":") and i + 1 < len(parts):
            fields = head[1:].split()
            if len(fields) >= 5:  # noqa: PLR2004 - modes, ids, status
                path = parts[i + 1].decode("utf-8", "surrogateescape")
                old, new, status = (f.decode("ascii") for f in fields[2:5])
                yield RawChange(path, status[:1], old, new)
            i += 2
        else:
            i += 1


def parse_ls_files(out: bytes) -> Iterator[tuple[str, str, str]]:
    """Read ``ls-files -s -z`` / ``ls-tree -r -z``: (mode, object id, path)."""
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        fields = meta.decode("ascii", "replace").split()
        if len(fields) >= 3:  # noqa: PLR2004 - mode, (type,) id, stage
            oid = fields[2] if fields[1] in ("blob", "tree", "commit") else fields[1]
            yield fields[0], oid, raw_path.decode("utf-8", "surrogateescape")


def blob_id(data: bytes, object_format: str) -> str:
    """The object id git gives ``data`` stored as a blob (no filters)."""
    digest = hashlib.sha256() if object_format == "sha256" else hashlib.sha1()  # noqa: S324 - git's object naming, not security
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def pathspec_args(pathspecs: Sequence[str]) -> tuple[str, ...]:
    """``-- SPEC...`` when there are pathspecs, else nothing."""
    return ("--", *pathspecs) if pathspecs else ()
