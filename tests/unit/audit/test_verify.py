"""verify_file / verify_paths on real files, with anchors."""

from __future__ import annotations

import shutil

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit.trail import Trail, session_path
from statetrace_guard.audit.verify import (
    discover,
    format_anchor,
    parse_anchors,
    verify_file,
    verify_paths,
)
from statetrace_guard.errors import AuditError
from statetrace_guard.paths import guard_home


@pytest.fixture
def session(log_dir):
    trail = Trail(log_dir, "s1", front="direct")
    for n in range(5):
        trail.blocked(make_facts(("echo", str(n)), decision="block"))
    return session_path(log_dir, "s1")


def test_intact_file(session):
    """A written file verifies with its record count."""
    report = verify_file(session)
    assert report.ok
    assert report.verdict.records == 6
    assert "ok (6 records)" in report.describe()
    assert report.as_json()["ok"] is True


def test_anchor_detects_tail_truncation(session):
    """Cutting the last record passes the chain but fails the anchor."""
    head = verify_file(session).head
    lines = session.read_bytes().splitlines(keepends=True)
    session.write_bytes(b"".join(lines[:-1]))
    # Elsewhere (no head anchored in this guard's home) the chain holds...
    shutil.rmtree(guard_home() / "heads")
    assert verify_file(session).ok
    # ... and only the anchor the operator kept shows the cut.
    report = verify_file(session, expect_head=head)
    assert not report.ok
    assert "anchor" in report.describe()


def test_anchor_survives_later_appends(session, log_dir):
    """An older anchor still matches after more records are appended."""
    head = verify_file(session).head
    Trail(log_dir, "s1", front="direct").event("x.y", {})
    report = verify_file(session, expect_head=head)
    assert report.ok
    assert report.anchor_line == 6


def test_edit_reports_line(session):
    """An edited record is reported with its line number."""
    session.write_bytes(session.read_bytes().replace(b'"echo","3"', b'"echo","4"'))
    report = verify_file(session)
    assert not report.ok
    assert report.describe().startswith(f"{session}:5:")


def test_unreadable(tmp_path):
    """A missing file is an AuditError (exit 4)."""
    with pytest.raises(AuditError):
        verify_file(tmp_path / "nope.jsonl")


def test_discover_and_paths(session, log_dir):
    """A log directory expands to its Sessions and NetOps files."""
    Trail(log_dir, "s2", front="direct").blocked(
        make_facts(session_id="s2", network=True, decision="block")
    )
    files = discover(log_dir)
    assert [f.parent.name for f in files] == ["Sessions", "Sessions", "NetOps"]
    reports = verify_paths([log_dir])
    assert len(reports) == 3
    assert all(r.ok for r in reports)
    plain = log_dir / "plain"
    plain.mkdir()
    (plain / "a.jsonl").write_bytes(session.read_bytes())
    assert [r.ok for r in verify_paths([plain])] == [True]


def test_anchor_round_trip(session):
    """--anchor output parses back into anchors."""
    report = verify_file(session)
    anchors = parse_anchors(format_anchor(report) + "\n\n")
    assert anchors == {session: report.head}
    assert verify_paths([session], anchors)[0].ok


def test_rejects_bad_anchor_lines():
    """Anchor lines must be '<sha256>  <path>'."""
    with pytest.raises(AuditError):
        parse_anchors("abc  x")


def test_torn_description(session):
    """An unrecovered torn tail is reported as such."""
    with session.open("ab") as handle:
        handle.write(b'{"par')
    report = verify_file(session)
    assert not report.ok
    assert "torn" in report.describe()


class TestHomeAnchors:
    def test_cutting_the_last_records_fails(self, session):
        """The macs of a truncated log still hold; guard's home anchor does not."""
        lines = session.read_bytes().splitlines(keepends=True)
        session.write_bytes(b"".join(lines[:-2]))
        report = verify_file(session)
        assert not report.ok
        assert "cut from its end" in report.describe()

    def test_a_deleted_log_is_reported_missing(self, session, log_dir):
        """Verifying a log directory names an anchored log that is gone."""
        session.unlink()
        (report,) = verify_paths([log_dir])
        assert not report.ok
        assert report.path == session.resolve()
        assert "missing" in report.describe()

    def test_a_log_moved_aside_and_restarted_is_whole(self, session, log_dir):
        """A new file at the same path re-anchors: no false alarm."""
        session.rename(session.with_suffix(".old"))
        Trail(log_dir, "s1", front="direct").event("x.y", {})
        assert verify_file(session).ok
