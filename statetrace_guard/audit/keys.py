"""This installation's chain key, derived from the key in guard's home.

Guard's home holds one random key (``redact.key``, created on first use,
mode 0600). Redaction uses it directly; the chain uses a key derived from it
(:meth:`ChainKey.derive`), so neither use can be turned against the other.
Writers create the key when it is missing; readers never do: a reader
without it says so (``guard verify`` on another machine).
"""

from __future__ import annotations

from pathlib import Path

from statetrace_guard.audit.chain import ChainKey
from statetrace_guard.audit.redact import key_file, load_key, read_key

__all__ = ["chain_key", "find_chain_key"]

# The key file never changes once created (it is linked into place whole),
# so each process derives a home's chain key once.
_DERIVED: dict[Path, ChainKey] = {}


def chain_key(path: Path | None = None) -> ChainKey:
    """The chain key, creating guard's home key on first use (writers).

    Raises:
        AuditError: the key cannot be read or created.
    """
    where = key_file(path)
    found = _DERIVED.get(where)
    if found is None:
        found = _DERIVED[where] = ChainKey.derive(load_key(where))
    return found


def find_chain_key(path: Path | None = None) -> ChainKey | None:
    """The chain key if guard's home has one; never creates it (readers).

    Raises:
        AuditError: the key exists but cannot be read.
    """
    where = key_file(path)
    found = _DERIVED.get(where)
    if found is None:
        root = read_key(where)
        if root is None:
            return None
        found = _DERIVED[where] = ChainKey.derive(root)
    return found
