"""The pure chain: canonical JSON, hashes, sealing and checking lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

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


def _verify_bytes(data: bytes, head: str | None = None, **options):
    """verify_file on ``data`` written to a scratch file (the real reader)."""
    import tempfile  # noqa: PLC0415

    from statetrace_guard.audit.verify import verify_file  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.jsonl"
        path.write_bytes(data)
        return verify_file(path, head, **options)


def _tamper(lines, kind, where, other, bit):
    data = bytearray(b"".join(lines))
    if kind in {"flip", "delete_byte", "insert_byte"}:
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << bit
        elif kind == "delete_byte":
            del data[at]
        else:
            data.insert(at, 0x20 + bit)
        return bytes(data)
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
    return b"".join(tampered)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    kind=MUTATIONS,
    where=st.integers(min_value=0),
    other=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_tamper_is_noticed(kind, where, other, bit):
    """Flipping, deleting, inserting bytes or deleting, swapping, duplicating lines
    is always noticed by the one chain verifier, in verify and in replay alike
    (with the stored head as anchor, tail cuts too)."""
    lines = build(6)
    head = json.loads(lines[-1])["sha256"]
    tampered = _tamper(lines, kind, where, other, bit)
    assert not _verify_bytes(tampered, head, key=None).ok
    check = chain.ChainCheck()
    list(check.records(split_lines(tampered)))
    assert not check.verdict.intact or tampered.count(head.encode()) == 0


KEY = chain.ChainKey.derive(b"k" * 32)


def keyed(count: int) -> list[bytes]:
    """A keyed file: a header naming KEY and ``count`` records with macs."""
    state = ChainState.empty()
    header = seal(
        {
            **header_record("session", "2026-01-01T00:00:00.000Z", "0", session_id="s"),
            "key_id": KEY.key_id,
        },
        state,
        KEY,
    )
    lines = [render(header)]
    state = ChainState.after(header)
    for n in range(count):
        record = seal(
            {"schema_version": 1, "event": "note", "n": n, "ts": header["ts"]},
            state,
            KEY,
        )
        lines.append(render(record))
        state = ChainState.after(record)
    return lines


def reseal(lines: list[bytes], key: chain.ChainKey | None) -> list[bytes]:
    """What a writer does after editing: recompute every hash (and mac if it can)."""
    state = ChainState.empty()
    out = []
    for line in lines:
        record = json.loads(line)
        sealed = seal(record, state, key)
        if key is None and "mac" in record:
            sealed["mac"] = record["mac"]  # keeps the old mac: it cannot make one
        out.append(render(sealed))
        state = ChainState.after(sealed)
    return out


@settings(max_examples=150, deadline=None)
@given(
    victim=st.integers(min_value=0, max_value=3),
    drop_macs=st.booleans(),
    change=st.sampled_from(["edit", "delete", "unkey_header"]),
)
def test_a_writer_without_the_key_cannot_reseal(victim, drop_macs, change):
    """K4: any rewrite re-sealed without guard's key fails verify where the key is.

    (Cutting the last records re-seals nothing: guard's home anchors the head
    for that, see test_verify.)"""
    lines = keyed(4)
    records = [json.loads(line) for line in lines]
    if change == "edit":
        records[victim]["n"] = 99
    elif change == "delete" and victim:
        del records[victim]
    else:
        records[0].pop("key_id", None)
    if drop_macs:
        for record in records:
            record.pop("mac", None)
    forged = reseal([render(r) for r in records], None)
    report = _verify_bytes(b"".join(forged), key=KEY)
    assert not report.ok
    assert report.ok is False
    # Without the key, only the chain can be checked, and the report says so.
    elsewhere = _verify_bytes(b"".join(forged), key=None)
    assert not elsewhere.verdict.authenticated


def test_keyed_log_verifies_with_its_key_only():
    """The key holder authenticates; another home must say it cannot."""
    data = b"".join(keyed(3))
    assert _verify_bytes(data, key=KEY).verdict.authenticated
    other = chain.ChainKey.derive(b"o" * 32)
    report = _verify_bytes(data, key=other)
    assert not report.ok
    assert "another guard home" in report.describe()
    assert _verify_bytes(data, key=other, foreign=True).ok
    no_key = _verify_bytes(data, key=None)
    assert no_key.ok
    assert "has no key" in no_key.describe()


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
