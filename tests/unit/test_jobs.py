"""The job files in guard's home: claims, the budget, statuses (issue 15.4)."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from statetrace_guard import jobs


def fields(pid: int) -> dict:
    return {
        "session_id": "2026-12-05_session-0001",
        "command": "python3 -m http.server",
        "level": "L1",
        "pid": pid,
        "create_time": psutil.Process(pid).create_time(),
        "started": "2026-12-05T08:00:00+00:00",
    }


class TestClaims:
    def test_ids_follow_each_other_and_the_budget_counts_running_ones(self, tmp_path):
        """J1, J2; a third is refused while two run; an ended one frees its place."""
        folder = jobs.jobs_folder(tmp_path / "Logs", "2026-12-05_session-0001")
        assert jobs.claim_job(folder, fields(os.getpid()), 2) == "J1"
        assert jobs.claim_job(folder, fields(os.getpid()), 2) == "J2"
        refused = jobs.claim_job(folder, fields(os.getpid()), 2)
        assert [job.id for job in refused] == ["J1", "J2"]
        jobs.mark_ended(folder, "J1", {"exit_status": 0})
        assert jobs.claim_job(folder, fields(os.getpid()), 2) == "J3"

    def test_a_forgotten_claim_keeps_its_number_used(self, tmp_path):
        """A start that failed leaves no job, and its id is not given again."""
        folder = jobs.jobs_folder(tmp_path / "Logs", "s")
        assert jobs.claim_job(folder, fields(os.getpid()), 4) == "J1"
        jobs.forget_job(folder, "J1")
        assert jobs.list_jobs(tmp_path / "Logs", "s") == []
        assert jobs.claim_job(folder, fields(os.getpid()), 4) == "J2"


class TestStatus:
    def test_running_ended_and_lost(self, tmp_path):
        """Alive: running; an end file: ended with its status; gone: lost."""
        done = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        dead = int(done.stdout)
        folder = jobs.jobs_folder(tmp_path / "Logs", "s")
        jobs.claim_job(folder, fields(os.getpid()), 4)
        jobs.claim_job(folder, fields(os.getpid()), 4)
        lost = fields(os.getpid()) | {"pid": dead}
        jobs.claim_job(folder, lost, 4)
        jobs.mark_ended(folder, "J2", {"exit_status": 143})
        found = {job.id: job for job in jobs.list_jobs(tmp_path / "Logs", "s")}
        assert found["J1"].status == "running"
        assert (found["J2"].status, found["J2"].exit_status) == ("ended", 143)
        assert found["J3"].status == "lost"
        assert jobs.find_job(tmp_path / "Logs", "s", "3") == found["J3"]
        assert jobs.find_job(tmp_path / "Logs", "s", "j1") == found["J1"]
        assert jobs.find_job(tmp_path / "Logs", "s", "J9") is None
        assert jobs.job_lines([found["J2"]])[1].startswith("J2    exit 143 L1")

    def test_sessions_of_other_log_dirs_are_apart(self, tmp_path):
        """The folder is per log directory and session id."""
        one = jobs.jobs_folder(tmp_path / "a" / "Logs", "s")
        other = jobs.jobs_folder(tmp_path / "b" / "Logs", "s")
        assert one != other
        assert one.parent == other.parent

    def test_log_tail_is_the_end_of_the_output(self, tmp_path):
        folder = jobs.jobs_folder(tmp_path / "Logs", "s")
        jobs.claim_job(folder, fields(os.getpid()), 4)
        (folder / "J1.log").write_bytes(b"a" * 10 + b"end\n")
        (job,) = jobs.list_jobs(tmp_path / "Logs", "s")
        assert jobs.log_tail(job, limit=4) == "end\n"
