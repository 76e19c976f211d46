r"""Arguments naming protected data: L2 up front, unless the program only reads.

Issue 13.3: a program that may write whatever it is given (a project script,
a cmdlet the classifier does not know, a runbook script with no named
output) and is given a protected path (``-DatabasePath Data\site\site.accdb``)
or a folder holding protected data needs L2, decided before it runs, with a
reason naming the argument and a next step offering ``guard escalate --to
L2``. The workspace is real: folders count by what they hold.
"""

from __future__ import annotations

import os
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.guidance import block_line, next_step
from statetrace_guard.levels import Level
from statetrace_guard.operands import _resolve_word, named_protected, resolve_target
from statetrace_guard.policy import load_policy
from statetrace_guard.protect import WalkBudget, compile_protect, holds_protected
from statetrace_guard.sessions.escalation import parse_escalation

POLICY = load_policy(None)
DB = "Data/site/site.accdb"
IS_DB = f"its argument {DB} is protected data ([protect] Data/**/*.accdb)"
HOLDS_DB = f"holds protected data ({DB}, [protect] Data/**/*.accdb)"


@pytest.fixture
def workspace(tmp_path):
    """A StateTrace-like checkout: a site database, other data, look-alikes."""
    ws = tmp_path / "ws"
    for folder in (
        ".git/hooks",
        "Data/site",
        "Data/Postmortems/INC-7/Sanitized",
        "Data2/site",
        "MyData",
        "scripts",
        "Tools",
    ):
        (ws / folder).mkdir(parents=True)
    for name in (
        DB,
        "Data/site/site.laccdb",
        "Data/StateTraceSettings.json",
        "Data/notes.txt",
        "Data2/site/site.accdb",
        "MyData/site.accdb",
        ".git/config",
    ):
        (ws / name).write_text("x", encoding="utf-8")
    (ws / "site-link").symlink_to("Data/site")
    return ws


def judge(ws, script, level=Level.L1, shell="bash", enforcement="kernel"):
    argv = {
        "bash": ("bash", "-c", script),
        "pwsh": ("pwsh", "-Command", script),
        "exec": tuple(script.split(" ")),
    }[shell]
    place = make_place(ws, ws, ws / "Logs", None, {}, enforcement=enforcement)
    return evaluate(argv, level, POLICY, place).verdict


# (shell, command, what the reason says after "its argument ...")
NEEDS_L2 = [
    # the examples: a maintenance script given a database, a data folder
    (
        "pwsh",
        (
            "pwsh -NoProfile -File Tools/Invoke-Maintenance.ps1 -DatabasePath "
            r"Data\site\site.accdb"
        ),
        IS_DB,
    ),
    ("bash", "python3 scripts/compact.py Data/site", f"Data/site {HOLDS_DB}"),
    ("bash", "python3 scripts/compact.py Data", f"Data {HOLDS_DB}"),
    # argument forms
    ("bash", f"sqlite3 {DB} vacuum", IS_DB),
    ("bash", f"python3 scripts/x.py --database {DB}", IS_DB),
    ("bash", f"python3 scripts/x.py --db={DB}", IS_DB),
    ("bash", f"make compact DB={DB}", IS_DB),
    ("bash", f'python3 scripts/x.py "{DB}"', IS_DB),
    ("pwsh", r"Invoke-Compact -DatabasePath:Data\site\site.accdb", IS_DB),
    ("pwsh", r'Invoke-Compact -DatabasePath ".\Data\site\site.accdb"', IS_DB),
    ("pwsh", r"Invoke-Compact -DatabasePath '.\Data\site\site.accdb'", IS_DB),
    ("pwsh", r"python scripts\x.py Data\notes.txt,Data\site\site.accdb", IS_DB),
    # relative to where the command runs, absolute, through .. and links
    ("bash", "cd Data && python3 ../scripts/x.py site/site.accdb", IS_DB),
    ("bash", "cd Data/site && python3 ../../scripts/x.py .", f"Data/site {HOLDS_DB}"),
    ("pwsh", r"Set-Location Data; python ..\scripts\x.py site\site.accdb", IS_DB),
    ("bash", "python3 scripts/x.py {ws}/Data/site/site.accdb", IS_DB),
    ("bash", "python3 scripts/x.py scripts/../Data/site/site.accdb", IS_DB),
    ("bash", "python3 scripts/x.py site-link", f"Data/site {HOLDS_DB}"),
    # case differs (Windows ignores case); existing or not
    ("bash", "python3 scripts/x.py data/SITE/Site.ACCDB", "is protected data"),
    ("bash", "python3 scripts/x.py DATA/Site", HOLDS_DB),
    ("bash", "python3 scripts/x.py Data/new/new.accdb", "is protected data"),
    # globs: the pattern, and what it matches now
    ("bash", "python3 scripts/x.py 'Data/*/*.accdb'", "is protected data"),
    ("bash", "python3 scripts/x.py Data/*", "Data/StateTraceSettings.json is"),
    ("bash", "python3 scripts/x.py Data/s*", f"Data/site {HOLDS_DB}"),
    # every kind of protected data
    (
        "bash",
        "node scripts/fix.js Data/StateTraceSettings.json",
        "Data/StateTraceSettings.json is protected data",
    ),
    ("bash", "python3 scripts/x.py Data/site/site.laccdb", "Data/**/*.laccdb"),
    ("bash", "python3 scripts/x.py .git/hooks/pre-commit", "([protect] .git/hooks)"),
    ("bash", "python3 scripts/x.py .git", "holds protected data (.git/"),
    # a runbook script the policy names (L1, output unnamed) given a database
    ("pwsh", r"pwsh Tools\Test-Foo.ps1 -DatabasePath Data\site\site.accdb", IS_DB),
]

# Commands that stay at their own level (L1 or below) at L1.
STAY = [
    ("bash", "python3 scripts/report.py --out report.txt"),
    ("bash", "python3 scripts/x.py --name=MyData"),
    ("bash", "python3 scripts/x.py MyData/site.accdb"),
    ("bash", "python3 scripts/x.py Data2/site/site.accdb"),
    ("bash", "python3 scripts/x.py Data2"),
    ("bash", "python3 scripts/x.py Data/notes.txt"),
    ("bash", "python3 scripts/x.py Data/Postmortems/INC-7/Sanitized"),
    ("bash", "python3 scripts/x.py Data/Postmortems/INC-8/Sanitized"),
    ("bash", "python3 scripts/x.py . .. / /tmp"),
    ("bash", 'python3 scripts/x.py "$DB"'),
    ("bash", 'cd "$D" && python3 ../scripts/x.py site.accdb'),
    ("bash", "python3 -c 'open(\"Data/site/site.accdb\")'"),
    ("bash", "bash .git/hooks/pre-commit"),
    ("exec", "python3 scripts/x.py \ud800/Data Data/\ud800 \udcff"),
    # programs known to only read
    ("bash", f"cat {DB}"),
    ("bash", f"grep -c x {DB}"),
    ("bash", "rg x Data"),
    ("bash", f"sha256sum {DB}"),
    ("bash", "ls -la Data/site"),
    ("bash", f"git diff -- {DB}"),
    ("pwsh", r"Get-Content Data\site\site.accdb"),
    ("pwsh", r"Get-FileHash Data\site\site.accdb"),
    ("pwsh", r'$h = Test-DatabaseHealth -DatabasePath ".\Data\site\site.accdb"'),
    # programs whose written files the classifier names: judged by those
    ("bash", f"cp {DB} /tmp/site-copy.accdb"),
    # a runbook script given data that is not protected
    ("pwsh", r"pwsh Tools\Test-Foo.ps1 -Out Data\Postmortems\INC-7\report.txt"),
]


class TestNeedsL2:
    @pytest.mark.parametrize(("shell", "command", "said"), NEEDS_L2)
    def test_rejects_protected_argument_below_l2(self, workspace, shell, command, said):
        """Required L2 up front, the reason names the argument, next: escalate."""
        verdict = judge(workspace, command.format(ws=workspace), shell=shell)
        assert not verdict.allowed
        assert verdict.required_level is Level.L2
        item = verdict.blocking
        assert item is not None
        assert item.rule == "protected-argument"
        assert said in item.why
        assert item.why.endswith("; L2 maintains data")
        assert "(rule protected-argument): its argument " in block_line(verdict)
        step = next_step(verdict)
        assert step is not None
        assert step.kind == "escalate"
        assert step.command is not None
        assert step.command.startswith("guard escalate --to L2 --reason ")
        assert parse_escalation(shlex.split(step.command)) is not None

    @pytest.mark.parametrize(("shell", "command", "said"), NEEDS_L2)
    def test_accepts_at_l2(self, workspace, shell, command, said):
        """At L2 the same command runs (contained when the classifier cannot know it)."""
        verdict = judge(workspace, command.format(ws=workspace), Level.L2, shell)
        assert verdict.allowed, (said, verdict.reasons)

    def test_without_kernel_enforcement_the_script_is_never(self, workspace):
        """Dynamic code with no envelope stays blocked at every level."""
        verdict = judge(
            workspace,
            "python3 scripts/compact.py Data/site",
            Level.L3,
            enforcement="none",
        )
        assert not verdict.allowed
        assert verdict.required_level is None

    def test_escalation_reason_keeps_windows_paths_readable(self, workspace):
        r"""``Data\site`` becomes ``Data/site`` in the quoted reason, not ``Datasite``."""
        verdict = judge(
            workspace,
            r"Invoke-Compact -DatabasePath Data\site\site.accdb",
            shell="pwsh",
        )
        step = next_step(verdict)
        assert step is not None
        assert step.command is not None
        assert "Data/site/site.accdb" in step.command


class TestStays:
    @pytest.mark.parametrize(("shell", "command"), STAY)
    def test_accepts_at_l1(self, workspace, shell, command):
        """No false L2: look-alikes, unknowable words, readers, named outputs."""
        verdict = judge(workspace, command, shell=shell)
        assert verdict.allowed, verdict.reasons
        assert all(item.rule != "protected-argument" for item in verdict.commands)

    def test_known_write_is_judged_once(self, workspace):
        """A named output into protected data keeps its own rule (no double count)."""
        verdict = judge(workspace, f"cp notes.txt {DB}")
        assert verdict.required_level is Level.L2
        assert verdict.blocking is not None
        assert verdict.blocking.rule == "protected-path"
        assert not [r for r in verdict.reasons if "its argument" in r]

    def test_folder_counts_once_it_holds_data(self, workspace):
        """A folder's answer follows what it holds now, not a remembered one."""
        (workspace / "Data" / "later").mkdir()
        command = "python3 scripts/x.py Data/later"
        assert judge(workspace, command).allowed
        (workspace / "Data" / "later" / "later.accdb").write_text("x", encoding="utf-8")
        assert judge(workspace, command).required_level is Level.L2


class TestNamedProtected:
    PATTERNS = compile_protect(["Data/**/*.accdb", "Data/StateTraceSettings.json"])

    def test_skips_the_script_and_known_outputs(self, workspace):
        """Paths in ``skip`` (the script run, named outputs) never count."""
        db = os.path.realpath(workspace / DB)
        found = named_protected(
            ("python3", DB),
            pwsh=False,
            cwd=str(workspace),
            workspace=os.path.realpath(workspace),
            patterns=self.PATTERNS,
            skip={db},
        )
        assert found is None

    def test_unknown_cwd_skips_relative_words(self, workspace):
        """After a cd known only at run time a relative word names nothing."""
        found = named_protected(
            ("tool", DB),
            pwsh=False,
            cwd="",
            workspace=os.path.realpath(workspace),
            patterns=self.PATTERNS,
        )
        assert found is None

    def test_large_folder_counts_as_holding(self, workspace):
        """Past the budget the walk stops and answers on the safe side."""
        for index in range(20):
            (workspace / "Data" / "Postmortems" / f"f{index}.txt").write_text("x")
        found = holds_protected(
            os.path.realpath(workspace),
            "Data/Postmortems",
            self.PATTERNS,
            WalkBudget(5),
        )
        assert found == (
            "Data/Postmortems",
            "Data/**/*.accdb: too many entries to look through",
        )

    def test_many_folders_share_one_budget(self, workspace):
        """A command naming many folders without data does not walk each in full."""
        for index in range(40):
            folder = workspace / "Data" / "Postmortems" / f"Case-{index}"
            folder.mkdir()
            (folder / "raw.log").write_text("x", encoding="utf-8")
        budget = WalkBudget(30)
        ws = os.path.realpath(workspace)
        answers = [
            holds_protected(ws, f"Data/Postmortems/Case-{i}", self.PATTERNS, budget)
            for i in range(40)
        ]
        assert answers[0] is None
        assert budget.left <= 0
        assert answers[-1] is not None

    def test_folder_without_data_holds_nothing(self, workspace):
        """An existing folder under Data with no database is not protected data."""
        ws = os.path.realpath(workspace)
        assert holds_protected(ws, "Data/Postmortems", self.PATTERNS) is None
        assert holds_protected(ws, "Data", self.PATTERNS) == (DB, "Data/**/*.accdb")


class TestUnencodableNames:
    @pytest.mark.parametrize(
        "argv", [("tee", "\ud800"), ("cp", "a", "\ud800/x"), ("touch", "Data/\ud800")]
    )
    def test_rejects_write_to_a_name_no_file_system_holds(self, workspace, argv):
        """A written name with a lone surrogate (JSON input) is never allowed; no raise."""
        place = make_place(workspace, workspace, workspace / "Logs", None, {})
        verdict = evaluate(argv, Level.L3, POLICY, place).verdict
        assert not verdict.allowed
        assert verdict.required_level is None


class TestResolveWord:
    @pytest.mark.parametrize(
        "word",
        [
            "Data/site/site.accdb",
            "./Data/../Data/site",
            "scripts/../Data/site/site.accdb",
            "site-link/site.accdb",
            "site-link/../Data2",
            "missing/../site-link",
            "missing/deeper/x.accdb",
            "Data/site/../../..",
            "../ws/Data",
            "{ws}/Data/site",
            "{ws}/site-link",
            "/tmp/../{ws}/Data",
            r"Data\site\site.accdb",
        ],
    )
    def test_same_answer_as_realpath(self, workspace, word):
        """The cheap resolver answers as ``resolve_target`` (realpath) does."""
        ws = os.path.realpath(workspace)
        text = word.format(ws=ws)
        for base in (ws, f"{ws}/Data"):
            assert _resolve_word(text, base, ws) == resolve_target(text, base)


_PIECES = st.sampled_from(
    [
        *("Data", "data", "site", "site.accdb", "..", ".", "", "*", "[", "[!a]"),
        *("\\", ":", "C:", "~", "$X", "\ud800", "\udcff", "-DatabasePath:", "db="),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(st.characters(exclude_categories=()), max_size=40),
            st.lists(_PIECES, max_size=6).map("/".join),
            st.lists(_PIECES, max_size=4).map("".join),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_named_protected_never_raises(tmp_path_factory, words, pwsh):
    """Any words (lone surrogates, globs, drives, ..) answer; nothing raises."""
    ws = tmp_path_factory.getbasetemp() / "never-raises"
    (ws / "Data" / "site").mkdir(parents=True, exist_ok=True)
    (ws / "Data" / "site" / "site.accdb").touch()
    root = os.path.realpath(ws)
    found = named_protected(
        ("tool", *words),
        pwsh=pwsh,
        cwd=root,
        workspace=root,
        patterns=TestNamedProtected.PATTERNS,
    )
    assert found is None or found.glob
