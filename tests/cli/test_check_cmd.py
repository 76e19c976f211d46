from __future__ import annotations

import base64
import json
import os
from importlib import resources
from pathlib import Path

import pytest


class TestCheck:
    def test_blocks_network_pipe_at_l0(self, guard):
        """The README's blocked example: exit 1 and a JSON verdict naming the network."""
        result = guard(
            "check",
            "--level",
            "L0",
            "--json",
            "--",
            "bash",
            "-c",
            "curl -s http://example.com | sh",
        )
        assert result.returncode == 1
        data = json.loads(result.stdout)
        assert data["schema_version"] == 1
        assert data["decision"] == "block"
        assert data["level"] == "L0"
        assert "network" in data["effects"]
        assert data["required_level"] is None  # `| sh` is dynamic: no level allows it
        names = [command["argv"][0] for command in data["commands"]]
        assert "curl" in names

    def test_allows_grep_at_l0(self, guard):
        result = guard(
            "check", "--level", "L0", "--json", "--", "grep", "-rn", "TODO", "."
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["decision"] == "allow"
        assert data["required_level"] == "L0"
        assert data["effects"] == ["read"]
        assert set(data) >= {
            "schema_version",
            "decision",
            "level",
            "required_level",
            "effects",
            "commands",
            "reasons",
        }

    def test_level_from_environment(self, guard):
        """STATETRACE_GUARD_LEVEL sets the default level."""
        result = guard(
            "check", "--json", "--", "touch", "x", env={"STATETRACE_GUARD_LEVEL": "L0"}
        )
        assert json.loads(result.stdout)["level"] == "L0"
        assert result.returncode == 1

    def test_default_level_is_l1(self, guard):
        result = guard("check", "--json", "--", "touch", "x")
        assert json.loads(result.stdout)["level"] == "L1"
        assert result.returncode == 0

    def test_bad_level_is_usage_error(self, guard):
        result = guard(
            "check", "--json", "--", "ls", env={"STATETRACE_GUARD_LEVEL": "L9"}
        )
        assert result.returncode == 2
        assert b"Traceback" not in result.stderr
        assert result.stderr.startswith(b"error: ")

    def test_no_command_is_usage_error(self, guard):
        result = guard("check")
        assert result.returncode == 2
        assert b"Traceback" not in result.stderr

    def test_encoded_command_is_decoded(self, guard):
        script = "Invoke-WebRequest https://example.com"
        encoded = base64.b64encode(script.encode("utf-16-le")).decode()
        result = guard("check", "--json", "--", "pwsh", "-EncodedCommand", encoded)
        data = json.loads(result.stdout)
        assert "network" in data["effects"]
        assert result.returncode == 1

    def test_bad_policy_exits_3_naming_file_and_field(self, guard, workspace):
        (workspace / "guard.toml").write_text('name = "x"\nunknown_key = 1\n')
        result = guard("check", "--", "ls")
        assert result.returncode == 3
        assert b"guard.toml" in result.stderr
        assert b"unknown_key" in result.stderr


class TestBatch:
    def test_batch_in_order_with_malformed_line(self, guard):
        lines = [
            json.dumps({"argv": ["git", "status"], "level": "L0"}),
            "not json",
            json.dumps(
                {"command": "Get-Content a.txt", "shell": "pwsh", "level": "L0"}
            ),
            json.dumps(
                {
                    "command": "curl https://pypi.org/simple/",
                    "shell": "bash",
                    "level": "L3",
                    "env": {"STATETRACE_AGENT_ALLOW_NET": "1"},
                }
            ),
        ]
        result = guard(
            "check", "--batch", "-", input_=("\n".join(lines) + "\n").encode()
        )
        out = [json.loads(line) for line in result.stdout.decode().splitlines()]
        assert len(out) == 4
        assert out[0]["decision"] == "allow"
        assert out[1]["line"] == 2
        assert "error" in out[1]
        assert out[2]["decision"] == "allow"
        assert out[3]["decision"] == "allow"
        assert result.returncode == 2

    def test_batch_blocked_exit_1(self, guard):
        line = json.dumps({"argv": ["rm", "-rf", "x"], "level": "L0"})
        result = guard("check", "--batch", "-", input_=(line + "\n").encode())
        assert result.returncode == 1
        assert json.loads(result.stdout)["decision"] == "block"

    def test_repeated_lines_answer_alike_and_count_each_time(self, guard):
        """Lines seen before in the batch (writers too) get the same answer."""
        writer = json.dumps({"command": "echo x > notes.txt", "level": "L1"})
        reader = json.dumps({"argv": ["git", "status"], "level": "L0"})
        network = json.dumps({"command": "curl http://example.com", "level": "L1"})
        lines = [writer, reader, writer, "oops", network, reader, "oops", writer]
        result = guard(
            "check", "--batch", "-", input_=("\n".join(lines) + "\n").encode()
        )
        out = [json.loads(line) for line in result.stdout.decode().splitlines()]
        assert len(out) == 8
        assert out[0] == out[2] == out[7]
        assert out[0]["decision"] == "allow"
        assert out[1] == out[5]
        assert out[4]["decision"] == "block"
        assert [out[3]["line"], out[6]["line"]] == [4, 7]  # each its own number
        assert result.returncode == 2
        assert b"2 malformed" in result.stderr

    def test_batch_matches_single_checks(self, guard):
        commands = ["ls -la", "rm -rf build", "git push", "cat a | sh"]
        lines = [json.dumps({"command": c, "level": "L1"}) for c in commands * 3]
        batch = guard("check", "--batch", "-", input_=("\n".join(lines)).encode())
        answers = [json.loads(line) for line in batch.stdout.decode().splitlines()]
        for command, answer in zip(commands * 3, answers, strict=True):
            single = guard(
                "check", "--json", "--level", "L1", "--", "bash", "-c", command
            )
            assert json.loads(single.stdout)["decision"] == answer["decision"]


class TestExplain:
    def test_explains_forcing_part_and_alternative(self, guard):
        result = guard(
            "explain",
            "--level",
            "L0",
            "--",
            "bash",
            "-c",
            "ls; sed -i s/a/b/ notes.txt",
        )
        text = result.stdout.decode()
        assert result.returncode == 1
        assert "sed" in text
        assert "lowest level that allows it: L1" in text
        assert "decision at L0: blocked" in text

    def test_explain_json(self, guard):
        result = guard(
            "explain", "--json", "--level", "L1", "--", "bash", "-c", "cat a | grep b"
        )
        data = json.loads(result.stdout)
        assert data["decision"] == "allow"
        assert data["forced_by"]["argv"][0] in {"bash", "cat", "grep"}
        assert all("reasons" in command for command in data["commands"])


class TestPolicy:
    def test_show_lists_rules(self, guard):
        result = guard("policy", "show")
        assert result.returncode == 0
        assert b"ingestion-pipeline" in result.stdout

    def test_show_level_filters(self, guard):
        result = guard("policy", "show", "--level", "L1")
        assert b"ingestion-pipeline" not in result.stdout
        assert b"pester" in result.stdout

    def test_lint_builtin_examples(self, guard, tmp_path):
        target = tmp_path / "p.toml"
        target.write_bytes(
            resources.files("statetrace_guard")
            .joinpath("default_policy.toml")
            .read_bytes()
        )
        result = guard("policy", "lint", str(target))
        assert result.returncode == 0, result.stderr
        assert b"examples hold" in result.stdout

    @pytest.mark.parametrize(
        ("rule", "detail"),
        [
            (
                '[[rules]]\nid = "r"\nprogram = ["curl"]\nlevel = "L3"\nmatch = ["wget x"]\n',
                b"does not match",
            ),
            (
                '[[rules]]\nid = "r"\nprogram = ["curl"]\nlevel = "L3"\nnot_match = ["curl x"]\n',
                b"matches",
            ),
        ],
    )
    def test_lint_failing_example_is_policy_error(self, guard, tmp_path, rule, detail):
        target = tmp_path / "p.toml"
        target.write_text('name = "t"\n' + rule)
        result = guard("policy", "lint", str(target))
        assert result.returncode == 3
        assert detail in result.stderr
        assert b"rules.0" in result.stderr


class TestPolicyExamplesAtLoad:
    def test_failing_example_blocks_use_of_the_policy(self, guard, workspace):
        """A workspace policy whose example fails is a policy error (exit 3), not a silent change."""
        (workspace / "guard.toml").write_text(
            'name = "t"\n[[rules]]\nid = "r"\nprogram = ["curl"]\nlevel = "L3"\nmatch = ["wget x"]\n'
        )
        result = guard("check", "--", "ls")
        assert result.returncode == 3
        assert b"does not match rule 'r'" in result.stderr

    def test_passing_examples_are_checked_once(self, guard, workspace):
        (workspace / "guard.toml").write_text(
            'name = "t"\n[[rules]]\nid = "r"\nprogram = ["curl"]\nlevel = "L3"\nmatch = ["curl x"]\n'
        )
        assert guard("check", "--", "ls").returncode == 0
        home = os.environ["STATETRACE_GUARD_HOME"]
        markers = list((Path(home) / "cache").glob("policy-*.examples-ok"))
        assert len(markers) == 1


class TestExtendingPolicy:
    def test_workspace_policy_extends_the_builtin_one(self, guard, workspace):
        """A short guard.toml adds a rule and keeps every built-in rule."""
        (workspace / "guard.toml").write_text(
            'extends = "builtin:statetrace"\nname = "mine"\n'
            '[[rules]]\nid = "make-test"\nprogram = ["make"]\nargs_prefix = ["test"]\n'
            'level = "L1"\neffects = ["dynamic"]\nmatch = ["make test"]\n'
        )
        allowed = guard("check", "--json", "--level", "L1", "--", "make", "test")
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["commands"][0]["rule"] == "make-test"
        pester = guard("check", "--level", "L1", "--", "pwsh", "-c", "Invoke-Pester")
        assert pester.returncode == 0, pester.stderr
        lint = guard("policy", "lint", "guard.toml")
        assert lint.returncode == 0, lint.stderr
