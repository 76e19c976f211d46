"""The fault suite: real processes, broken on purpose; see faultlib."""

from __future__ import annotations

import sys

import pytest
from faultlib import Fleet


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is a fault scenario (``-m "not faults"`` skips them)."""
    for item in items:
        if "tests/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fleet(tmp_path):
    """A private guard home and workspace; every process of it ends afterwards."""
    if sys.platform != "linux":
        pytest.skip("the resident helper and these faults are Linux only")
    made = Fleet(tmp_path / "fleet")
    try:
        yield made
    finally:
        made.close()
