"""The helper's client leaves requests of the guard to the in-process path.

Only ``guard run``'s own process serves ``guard escalate``, ``guard jobs``,
``guard run --background`` and the rest inside a script
(:mod:`statetrace_guard.sessions.requests`); the helper would run them as a
contained program, which cannot write guard's home.
"""

from __future__ import annotations

import pytest

from statetrace_guard.daemon.client import _asks_guard


@pytest.mark.parametrize(
    "argv",
    [
        ["guard", "fetch", "https://x", "--out", "y"],
        ["bash", "-c", "guard escalate --to L2 --reason 'x'"],
        ["bash", "-lc", "cd src && guard jobs"],
        ["sh", "-c", "(guard session status)"],
        ["bash", "-c", "/usr/local/bin/guard run --background -- make serve"],
        ["pwsh", "-Command", "guard approvals --mine"],
        ["bash", "-c", "x;guard jobs stop J1"],
    ],
)
def test_accepts_requests_of_the_guard(argv):
    """A word ``guard`` anywhere: in-process."""
    assert _asks_guard(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "-la"],
        ["cat", "statetrace_guard/jobs.py"],
        ["bash", "-c", "grep -rn guarded src"],
        ["git", "log", "--grep", "guardian"],
        ["python3", "-c", "import os; os.listdir('/tmp/state/guard')"],
    ],
)
def test_rejects_commands_that_only_mention_it(argv):
    """Paths and words that contain guard: the helper serves them."""
    assert not _asks_guard(argv)
