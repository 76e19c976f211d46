"""Small edge cases of the audit modules, one behaviour each."""

from __future__ import annotations

import enum
import json
from pathlib import Path

from audit_helpers import make_facts

from statetrace_guard.audit import chain, review, table
from statetrace_guard.audit.chain import ChainState, render, seal
from statetrace_guard.audit.netops import extract_arguments
from statetrace_guard.audit.redact import Redactor
from statetrace_guard.audit.trail import Trail, jsonable
from statetrace_guard.audit.verify import FileReport, verify_file


class Color(enum.IntEnum):
    RED = 1


def test_rejects_non_integer_seq():
    """A seq that is not an integer is refused."""
    line = render(
        {"event": "log.header", "seq": "0", "ts": "x", "prev_sha256": "0" * 64}
    )
    assert "seq" in (chain.verify_lines([line]).error or "")


def test_jsonable_keeps_int_subclasses():
    """Enum members that are ints stay as they are (json renders their value)."""
    assert jsonable({"c": Color.RED})["c"] == 1


def test_trail_close_and_reuse(log_dir):
    """close() releases the files; the next record reopens them."""
    trail = Trail(log_dir, "s1", front="direct")
    trail.started(make_facts(), {})
    trail.close()
    trail.started(make_facts(), {})
    assert verify_file(log_dir / "Sessions" / "s1.jsonl").verdict.records == 3


def test_secret_query_in_fragment_and_bad_url(tmp_path):
    """Bad URLs are left alone; sources repeat only once."""
    redactor = Redactor(b"k" * 32)
    assert redactor.text("http://[::1") == "http://[::1"
    args = extract_arguments(
        [
            "pwsh",
            "-c",
            "Install-Module X -Source PSGallery; Find-Module -Source PSGallery",
        ],
        [],
        [],
        blocked=False,
    )
    assert args["Sources"] == ["PSGallery"]


def test_review_time_edge_cases():
    """Records without or with bad times fail a time filter; long durations."""
    window = review.Filter(since=review.parse_time("2000-01-01"))
    assert not window.accepts({"event": "x"})
    assert not window.accepts({"event": "x", "ts": "garbage"})
    assert table._duration(125_000) == "2m05s"
    assert table._duration(7_200_000) == "2h"


def test_follow_survives_missing_file(tmp_path):
    """follow keeps polling a file that does not exist (yet)."""
    stream = review.follow(
        tmp_path / "none.jsonl", stop=lambda: True, sleep=lambda _: None
    )
    assert list(stream) == []


def test_anchor_genesis_never_matches():
    """The all-zero head is never an anchor line."""
    state = ChainState.empty()
    header = seal(chain.header_record("x", "2026-01-01T00:00:00.000Z", "0"), state)
    lines = [render(header)]
    verdict = chain.verify_lines(lines)
    report = FileReport(Path("x"), verdict, chain.GENESIS, 0)
    assert not report.ok
    assert json.loads(lines[0])["seq"] == 0
