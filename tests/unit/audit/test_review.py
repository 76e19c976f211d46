"""Reading for operators: rows, filters, summaries, following."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit import review
from statetrace_guard.audit.trail import Trail, session_path


@pytest.fixture
def trail_files(log_dir):
    trail = Trail(log_dir, "s1", front="direct")
    ok = make_facts(("pytest", "-q"), effects=("read", "write"))
    trail.started(ok, {})
    trail.finished(ok, {"exit_code": 0, "duration_ms": 2500})
    bad = make_facts(("make", "test"), pid=7)
    trail.started(bad, {})
    trail.finished(bad, {"exit_code": 2, "duration_ms": 90})
    trail.blocked(
        make_facts(
            ("curl", "https://example.com/x"),
            decision="block",
            effects=("network",),
            network=True,
            urls=("https://example.com/x",),
            reasons=("network needs L3",),
        )
    )
    trail.started(make_facts(("sleep", "100"), pid=9), {})
    other = Trail(log_dir, "s2", front="direct")
    other.started(make_facts(("ls",), session_id="s2", task_id="ST-9"), {})
    return log_dir


def entries(paths):
    return [e for e in review.read_entries(paths) if isinstance(e, review.Entry)]


def test_rows_pair_started_and_finished(trail_files):
    """One row per command: finished, blocked, or still unfinished."""
    rows = review.command_rows(entries([session_path(trail_files, "s1")]))
    assert [(r.command, r.state) for r in rows] == [
        ("pytest -q", "finished"),
        ("make test", "finished"),
        ("curl https://example.com/x", "blocked"),
        ("sleep 100", "unfinished"),
    ]


def test_format_row_fits_80_columns(trail_files):
    """Every row fits 80 columns and blocked ones say BLOCK."""
    rows = review.command_rows(entries(review.session_files(trail_files)))
    lines = [review.format_row(row) for row in rows]
    assert all(len(line) <= 80 for line in lines)
    assert any(" BLOCK " in line for line in lines)
    assert "2.5s" in lines[0]
    assert "90ms" in lines[1]


def test_filters(trail_files):
    """Session, task, decision, effect, grep and time filters."""
    all_entries = entries(review.session_files(trail_files))

    def count(f):
        return len([e for e in all_entries if f.accepts(e.record)])

    assert count(review.Filter(session="s2")) == 2
    assert count(review.Filter(task="ST-9")) == 1
    assert count(review.Filter(decision="block")) == 1
    assert count(review.Filter(effect="network")) == 1
    assert count(review.Filter(grep="PYTEST")) == 2
    assert count(review.Filter(since=datetime.now(UTC) + timedelta(hours=1))) == 0
    assert count(review.Filter(until=datetime.now(UTC) + timedelta(hours=1))) == len(
        all_entries
    )


def test_summary(trail_files):
    """Counts per level and effect, blocked reasons, hosts, slowest, failures."""
    rows = review.command_rows(entries([session_path(trail_files, "s1")]))
    summary = review.summarize(rows)
    assert summary.blocked[("L1", "network")] == 1
    assert summary.ran[("L1", "write")] == 1
    assert summary.hosts == {"example.com": 1}
    assert summary.slowest[0].command == "pytest -q"
    assert [r.command for r in summary.failures] == ["make test"]
    text = "\n".join(review.format_summary(summary))
    assert "network needs L3" in text
    assert "example.com (1)" in text


def test_malformed_lines_are_reported_and_skipped(trail_files):
    """A bad line is named by file and line; reading goes on."""
    path = session_path(trail_files, "s1")
    with path.open("ab") as handle:
        handle.write(b"{broken\n[1]\n")
    items = list(review.read_entries([path, trail_files / "missing.jsonl"]))
    bad = [i for i in items if isinstance(i, review.Malformed)]
    assert [b.line for b in bad] == [8, 9, 0]
    assert bad[0].describe().startswith(f"{path}:8:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.000Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02", datetime(2026, 1, 2, tzinfo=UTC)),
        ("30m", datetime(2026, 1, 1, 11, 30, tzinfo=UTC)),
        ("1d", datetime(2025, 12, 31, 12, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    """Absolute and relative times."""
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert review.parse_time(text, now) == expected


def test_follow_reads_new_lines(trail_files):
    """follow yields existing records, then ones appended later."""
    path = session_path(trail_files, "s2")
    calls = []

    def sleep(_):
        calls.append(1)
        Trail(trail_files, "s2", front="direct").event("x.y", {})

    stream = review.follow(path, stop=lambda: len(calls) >= 2, sleep=sleep)
    events = [item.record["event"] for item in stream if isinstance(item, review.Entry)]
    assert events == ["log.header", "command.started", "x.y", "x.y"]


def test_newest_session(trail_files):
    """The newest session is the last changed file."""
    assert review.newest_session(trail_files) == session_path(trail_files, "s2")
    assert review.newest_session(trail_files / "none") is None
