"""The [commit] and [adr] policy sections: globs, examples, extends."""

from __future__ import annotations

import pytest

from statetrace_guard.errors import PolicyError
from statetrace_guard.guardrails.globs import compile_globs
from statetrace_guard.policy import load_policy, load_policy_bytes


def refused(policy, path):
    return [rule.id for rule in policy.guardrails.commit.never if rule.refuses(path)]


class TestGlobs:
    """Repository globs read as .gitignore does, ignoring case."""

    @pytest.mark.parametrize(
        ("glob", "path"),
        [
            ("*.accdb", "WLLS.accdb"),
            ("*.accdb", "Data/WLLS/WLLS.accdb"),
            ("*.accdb", "data/x.ACCDB"),
            ("Logs/**", "Logs/IngestionMetrics/raw.json"),
            ("Logs/", "Logs/a/b.log"),
            ("/Logs/**", "Logs/x"),
            ("Data/*/Sanitized/**", "Data/Postmortems/Sanitized/a.log"),
            ("**/secrets.json", "a/b/secrets.json"),
            ("**/secrets.json", "secrets.json"),
            ("file[0-9].txt", "file7.txt"),
        ],
    )
    def test_accepts_matches(self, glob, path):
        """Each glob matches its path."""
        pattern = compile_globs([glob])
        assert pattern is not None
        assert pattern.fullmatch(path)

    @pytest.mark.parametrize(
        ("glob", "path"),
        [
            ("Logs/**", "docs/Logs/x.md"),
            ("Logs/**", "LogsOld/x"),
            ("*.accdb", "docs/accdb.md"),
            ("Data/*/Sanitized/**", "Data/a/b/Sanitized/x"),
            ("file[!0-9].txt", "file7.txt"),
        ],
    )
    def test_rejects_non_matches(self, glob, path):
        """Anchored globs stay anchored; ``*`` does not cross directories."""
        pattern = compile_globs([glob])
        assert pattern is not None
        assert not pattern.fullmatch(path)


class TestBuiltInPolicy:
    """The StateTrace policy's commit rules and ADR stop."""

    @pytest.mark.parametrize(
        ("path", "rule"),
        [
            ("Data/WLLS/WLLS.accdb", "access-store"),
            ("Data/WLLS/WLLS.laccdb", "access-store"),
            ("legacy/old.mdb", "access-store"),
            ("Logs/IngestionMetrics/raw.json", "raw-logs"),
            ("Logs/DispatchHarness/WLLS-A01.log", "raw-logs"),
            ("Data/Postmortems/INC-1/raw/router.log", "raw-logs"),
        ],
    )
    def test_rejects_refused_paths(self, path, rule):
        """Access stores and raw logs are refused."""
        assert rule in refused(load_policy(None), path)

    @pytest.mark.parametrize(
        "path",
        [
            "src/app.ps1",
            "docs/accdb-notes.md",
            "Logs/Sanitization/INC-1.json",
            "Data/Postmortems/INC-1/Sanitized/router.log",
            "Logs/.gitkeep",
            "Data/StateTraceSettings.json",
        ],
    )
    def test_accepts_other_paths(self, path):
        """The sanitiser's output and ordinary files may be committed."""
        assert refused(load_policy(None), path) == []

    def test_adr_applies_to_every_kind(self):
        """The StateTrace policy stops for every ADR kind."""
        adr = load_policy(None).guardrails.adr
        assert adr.folder == "docs/adr"
        assert set(adr.applies) >= {"add-type", "schema-change", "new-store"}

    def test_the_generic_policy_scans_secrets_and_refuses_no_paths(self):
        """builtin:generic: the secret scan, no project globs, no ADR kinds."""
        policy = load_policy_bytes(
            b'extends = "builtin:generic"\nname = "any"\n', "any.toml"
        )
        assert policy.guardrails.commit.scan_secrets is True
        assert policy.guardrails.commit.never == ()
        assert policy.guardrails.adr.applies == ()

    def test_a_policy_without_sections_scans_secrets_and_stops_for_nothing(self):
        """The defaults: the secret scan on, no path rules, no ADR kinds."""
        policy = load_policy_bytes(b'name = "bare"\n', "bare.toml")
        assert policy.guardrails.commit.scan_secrets is True
        assert policy.guardrails.commit.never == ()
        assert policy.guardrails.adr.applies == ()


class TestPolicySections:
    """Validation and merging of [commit] and [adr]."""

    def test_extends_appends_never_rules_and_replaces_scalars(self):
        """An extending policy adds rules after the built-in ones; it cannot drop them."""
        raw = b"""
extends = "builtin:statetrace"
name = "ws"
[commit]
scan_exclude = ["tests/fixtures/**"]
[[commit.never]]
id = "exports"
paths = ["exports/*.csv"]
match = ["exports/a.csv"]
[adr]
applies = ["csc"]
"""
        policy = load_policy_bytes(raw, "ws.toml")
        ids = [rule.id for rule in policy.guardrails.commit.never]
        assert ids == ["access-store", "raw-logs", "exports"]
        assert not policy.guardrails.commit.scanned("tests/fixtures/key.pem")
        assert policy.guardrails.commit.scanned("src/key.pem")
        assert policy.guardrails.adr.applies == ("csc",)

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            (b'name="x"\n[[commit.never]]\nid="a"\npaths=[]\n', "commit"),
            (
                b'name="x"\n[[commit.never]]\nid="a"\npaths=["*.x"]\nmatch=["y.z"]\n',
                "commit",
            ),
            (
                b'name="x"\n[[commit.never]]\nid="a"\npaths=["*.x"]\nnot_match=["y.x"]\n',
                "commit",
            ),
            (
                (
                    b'name="x"\n[[commit.never]]\nid="a"\npaths=["*.x"]\n'
                    b'[[commit.never]]\nid="a"\npaths=["*.y"]\n'
                ),
                "commit",
            ),
            (b'name="x"\n[commit]\nsurprise=1\n', "commit"),
            (b'name="x"\n[adr]\napplies=["everything"]\n', "adr"),
            (b'name="x"\n[adr]\nfolder="../elsewhere"\n', "adr"),
        ],
    )
    def test_rejects_invalid_sections(self, raw, field):
        """Empty paths, failing examples, duplicate ids, unknown keys are errors."""
        with pytest.raises(PolicyError) as caught:
            load_policy_bytes(raw, "bad.toml")
        assert caught.value.field is not None
        assert caught.value.field.startswith(field)
