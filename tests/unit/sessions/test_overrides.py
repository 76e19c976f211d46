from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statetrace_guard.sessions import overrides as ov

NAMES = ("-ThreadCeilingOverride", "-MaxWorkersPerSiteOverride")


class TestParameters:
    @pytest.mark.parametrize(
        ("argv", "found"),
        [
            (
                ("x.ps1", "-ThreadCeilingOverride", "4"),
                (("-ThreadCeilingOverride", "4"),),
            ),
            (("x.ps1", "-threadceilingoverride:6"), (("-ThreadCeilingOverride", "6"),)),
            (
                ("x.ps1", "-MaxWorkersPerSiteOverride", "-Verbose"),
                (("-MaxWorkersPerSiteOverride", None),),
            ),
            (
                ("x.ps1", "-MaxWorkersPerSiteOverride"),
                (("-MaxWorkersPerSiteOverride", None),),
            ),
            (("x.ps1", "-Verbose"), ()),
        ],
    )
    def test_finds(self, argv, found):
        """Parameters are matched case-insensitively, with their values."""
        assert ov.find_parameters(argv, NAMES) == found


class TestVariables:
    def test_finds_overrides_not_guard_or_opt_in(self):
        """STATETRACE_* overrides, never guard's own or the opt-in variables."""
        env = {
            "STATETRACE_THREADS": "4",
            "STATETRACE_GUARD_SESSION": "s",
            "STATETRACE_AGENT_ALLOW_NET": "1",
            "PATH": "/bin",
        }
        assert ov.find_variables(env, ("STATETRACE_*",)) == (
            ("STATETRACE_THREADS", "4"),
        )
        assert ov.find_variables(env, ()) == ()
        assert not ov.Overrides()
        assert ov.Overrides(variables=(("A", "1"),)).as_fields() == {
            "parameters": {},
            "variables": {"A": "1"},
        }


class TestWatched:
    def test_snapshot_and_diff(self, workspace):
        """Modified, created and deleted watched files are reported."""
        data = workspace / "Data"
        data.mkdir()
        (data / "StateTraceSettings.json").write_text("{}")
        (data / "b.json").write_text("1")
        patterns = ("Data/StateTraceSettings.json", "Data/*.json", "Data/missing.json")
        before = ov.snapshot_watched(workspace, patterns)
        assert before["Data/missing.json"] is None
        assert ov.diff_watched(workspace, before, patterns) == []
        (data / "StateTraceSettings.json").write_text('{"x": 1}')
        (data / "b.json").unlink()
        (data / "missing.json").write_text("new")
        kinds = {c.path: c.kind for c in ov.diff_watched(workspace, before, patterns)}
        assert kinds == {
            "Data/StateTraceSettings.json": "modified",
            "Data/b.json": "deleted",
            "Data/missing.json": "created",
        }
        (data / "StateTraceSettings.json").write_text("{}")
        (data / "b.json").write_text("1")
        (data / "missing.json").unlink()
        assert ov.diff_watched(workspace, before, patterns) == []


_NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789*?[]!-", max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_NAME, st.just("1"), max_size=8), st.lists(_NAME, max_size=4))
def test_variables_match_as_fnmatchcase_matches_each_glob(env, globs):
    """The globs joined into one regex find exactly what each one finds."""
    expected = sorted(
        (name, value)
        for name, value in env.items()
        if name.upper() not in ov._NOT_OVERRIDES
        and not name.upper().startswith(ov._GUARD_PREFIX)
        and any(fnmatch.fnmatchcase(name.upper(), glob.upper()) for glob in globs)
    )
    assert list(ov.find_variables(env, globs)) == expected
