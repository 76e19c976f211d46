"""Reading for operators: rows, filters, summaries, following."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit import review
from statetrace_guard.audit.table import Layout, command_text
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
    # Its guard is this (live) process: the command is still running.
    trail.started(make_facts(("sleep", "100"), pid=os.getpid()), {})
    other = Trail(log_dir, "s2", front="direct")
    other.started(make_facts(("ls",), session_id="s2", task_id="ST-9"), {})
    return log_dir


def entries(paths):
    return [e for e in review.read_entries(paths) if isinstance(e, review.Entry)]


def test_rows_pair_started_and_finished(trail_files):
    """One row per command: finished, blocked, or still unfinished."""
    rows = list(review.rows(entries([session_path(trail_files, "s1")])))
    assert [(command_text(r.record), r.state) for r in rows] == [
        ("pytest -q", "finished"),
        ("make test", "finished"),
        ("curl https://example.com/x", "blocked"),
        ("sleep 100", "unfinished"),
    ]
    assert rows[0].started is not None
    assert rows[0].started["event"] == "command.started"


def test_open_start_whose_guard_is_gone_is_dangling(log_dir):
    """No finish and no live guard behind the start: the row says dangling."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    trail = Trail(log_dir, "s1", front="direct")
    trail.started(make_facts(("sleep", "100"), pid=gone.pid), {})
    rows = list(review.rows(entries([session_path(log_dir, "s1")])))
    assert [r.state for r in rows] == ["dangling"]


def test_rows_wait_for_earlier_commands_and_stay_bounded(trail_files):
    """Rows come out in start order; past the limit an open start is let go."""
    rows = list(
        review.rows(entries([session_path(trail_files, "s1")]), pending_limit=0)
    )
    expected = ["unfinished", "finished", "unfinished", "finished", "blocked"]
    assert [r.state for r in rows] == [*expected, "unfinished"]


def test_format_row_fits_80_columns(trail_files):
    """Every row fits 80 columns and blocked ones say BLOCK."""
    rows = list(review.rows(entries(review.session_files(trail_files))))
    layout = Layout(80, ("s1", "s2"))
    lines = "\n".join(layout.line(row) for row in rows).splitlines()
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
    builder = review.SummaryBuilder(command_text)
    for row in review.rows(entries([session_path(trail_files, "s1")])):
        builder.add(row)
    summary = builder.build()
    assert summary.blocked_counts[("L1", "network")] == 1
    assert summary.ran[("L1", "write")] == 1
    assert summary.hosts == {"example.com": 1}
    assert command_text(summary.slowest[0].record) == "pytest -q"
    assert summary.failures == {("make test", "2"): 1}
    assert summary.blocked == {("curl https://example.com/x", "network needs L3"): 1}
    assert summary.unfinished == 1
    assert summary.as_json()["blocked"][0]["deciding_reason"] == "network needs L3"


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


def test_merged_entries_interleave_sessions_by_time(tmp_path):
    """Records of overlapping sessions come out in time order."""
    log_dir = tmp_path / "Logs"
    first = Trail(log_dir, "a", front="direct")
    second = Trail(log_dir, "b", front="direct")
    for trail, event in ((first, "x.one"), (second, "x.two"), (first, "x.three")):
        time.sleep(0.003)  # records carry milliseconds: keep them apart
        trail.event(event, {})
    paths = [session_path(log_dir, "a"), session_path(log_dir, "b")]
    events = [
        item.record["event"]
        for item in review.merged_entries(paths)
        if isinstance(item, review.Entry) and item.record["event"].startswith("x.")
    ]
    assert events == ["x.one", "x.two", "x.three"]


def test_last_entries_reads_only_the_tail(trail_files):
    """The last records of several files, in time order."""
    paths = review.session_files(trail_files)
    last = review.last_entries(paths, 2)
    assert len(last) == 2
    assert last[-1].record["argv"] == ["ls"]
    assert review.last_entries(paths, 0) == []
    picked = review.last_entries(paths, 5, review.Filter(decision="block"))
    assert [item.record["event"] for item in picked] == ["command.blocked"]


def test_follow_dir_sees_new_sessions(trail_files):
    """follow_dir yields records appended to existing and new files."""
    calls = []

    def sleep(_):
        calls.append(1)
        Trail(trail_files, "s3", front="direct").event("x.new", {})

    stream = review.follow_dir(
        trail_files / "Sessions", stop=lambda: len(calls) >= 2, sleep=sleep
    )
    events = [item.record["event"] for item in stream]
    assert events == ["log.header", "x.new", "x.new"]
