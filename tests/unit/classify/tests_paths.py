"""Where the shared StateTrace command list lives (beside the checkout)."""

from __future__ import annotations

from pathlib import Path

SHARED_COMMANDS = (
    Path(__file__).resolve().parents[3].parent / "shared" / "statetrace-commands.jsonl"
)
