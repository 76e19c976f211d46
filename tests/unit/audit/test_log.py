"""Locked appends on real files and real processes: no loss, no tearing."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from statetrace_guard.audit import log as log_module
from statetrace_guard.audit.chain import ChainKey, header_record
from statetrace_guard.audit.keys import chain_key
from statetrace_guard.audit.log import ChainWriter, read_tail
from statetrace_guard.audit.verify import verify_file
from statetrace_guard.errors import AuditError


def writer(path: Path, **options) -> ChainWriter:
    return ChainWriter(
        path,
        lambda ts: header_record("session", ts, "0.1.0", session_id="s1"),
        identity={"session_id": "s1"},
        **options,
    )


def note(n: int) -> dict[str, Any]:
    return {"schema_version": 1, "event": "note", "n": n}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


class TestAppend:
    def test_first_append_writes_header(self, tmp_path):
        """A new file starts with a header; records chain from seq 1."""
        path = tmp_path / "Sessions" / "s1.jsonl"
        written = writer(path).append(note(1))
        lines = records(path)
        assert [r["event"] for r in lines] == ["log.header", "note"]
        assert written == lines[1]
        assert written["seq"] == 1
        assert verify_file(path).ok

    def test_two_writers_share_one_chain(self, tmp_path):
        """Writers that interleave still produce one unbroken chain."""
        path = tmp_path / "a.jsonl"
        first, second = writer(path), writer(path)
        for n in range(10):
            (first if n % 3 else second).append(note(n))
        assert [r["seq"] for r in records(path)] == list(range(11))
        assert verify_file(path).ok

    def test_durable_append(self, tmp_path):
        """Durable appends fsync and give the same file."""
        path = tmp_path / "d.jsonl"
        w = writer(path, durable=True)
        for n in range(3):
            w.append(note(n))
        assert verify_file(path).ok

    def test_time_never_goes_backwards(self, tmp_path):
        """A clock stepping back still gives non-decreasing ts."""
        times = iter(
            [
                "2026-01-01T00:00:05.000Z",
                "2026-01-01T00:00:05.000Z",
                "2026-01-01T00:00:01.000Z",
            ]
        )
        path = tmp_path / "t.jsonl"
        w = ChainWriter(
            path, lambda ts: header_record("x", ts, "0"), clock=lambda: next(times)
        )
        w.append(note(1))
        w.append(note(2))
        assert [r["ts"] for r in records(path)][-1] == "2026-01-01T00:00:05.000Z"
        assert verify_file(path).ok

    def test_large_record_tail_is_read(self, tmp_path):
        """A last line longer than one read block is still found."""
        path = tmp_path / "big.jsonl"
        writer(path).append({**note(1), "blob": "x" * 200_000})
        writer(path).append(note(2))
        assert verify_file(path).ok

    def test_read_tail_of_empty_and_partial(self, tmp_path):
        """read_tail handles no newline at all."""
        path = tmp_path / "p"
        path.write_bytes(b"abc")
        fd = os.open(path, os.O_RDONLY)
        try:
            tail = read_tail(fd, 3)
        finally:
            os.close(fd)
        assert tail.last_line is None
        assert tail.torn == b"abc"


class TestTornTail:
    def test_recovers_partial_last_line(self, tmp_path):
        """A partial line moves to <file>.torn and a log.recovered record follows."""
        path = tmp_path / "s1.jsonl"
        w = writer(path)
        w.append(note(1))
        with path.open("ab") as handle:
            handle.write(b'{"event":"note","n":2,"sch')
        report = verify_file(path)
        assert report.verdict.torn
        assert not report.ok
        writer(path).append(note(3))
        lines = records(path)
        assert [r["event"] for r in lines] == [
            "log.header",
            "note",
            "log.recovered",
            "note",
        ]
        assert lines[2]["torn_bytes"] == 26
        assert lines[2]["session_id"] == "s1"
        assert Path(f"{path}.torn").read_bytes() == b'{"event":"note","n":2,"sch\n'
        report = verify_file(path)
        assert report.ok
        assert report.verdict.recoveries == (3,)
        assert "recovered" in report.describe()

    def test_recovers_torn_header(self, tmp_path):
        """A file holding only a torn header gets a fresh header, then recovery."""
        path = tmp_path / "s1.jsonl"
        path.write_bytes(b'{"event":"log.hea')
        writer(path).append(note(1))
        assert [r["event"] for r in records(path)] == [
            "log.header",
            "log.recovered",
            "note",
        ]
        assert verify_file(path).ok

    def test_cached_writer_notices_foreign_tear(self, tmp_path):
        """A writer whose cache is stale re-reads the tail."""
        path = tmp_path / "s1.jsonl"
        w = writer(path)
        w.append(note(1))
        with path.open("ab") as handle:
            handle.write(b"{")
        w.append(note(2))
        assert verify_file(path).ok

    def test_refuses_damaged_last_line(self, tmp_path):
        """A complete but invalid last line cannot be chained to: AuditError."""
        path = tmp_path / "s1.jsonl"
        writer(path).append(note(1))
        with path.open("ab") as handle:
            handle.write(b"garbage\n")
        with pytest.raises(AuditError, match="cannot continue"):
            writer(path).append(note(2))


class TestFailures:
    def test_lock_timeout(self, tmp_path):
        """A lock held elsewhere beyond the bound gives AuditError."""
        path = tmp_path / "s1.jsonl"
        writer(path).append(note(1))
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                import sys, time
                from filelock import FileLock
                with FileLock({str(path) + ".lock"!r}):
                    print('held', flush=True)
                    time.sleep(30)
            """),
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == b"held"
            started = time.monotonic()
            with pytest.raises(AuditError, match="lock"):
                writer(path, lock_timeout=0.3).append(note(2))
            assert time.monotonic() - started < 5
        finally:
            holder.kill()
            holder.communicate()

    def test_read_only_directory(self, tmp_path):
        """A read-only log directory gives AuditError (a ro mount when root)."""
        target = tmp_path / "ro"
        target.mkdir()
        mounted = _mount(target, "ro,size=64k")
        if not mounted:
            if os.geteuid() == 0:
                pytest.skip("root ignores permissions and tmpfs cannot be mounted")
            target.chmod(0o555)
        try:
            with pytest.raises(AuditError):
                writer(target / "Sessions" / "s1.jsonl").append(note(1))
        finally:
            _unmount(target) if mounted else target.chmod(0o755)

    def test_full_file_system_tmpfs(self, tmp_path):
        """A full tmpfs gives AuditError and leaves no partial line behind."""
        target = tmp_path / "full"
        target.mkdir()
        if not _mount(target, "size=64k"):
            pytest.skip("cannot mount a tmpfs here (not root or no permission)")
        path = target / "s1.jsonl"
        w = writer(path)

        def fill():
            for n in range(10_000):
                w.append({**note(n), "pad": "p" * 1000})

        try:
            with pytest.raises(AuditError):
                fill()
            report = verify_file(path)
            assert report.ok, report.describe()
        finally:
            w.close()
            _unmount(target)

    def test_injected_enospc(self, tmp_path, monkeypatch):
        """An ENOSPC from write gives AuditError and the file is cut back."""
        path = tmp_path / "s1.jsonl"
        w = writer(path)
        w.append(note(1))
        size = path.stat().st_size
        real_write = os.write

        def short_write(fd, data):
            real_write(fd, data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", short_write)
        with pytest.raises(AuditError, match="No space"):
            w.append(note(2))
        monkeypatch.setattr(os, "write", real_write)
        assert path.stat().st_size == size
        assert verify_file(path).ok

    def test_short_write_is_an_error(self, tmp_path, monkeypatch):
        """A write that returns short is treated as a full disk."""
        path = tmp_path / "s1.jsonl"
        chain_key()  # guard's home key exists before writes go short
        real_write = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:5]))
        with pytest.raises(AuditError, match="short write"):
            writer(path).append(note(1))
        monkeypatch.setattr(os, "write", real_write)
        assert not path.exists()  # never an empty log (issue 14.8)
        assert list(tmp_path.iterdir()) == [tmp_path / "s1.jsonl.lock"]

    def test_unwritable_parent(self, tmp_path):
        """A log directory that is a file gives AuditError."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(AuditError):
            writer(blocker / "Sessions" / "s1.jsonl").append(note(1))


def _mount(target: Path, options: str) -> bool:
    """Mount a tmpfs on target; False when not permitted."""
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    return result.returncode == 0


def _unmount(target: Path) -> None:
    """Unmount; lazily if something still holds the mount."""
    if subprocess.run(["umount", str(target)], check=False).returncode:
        subprocess.run(["umount", "-l", str(target)], check=False)


APPENDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from statetrace_guard.audit.trail import Trail
    log_dir, count, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    trail = Trail(log_dir, "shared", front="direct")
    for n in range(count):
        written = trail.event("test.note", {"tag": tag, "n": n, "pad": "x" * 300})
        print(written["sha256"], flush=True)
""")


@pytest.mark.slow
def test_sixteen_processes_at_once(tmp_path):
    """16 processes x 500 appends give 8,000 intact records in one chain."""
    log_dir = tmp_path / "Logs"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(log_dir), "500", f"p{i}"],
            stdout=subprocess.DEVNULL,
        )
        for i in range(16)
    ]
    assert all(proc.wait(timeout=240) == 0 for proc in procs)
    path = log_dir / "Sessions" / "shared.jsonl"
    report = verify_file(path)
    assert report.ok, report.describe()
    body = [r for r in records(path) if r["event"] == "test.note"]
    assert len(body) == 8000
    assert {(r["tag"], r["n"]) for r in body} == {
        (f"p{i}", n) for i in range(16) for n in range(500)
    }


@pytest.mark.slow
def test_sigkill_never_loses_completed_records(tmp_path):
    """SIGKILL at random points: every reported record survives; the file recovers."""
    log_dir = tmp_path / "Logs"
    rng = random.Random(4)
    confirmed: set[str] = set()
    for round_ in range(8):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    APPENDER,
                    str(log_dir),
                    "100000",
                    f"r{round_}-{i}",
                ],
                stdout=subprocess.PIPE,
            )
            for i in range(3)
        ]
        for proc in procs:  # each has completed at least one append
            assert proc.stdout is not None
            confirmed.add(proc.stdout.readline().decode().strip())
        time.sleep(rng.random() * 0.5)
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            out, _ = proc.communicate()
            confirmed.update(line.decode() for line in out.split() if len(line) == 64)
    path = log_dir / "Sessions" / "shared.jsonl"
    subprocess.run(
        [sys.executable, "-c", APPENDER, str(log_dir), "1", "final"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    report = verify_file(path)
    assert report.ok, report.describe()
    on_disk = {r["sha256"] for r in records(path)}
    assert confirmed
    assert confirmed <= on_disk


class TestDescriptors:
    def test_replaced_file_gets_new_chain(self, tmp_path):
        """A writer notices its file was moved away and starts a new one."""
        path = tmp_path / "s1.jsonl"
        w = writer(path)
        w.append(note(1))
        path.rename(tmp_path / "old.jsonl")
        w.append(note(2))
        assert [r["seq"] for r in records(path)] == [0, 1]
        assert verify_file(path).ok
        assert verify_file(tmp_path / "old.jsonl").ok
        w.close()
        w.close()

    def test_log_path_is_a_directory(self, tmp_path):
        """A log path that cannot be opened gives AuditError."""
        path = tmp_path / "s1.jsonl"
        path.mkdir()
        with pytest.raises(AuditError, match="cannot open"):
            writer(path).append(note(1))


def test_verify_notes_missing_torn_side_file(tmp_path):
    """A recovery whose side file is gone is noted (not failed)."""
    path = tmp_path / "s1.jsonl"
    writer(path).append(note(1))
    with path.open("ab") as handle:
        handle.write(b'{"half')
    writer(path).append(note(2))
    assert verify_file(path).notes == ()
    Path(f"{path}.torn").unlink()
    report = verify_file(path)
    assert report.ok
    assert "torn bytes not found" in report.describe()


def test_threads_share_a_writer(tmp_path):
    """Threads appending through one writer keep one unbroken chain."""
    import threading  # noqa: PLC0415

    path = tmp_path / "s1.jsonl"
    w = writer(path)
    threads = [
        threading.Thread(target=lambda: [w.append(note(n)) for n in range(200)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verify_file(path).verdict.records == 801


class TestWhereLogsWereLeft:
    """A process's writers share where each log was left (the helper's per-command writers)."""

    def test_a_new_writer_does_not_read_a_log_this_process_left(
        self, tmp_path, monkeypatch
    ):
        path = tmp_path / "NetOps" / "2026-12-05.jsonl"
        writer(path).append(note(1))
        reads = []
        real = log_module.read_tail
        monkeypatch.setattr(
            log_module, "read_tail", lambda *a: reads.append(a) or real(*a)
        )
        writer(path).append(note(2))
        assert reads == []
        assert [r["seq"] for r in records(path)] == [0, 1, 2]
        assert verify_file(path).ok

    def test_a_log_changed_since_is_read_again(self, tmp_path):
        path = tmp_path / "s1.jsonl"
        writer(path).append(note(1))
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    from pathlib import Path
                    from statetrace_guard.audit.chain import header_record
                    from statetrace_guard.audit.log import ChainWriter
                    ChainWriter(Path({str(path)!r}), lambda ts: header_record(
                        "session", ts, "0.1.0", session_id="s1")).append(
                        {{"schema_version": 1, "event": "note", "n": 2}})
                    """
                ),
            ],
            check=False,
        )
        assert other.returncode == 0
        writer(path).append(note(3))
        assert [r["seq"] for r in records(path)] == [0, 1, 2, 3]
        assert verify_file(path).ok

    def test_another_key_still_refuses_the_log(self, tmp_path):
        path = tmp_path / "s1.jsonl"
        writer(path).append(note(1))
        other = writer(path, key=ChainKey.derive(b"o" * 32))
        with pytest.raises(AuditError, match="not with this guard's key"):
            other.append(note(2))
