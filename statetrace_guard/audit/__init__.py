"""The audit trail: hash-chained JSON Lines logs, redaction, NetOps records.

Modules: :mod:`.chain` (pure hashing and checking), :mod:`.record` (the schema
for reading back), :mod:`.log` (locked appends), :mod:`.redact`,
:mod:`.netops`, :mod:`.trail` (the facade ``guard run`` uses), :mod:`.verify`
and :mod:`.review` (reading for ``guard verify`` and ``guard log``).

Nothing is imported here, so ``guard run`` loads only what it uses.
"""

from __future__ import annotations

__all__: list[str] = []
