"""Classification: argv or inline script -> simple commands with effects.

Public entry points (implemented in ``argv.py``):

* ``classify_argv(argv, ctx) -> Classification``: a top-level argv as given to
  ``guard run -- PROGRAM ARGS``; shells with inline scripts are parsed.
* ``classify_script(text, shell, ctx) -> Classification``: a script in the
  given language (``"bash"`` or ``"pwsh"``).

Neither raises on any input: bad input becomes a SimpleCommand with the
``dynamic`` effect. The parsers load on first use, not on import: importing
the data model must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statetrace_guard.classify.model import (
    Classification,
    ClassifyContext,
    SimpleCommand,
)

if TYPE_CHECKING:
    from statetrace_guard.classify.argv import classify_argv, classify_script

__all__ = [
    "Classification",
    "ClassifyContext",
    "SimpleCommand",
    "classify_argv",
    "classify_script",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - module attribute hook
    """Import the classifier entry points on first use."""
    if name in {"classify_argv", "classify_script"}:
        from statetrace_guard.classify import argv  # noqa: PLC0415

        return getattr(argv, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
