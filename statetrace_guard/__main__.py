"""``python -m statetrace_guard``: the same entry point as the ``guard`` script."""

from __future__ import annotations

from statetrace_guard.entry import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
