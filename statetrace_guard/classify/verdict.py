"""The result of one built-in spec, and small helpers the specs share.

A spec looks at one simple command's words and returns a :class:`Verdict`:
its own effects plus the commands it makes run (``nested``: wrapped argv,
``scripts``: inline shell source), which the dispatcher classifies in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from statetrace_guard.classify.model import Word
from statetrace_guard.levels import Effect

__all__ = [
    "DYNAMIC",
    "INSTALL",
    "NETWORK",
    "READ",
    "WRITE",
    "Verdict",
    "dynamic",
    "may_be_option",
    "network",
    "read",
    "texts",
    "unresolvable",
    "write",
]

READ = frozenset({Effect.READ})
WRITE = frozenset({Effect.WRITE})
NETWORK = frozenset({Effect.NETWORK})
INSTALL = frozenset({Effect.INSTALL, Effect.NETWORK})
DYNAMIC = frozenset({Effect.DYNAMIC})

# A non-static word starting with one of these may expand to text starting
# with "-", i.e. to an option the spec never saw.
_EXPANDS_AT_START = frozenset("$`*?[{~%!")  # cmd.exe: %VAR%, !VAR!


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a spec decided about one simple command.

    ``nested`` are argvs the command executes (classified recursively with
    the same rules); ``scripts`` are inline shell sources it runs (``bash``
    dialect, parsed by the walker).
    """

    effects: frozenset[Effect]
    spec: str
    reasons: tuple[str, ...] = ()
    writes: tuple[Word, ...] = ()
    urls: tuple[str, ...] = ()
    script: str | None = None
    nested: tuple[tuple[Word, ...], ...] = ()
    scripts: tuple[Word, ...] = ()
    env_sets: tuple[str, ...] = ()
    hint: str | None = None
    # Its only network use is loopback URLs spelled unmistakably (net.py).
    loopback: bool = False


def read(spec: str, reason: str = "") -> Verdict:
    """Build a read-only verdict."""
    return Verdict(READ, spec, (reason,) if reason else ())


def dynamic(spec: str, reason: str) -> Verdict:
    """Build a verdict whose effect cannot be known statically."""
    return Verdict(DYNAMIC, spec, (reason,))


def write(spec: str, targets: Sequence[Word], reason: str = "") -> Verdict:
    """Build a write verdict for ``targets`` (may be empty: no path known)."""
    return Verdict(WRITE, spec, (reason,) if reason else (), tuple(targets))


def network(spec: str, urls: Sequence[str], reason: str) -> Verdict:
    """Build a network verdict naming the hosts or URLs found."""
    return Verdict(NETWORK, spec, (reason,), urls=tuple(urls))


def texts(words: Sequence[Word]) -> tuple[str, ...]:
    """Return the words' texts."""
    return tuple([w.text for w in words])


def may_be_option(word: Word) -> bool:
    """Tell whether a non-static word could expand to an option (``-x``)."""
    return not word.static and (not word.text or word.text[0] in _EXPANDS_AT_START)


def unresolvable(word: Word) -> bool:
    """Tell whether a path word cannot be placed before it runs.

    A pure glob (``*.pyc``) stays where its static part puts it, so the
    policy can still place it; a variable, substitution, brace expansion or
    a command's input (``xargs``) cannot be placed.
    """
    return not word.static and any(mark in word.text for mark in "$`{}")
