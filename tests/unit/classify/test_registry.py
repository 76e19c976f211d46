"""The registry of program knowledge: loader rules, examples, option engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statetrace_guard.batch import argv_for
from statetrace_guard.classify import cmdlets
from statetrace_guard.classify.argv import classify_argv
from statetrace_guard.classify.handler_names import FRONT_ENDS, HANDLER_DATA_KEYS
from statetrace_guard.classify.handlers import HANDLERS
from statetrace_guard.classify.knowledge import Knowledge, RegistryError
from statetrace_guard.classify.model import ClassifyContext
from statetrace_guard.classify.registry import (
    builtin_knowledge,
    load_documents,
    spec_files,
    validate_documents,
)
from statetrace_guard.errors import PolicyError
from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy_bytes

CTX = ClassifyContext("/ws", "/ws")
SHELL_OF = {"posix": "bash", "python": "bash", "pwsh": "pwsh", "windows": "pwsh"}


def _entries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(namespace, spec id, entry) for every entry and subcommand with examples."""
    for document in validate_documents(spec_files()):
        namespace = document["namespace"]
        for key in ("program", "cmdlet"):
            for raw in document.get(key, ()):
                yield from _with_subcommands(
                    namespace, f"{namespace}:{raw['name']}", raw
                )


def _with_subcommands(
    namespace: str, spec: str, raw: dict[str, Any]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    yield namespace, spec, raw
    for name, sub in raw.get("subcommands", {}).items():
        yield from _with_subcommands(namespace, f"{spec}-{name}", sub)


EXAMPLES = [
    (spec, kind, example, SHELL_OF.get(namespace, "exec"))
    for namespace, spec, raw in _entries()
    for kind in ("match", "not_match")
    for example in raw.get(kind, ())
]


def _classify(command: str, shell: str):
    return classify_argv(argv_for(command, shell), CTX).commands


class TestExamples:
    def test_there_are_examples(self):
        """The registry carries examples (a regression would drop them silently)."""
        assert len(EXAMPLES) > 150

    @pytest.mark.parametrize(
        ("spec", "kind", "example", "shell"),
        EXAMPLES,
        ids=[f"{s}:{k}:{e['command']}" for s, k, e, _ in EXAMPLES],
    )
    def test_example_holds(self, spec, kind, example, shell):
        """match: this entry gives exactly these effects; not_match: more than these."""
        found = _classify(example["command"], example.get("shell") or shell)
        expected = set(example["effects"])
        if kind == "match":
            mine = [c for c in found if c.spec == spec or c.spec.startswith(spec + "-")]
            assert mine, [c.spec for c in found]
            assert {e.value for e in mine[0].effects} == expected
        else:
            every = {e.value for c in found for e in c.effects}
            assert not every <= expected, every


def _document(text: str) -> list[tuple[str, bytes]]:
    return [("test.toml", text.encode())]


class TestLoader:
    BASE = 'namespace = "posix"\n'

    def test_builtin_registry_is_valid(self):
        """The shipped spec files validate (names unique, handlers known)."""
        assert len(validate_documents(spec_files())) == len(spec_files())

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ('[[program]]\nname = "x"\n[[program]]\nname = "x"\n', "defined twice"),
            (
                '[[program]]\nname = "x"\n[[program]]\nname = "y"\naliases = ["x"]\n',
                "twice",
            ),
            ('[[program]]\nname = "x"\nbogus = 1\n', "bogus"),
            ('[[program]]\nname = "x"\nhandler = "nope"\n', "unknown handler"),
            (
                '[[program]]\nname = "x"\nhandler = "git"\nhandler_data = { nope = [] }\n',
                "handler_data",
            ),
            ('[[program]]\nname = "x"\noperands = ["reed*"]\n', "operand"),
            (
                '[[program]]\nname = "x"\nflags = ["-a"]\nwrite_options = ["-a"]\n',
                "both",
            ),
            (
                (
                    '[[program]]\nname = "x"\n[[program.modes]]\noptions = ["-z"]\n'
                    'effects = ["read"]\n'
                ),
                "no option list",
            ),
            ('[[program]]\nname = "x"\nunknown_options = "maybe"\n', "unknown_options"),
        ],
    )
    def test_refuses_bad_data(self, text, problem):
        """A duplicate name, an unknown key, handler or kind is refused, named."""
        with pytest.raises(RegistryError, match=problem):
            validate_documents(_document(self.BASE + text))

    def test_refuses_a_name_defined_in_two_files(self):
        """Names are unique across files of a namespace, not only within one."""
        twice = [
            ("a.toml", b'namespace = "posix"\n[[program]]\nname = "tool"\n'),
            ("b.toml", b'namespace = "posix"\n[[program]]\nname = "tool"\n'),
        ]
        with pytest.raises(RegistryError, match="twice"):
            validate_documents(twice)

    def test_same_name_in_two_namespaces_is_fine(self):
        """``sc`` is a Windows program and a PowerShell alias: different tables."""
        knowledge = builtin_knowledge()
        assert knowledge.programs("windows", "sc")
        assert knowledge.cmdlet_name("sc") == "set-content"

    def test_cache_is_reused_and_replaced_when_the_data_changes(
        self, monkeypatch, tmp_path
    ):
        """A second load reads the cache; a changed key replaces the old file."""
        monkeypatch.setenv("STATETRACE_GUARD_HOME", str(tmp_path))
        first = load_documents()
        cached = list((tmp_path / "cache").glob("registry-*.json"))
        assert len(cached) == 1
        assert json.loads(cached[0].read_bytes())["documents"] == list(first[0])
        calls = []
        real = validate_documents
        monkeypatch.setattr(
            "statetrace_guard.classify.registry.validate_documents",
            lambda files: calls.append(files) or real(files),
        )
        assert load_documents() == first
        assert calls == []
        monkeypatch.setattr(
            "statetrace_guard.classify.registry._cache_key", lambda: "changed"
        )
        assert load_documents() == first
        assert len(calls) == 1
        names = {p.name for p in (tmp_path / "cache").glob("registry-*.json")}
        assert names == {cached[0].name, "registry-changed.json"}

    def test_only_the_oldest_caches_beyond_a_few_are_dropped(
        self, monkeypatch, tmp_path
    ):
        """Installs sharing a home keep their caches; the oldest ones go."""
        monkeypatch.setenv("STATETRACE_GUARD_HOME", str(tmp_path))
        cache = tmp_path / "cache"
        cache.mkdir()
        for number in range(12):
            old = cache / f"registry-old{number:02}.json"
            old.write_text("{}")
            os.utime(old, ns=(number * 10**9, number * 10**9))
        monkeypatch.setattr(
            "statetrace_guard.classify.registry._cache_key", lambda: "mine"
        )
        load_documents()
        names = sorted(p.name for p in cache.glob("registry-*.json"))
        kept = [f"registry-old{number:02}.json" for number in range(5, 12)]
        assert names == sorted([*kept, "registry-mine.json"])

    def test_sparse_documents_judge_like_full_ones(self):
        """The cache leaves defaults and examples out; the answers do not change."""
        full = Knowledge(validate_documents(spec_files()))
        documents, defaults = load_documents()
        sparse = Knowledge(documents, defaults=defaults)
        for name in ("sort", "git", "tar", "pip", "rg", "env"):
            one = full.programs("posix", name)[0]
            two = sparse.programs("posix", name)[0]
            assert dict(one.kinds) == dict(two.kinds)
            assert one.effects == two.effects
            assert set(one.subcommands) == set(two.subcommands)
        for variable in ("PATH", "LD_AUDIT_X", "GIT_AUTHOR_NAME", "FOO", "TMPDIR"):
            assert full.variable(variable) == sparse.variable(variable)
        one = full.cmdlet("set-content")
        two = sparse.cmdlet("set-content")
        assert one is not None
        assert two is not None
        assert one.all_params == two.all_params

    def test_every_handler_has_code(self):
        """Each handler name an entry may use is implemented, and nothing else."""
        cmdlet_handlers = set(cmdlets._SPECIAL)
        assert set(HANDLERS) | FRONT_ENDS | cmdlet_handlers == set(HANDLER_DATA_KEYS)


class TestOptionEngine:
    @staticmethod
    def knowledge(entry: str) -> Knowledge:
        documents = validate_documents(_document('namespace = "posix"\n' + entry))
        return Knowledge(documents)

    def effects(self, entry: str, command: str) -> set[str]:
        ctx = ClassifyContext("/ws", "/ws", 0, self.knowledge(entry))
        found = classify_argv(argv_for(command, "exec"), ctx).commands
        return {e.value for e in found[0].effects}

    TOOL = (
        '[[program]]\nname = "tool"\nunknown_options = "read"\n'
        'flags = ["--output-format"]\nwrite_options = ["-o", "--output"]\n'
        'value_options = ["-k", "--key"]\n'
    )

    @pytest.mark.parametrize(
        ("command", "expected"),
        [
            ("tool a", {"read"}),
            ("tool -o out a", {"read", "write"}),
            ("tool -oout a", {"read", "write"}),
            ("tool -ko a", {"read"}),  # -k takes "o": no write
            ("tool --output=out a", {"read", "write"}),
            ("tool --outp=out a", {"read", "write"}),  # a GNU prefix
            ("tool --output-f a", {"read"}),  # the prefix names the other option
            ("tool --out a", {"read", "write"}),  # ambiguous: the strictest
            ("tool --frob a", {"read"}),  # unlisted, and the entry says read
            ("tool -- -o x", {"read"}),  # after --, operands
        ],
    )
    def test_getopt_forms(self, command, expected):
        """Bundles, glued values, long prefixes and -- read the way getopt does."""
        assert self.effects(self.TOOL, command) == expected

    def test_unlisted_option_is_dynamic_by_default(self):
        """The registry's rule: an option an entry does not list is dynamic."""
        entry = '[[program]]\nname = "tool"\nflags = ["-a"]\n'
        assert self.effects(entry, "tool -a x") == {"read"}
        assert self.effects(entry, "tool -z x") == {"dynamic", "read"}


class TestPolicyKnowledge:
    """A policy extends the registry: ``[[programs]]`` and ``trusted_dirs``."""

    POLICY = b"""
extends = "builtin:statetrace"
name = "mine"
trusted_dirs = ["/usr/bin", "/opt/tools/bin"]

[[programs]]
name = "mytool"
reason = "the project's report tool"
unknown_options = "read"
write_options = ["--out"]

[[programs]]
name = "rg"
reason = "this project's rg wrapper plugin"
exec_options = ["--my-hook"]
unknown_options = "read"
"""

    def judge(self, command: str, level: str = "L0") -> tuple[bool, set[str]]:
        policy = load_policy_bytes(self.POLICY, "guard.toml")
        place = make_place(Path("/ws"), Path("/ws"), Path("/ws/Logs"), None, {})
        verdict = evaluate(tuple(command.split()), Level.parse(level), policy, place)
        effects = {e.value for e in verdict.verdict.effects}
        return verdict.verdict.allowed, effects

    def test_a_new_program_is_known(self):
        """An unknown tool becomes a reader with a write option."""
        assert self.judge("mytool report") == (True, {"read"})
        assert self.judge("mytool --out o.txt report")[1] == {"read", "write"}

    def test_an_added_option_adds_to_the_builtin_entry(self):
        """Beside the built-in rg entry, the policy's hook option makes rg dynamic."""
        assert self.judge("rg -n x") == (True, {"read"})
        assert "dynamic" in self.judge("rg --my-hook=x pattern")[1]
        assert "dynamic" in self.judge("rg --pre=x pattern")[1]  # built-in kept

    def test_trusted_dirs_come_from_the_policy(self):
        """A program under a trusted directory is judged by its name."""
        assert self.judge("/opt/tools/bin/rg -n x") == (True, {"read"})
        assert self.judge("/usr/local/bin/rg -n x")[0] is False  # no longer trusted

    def test_a_bad_program_entry_is_a_policy_error(self):
        """An unknown handler in [[programs]] is refused with the field."""
        bad = self.POLICY + b'\n[[programs]]\nname = "z"\nhandler = "nope"\n'
        with pytest.raises(PolicyError, match="programs"):
            load_policy_bytes(bad, "guard.toml")
