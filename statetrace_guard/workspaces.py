"""What guard remembers about workspaces, in its home (which no program writes).

* **Log directories** (issue 12 K9): every log directory a ``guard run`` has
  written is registered, and the log subdirectories of *all* of them are
  guard-owned for every command: one workspace's program (writing the
  system temp directory at L1) cannot truncate another workspace's session
  log under ``/tmp``. Only log directories of this guard home are known: a
  workspace run with another ``STATETRACE_GUARD_HOME`` is not.
* **The accepted workspace policy** (K6): a workspace's ``guard.toml`` is
  pinned by its sha256 the first time guard runs there (trust on first use);
  a policy that appears or changes afterwards is refused until the operator
  runs ``guard policy accept``. A workspace inside another known workspace
  (a repository the agent could have made with ``git init sub``) gets no
  trust on first use: its policy must be accepted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass

from statetrace_guard.errors import AuditError, PolicyError
from statetrace_guard.home import guard_home_text

__all__ = [
    "Pin",
    "accept_policy",
    "check_policy_pin",
    "known_log_dirs",
    "register_log_dir",
]

_REGISTRY = "log-dirs"
_TRUST = "trust"
_NONE = "none"
_cache: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {}


def _registry_path() -> str:
    return os.path.join(guard_home_text(), _REGISTRY)


def known_log_dirs() -> tuple[str, ...]:
    """Every registered log directory (resolved), in registration order.

    Read once per change of the file (the resident helper asks per command).
    """
    path = _registry_path()
    try:
        info = os.stat(path)
    except OSError:
        return ()
    key = (info.st_mtime_ns, info.st_size)
    found = _cache.get(path)
    if found is not None and found[0] == key:
        return found[1]
    try:
        with open(path, encoding="utf-8") as handle:
            dirs = tuple(
                dict.fromkeys(line.rstrip("\n") for line in handle if line.strip())
            )
    except OSError:
        return ()
    _cache[path] = (key, dirs)
    return dirs


def register_log_dir(log_dir: str) -> None:
    """Add ``log_dir`` (resolved) to the registry unless it is there.

    One ``O_APPEND`` write per new directory, so concurrent guards never
    interleave a line.
    """
    resolved = os.path.realpath(log_dir)
    if resolved in known_log_dirs():
        return
    path = _registry_path()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        # Inside a guarded program guard's home is an empty read-only view.
        raise AuditError(
            f"cannot register the log directory in guard's home: {error.strerror}: "
            f"{path}"
        ) from error
    try:
        os.write(fd, (resolved + "\n").encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Pin:
    """The policy accepted for one workspace: its sha256, or ``none``."""

    workspace: str
    policy_sha256: str


def _pin_path(workspace: str) -> str:
    digest = hashlib.sha256(workspace.encode()).hexdigest()[:32]
    return os.path.join(guard_home_text(), _TRUST, digest)


def _read_pin(workspace: str) -> Pin | None:
    try:
        with open(_pin_path(workspace), encoding="utf-8") as handle:
            data = json.load(handle)
        return Pin(str(data["workspace"]), str(data["policy_sha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_pin(pin: Pin, *, replace: bool) -> None:
    path = _pin_path(pin.workspace)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError as error:
        if error.errno == errno.EROFS and not replace:
            # A guard inside a guarded program sees an empty read-only home
            # (the mount view hides the real one): every workspace is new to
            # it, and it has no power to record (or need) trust.
            return
        raise
    text = json.dumps({"workspace": pin.workspace, "policy_sha256": pin.policy_sha256})
    if not replace:
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except FileExistsError:
            return  # another guard pinned it first: that pin stands
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def check_policy_pin(workspace: str, policy_file: str, sha256: str | None) -> None:
    """Refuse a workspace policy the operator has not accepted.

    Args:
        workspace: the workspace root, resolved.
        policy_file: the workspace's ``guard.toml`` (for messages).
        sha256: its content's sha256, or None when there is none.

    Raises:
        PolicyError: the policy appeared or changed since it was pinned, or
            the workspace lies inside another known one.
    """
    pin = _read_pin(workspace)
    if pin is None:
        if sha256 is not None and _inside_known_workspace(workspace):
            raise _unaccepted(policy_file, "is in a new workspace inside a known one")
        _write_pin(Pin(workspace, sha256 or _NONE), replace=False)
        return
    if sha256 is None or pin.policy_sha256 == sha256:
        return
    what = "appeared" if pin.policy_sha256 == _NONE else "changed"
    raise _unaccepted(policy_file, f"{what} since the operator accepted this workspace")


def accept_policy(workspace: str, sha256: str | None) -> Pin:
    """Pin ``sha256`` (None: no policy) as the workspace's accepted policy."""
    pin = Pin(workspace, sha256 or _NONE)
    _write_pin(pin, replace=True)
    return pin


def _unaccepted(policy_file: str, why: str) -> PolicyError:
    return PolicyError(
        f"not accepted: {why}",
        file=policy_file,
        hint="review it, then run `guard policy accept` in the workspace "
        "(outside any guarded command)",
    )


def _inside_known_workspace(workspace: str) -> bool:
    """Whether a registered log directory's workspace is a proper ancestor."""
    for log_dir in known_log_dirs():
        owner = os.path.dirname(log_dir)
        if workspace != owner and workspace.startswith(owner.rstrip("/") + "/"):
            return True
    return False
