"""Session ids: next free number, race-free, without listing the directory twice."""

from __future__ import annotations

import datetime as dt

from statetrace_guard import session_ids
from statetrace_guard.session_ids import allocate_session_id

DAY = dt.date(2026, 11, 24)


def test_numbers_follow_on_and_skip_what_others_took(tmp_path, monkeypatch):
    assert allocate_session_id(tmp_path, DAY) == "2026-11-24_session-0001"
    (tmp_path / "2026-11-24_session-0002.jsonl").write_text("")  # another guard
    (tmp_path / "2026-11-24_session-0003.jsonl").write_text("")
    assert allocate_session_id(tmp_path, DAY) == "2026-11-24_session-0004"
    listed = []
    real = session_ids._highest_number
    monkeypatch.setattr(
        session_ids,
        "_highest_number",
        lambda folder, day: listed.append(day) or real(folder, day),
    )
    assert allocate_session_id(tmp_path, DAY) == "2026-11-24_session-0005"
    assert listed == []  # continued from the last claim, no listing


def test_a_fresh_process_starts_from_what_is_on_disk(tmp_path, monkeypatch):
    (tmp_path / "2026-11-24_session-0041.jsonl").write_text("")
    monkeypatch.setattr(session_ids, "_LAST_CLAIMED", {})
    assert allocate_session_id(tmp_path, DAY) == "2026-11-24_session-0042"
