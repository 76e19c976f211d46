"""The pure chain: canonical JSON, hashes, sealing and checking lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statetrace_guard.audit import chain
from statetrace_guard.audit.chain import ChainState, header_record, render, seal
from statetrace_guard.audit.record import DEFAULT_REGISTRY
from statetrace_guard.audit.verify import split_lines


def build(count: int, start: int = 0) -> list[bytes]:
    """A valid file of a header and ``count`` generic records."""
    state = ChainState.empty()
    lines = []
    header = seal(
        header_record("session", "2026-01-01T00:00:00.000Z", "0.1.0", session_id="s"),
        state,
    )
    lines.append(render(header))
    state = ChainState.after(header)
    for n in range(count):
        record = seal(
            {
                "schema_version": 1,
                "event": "note",
                "n": n + start,
                "ts": f"2026-01-01T00:00:{n % 60:02d}.{n:03d}Z"[:24],
                "text": "héllo ✓",
            },
            state,
        )
        lines.append(render(record))
        state = ChainState.after(record)
    return lines


class TestCanonical:
    def test_sorted_compact_utf8(self):
        """Keys are sorted, separators compact, non-ASCII kept as UTF-8."""
        assert chain.canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()

    def test_hash_excludes_own_sha(self):
        """The hash ignores the record's own sha256 key."""
        record = {"a": 1}
        assert chain.record_hash(record) == chain.record_hash({**record, "sha256": "x"})

    def test_rfc3339_ms(self):
        """Times are UTC with milliseconds and a Z."""
        moment = datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)
        assert chain.rfc3339_ms(moment) == "2026-01-02T03:04:05.678Z"
        assert len(chain.now_ms()) == 24


class TestVerifyLines:
    def test_accepts_valid_file(self):
        """A freshly built file is intact."""
        verdict = chain.verify_lines(build(5), DEFAULT_REGISTRY.problem)
        assert verdict.intact
        assert verdict.records == 6

    def test_rejects_empty(self):
        """An empty file has no header."""
        assert not chain.verify_lines([]).intact

    def test_rejects_gap(self):
        """A deleted middle record is a seq gap."""
        lines = build(5)
        del lines[3]
        verdict = chain.verify_lines(lines)
        assert verdict.error_line == 4
        assert "seq" in (verdict.error or "")

    def test_rejects_swap(self):
        """Reordered records are detected."""
        lines = build(5)
        lines[2], lines[3] = lines[3], lines[2]
        assert chain.verify_lines(lines).error_line == 3

    def test_rejects_resealed_edit_without_following_links(self):
        """Editing and re-hashing one record breaks the next record's link."""
        lines = build(4)
        record = json.loads(lines[2])
        record["text"] = "changed"
        record["sha256"] = chain.record_hash(record)
        lines[2] = render(record)
        verdict = chain.verify_lines(lines)
        assert verdict.error_line == 4
        assert "prev_sha256" in (verdict.error or "")

    def test_rejects_time_going_backwards(self):
        """A record earlier than its predecessor fails the time order."""
        lines = build(1)
        state = ChainState.after(json.loads(lines[-1]))
        old = seal(
            {"schema_version": 1, "event": "x", "ts": "2000-01-01T00:00:00.000Z"}, state
        )
        verdict = chain.verify_lines([*lines, render(old)])
        assert "backwards" in (verdict.error or "")

    def test_rejects_non_canonical_line(self):
        """The same record with other spacing is not the line that was hashed."""
        lines = build(2)
        lines[1] = json.dumps(json.loads(lines[1]), sort_keys=True).encode() + b"\n"
        assert "canonical" in (chain.verify_lines(lines).error or "")

    def test_rejects_second_header(self):
        """Only line 1 may be a header."""
        lines = build(1)
        state = ChainState.after(json.loads(lines[-1]))
        again = seal(header_record("session", "2026-01-01T00:00:00.000Z", "0"), state)
        assert "header" in (chain.verify_lines([*lines, render(again)]).error or "")

    def test_rejects_bad_json_and_non_objects(self):
        """Garbage and arrays are reported with their line."""
        assert chain.verify_lines([b"{nope\n"]).error_line == 1
        assert "object" in (chain.verify_lines([b"[1]\n"]).error or "")

    def test_reports_torn_tail(self):
        """A last line without newline is torn: not intact, earlier lines counted."""
        lines = build(3)
        lines[-1] = lines[-1][:20]
        verdict = chain.verify_lines(lines)
        assert verdict.torn
        assert not verdict.intact
        assert verdict.records == 3

    def test_schema_errors_are_reported(self):
        """The validator's complaint is the verdict's error."""
        verdict = chain.verify_lines(build(1), lambda _record: "nope")
        assert verdict.error == "nope"
        assert verdict.error_line == 1


MUTATIONS = st.sampled_from(
    ["flip", "delete_byte", "delete_line", "swap", "dup", "insert_byte"]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    kind=MUTATIONS,
    where=st.integers(min_value=0),
    other=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_tamper_is_noticed(kind, where, other, bit):
    """Flipping, deleting, inserting bytes or deleting, swapping, duplicating lines
    is always noticed (with the stored head as anchor, tail cuts too)."""
    from statetrace_guard.audit.verify import FileReport, _find_anchor  # noqa: PLC0415

    lines = build(6)
    head = json.loads(lines[-1])["sha256"]
    data = bytearray(b"".join(lines))
    if kind in {"flip", "delete_byte", "insert_byte"}:
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << bit
        elif kind == "delete_byte":
            del data[at]
        else:
            data.insert(at, 0x20 + bit)
        tampered = split_lines(bytes(data))
    else:
        tampered = list(lines)
        i, j = where % len(tampered), other % len(tampered)
        if kind == "delete_line":
            del tampered[i]
        elif kind == "swap":
            if i == j:
                j = (i + 1) % len(tampered)
            tampered[i], tampered[j] = tampered[j], tampered[i]
        else:
            tampered.insert(j, tampered[i])
    verdict = chain.verify_lines(tampered, DEFAULT_REGISTRY.problem)
    anchor = _find_anchor(tampered, head, verdict)
    report = FileReport(chain_path(), verdict, head, anchor)
    assert not report.ok


def chain_path():
    from pathlib import Path  # noqa: PLC0415

    return Path("mem.jsonl")


@pytest.mark.parametrize("count", [0, 1, 50])
def test_state_after_last_record(count):
    """ChainState.after gives the next seq and head."""
    lines = build(count)
    last = json.loads(lines[-1])
    state = ChainState.after(last)
    assert state.seq == count
    assert state.head == last["sha256"]


def test_rejects_missing_timestamp():
    """A record without ts (or Timestamp) is refused."""
    lines = build(0)
    state = ChainState.after(json.loads(lines[-1]))
    record = seal({"schema_version": 1, "event": "x"}, state)
    assert chain.verify_lines([*lines, render(record)]).error == "missing timestamp"
