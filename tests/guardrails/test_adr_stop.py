"""The ADR stop: compiled components and schema changes wait for an ADR.

Judged with a policy that lets dynamic code run at L1 (as contained execution
or a project rule would), so the ADR stop is the only thing that can refuse.
"""

# ruff: noqa: S608 - the SQL here is test data for the schema-change detector

from __future__ import annotations

import base64
import shlex

import pytest
from gitrepo import Repo

from statetrace_guard.evaluate import evaluate, make_place
from statetrace_guard.guardrails.inspect import Inspector
from statetrace_guard.levels import Level
from statetrace_guard.policy import load_policy_bytes

TASK = "ST-A-001"
LENIENT = load_policy_bytes(
    b'extends = "builtin:statetrace"\nname = "lenient"\n[effects]\ndynamic = "L1"\n',
    "lenient.toml",
)
GENERIC = load_policy_bytes(
    b'name = "generic"\n[effects]\ndynamic = "L1"\n', "generic.toml"
)


def encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def pwsh(script: str) -> list[str]:
    return ["pwsh", "-NoProfile", "-Command", script]


OLEDB = (
    "$c = New-Object System.Data.OleDb.OleDbConnection "
    "'Provider=Microsoft.ACE.OLEDB.12.0;Data Source=Data\\WLLS\\WLLS.accdb'; "
    "$c.Open(); $k = $c.CreateCommand(); "
)

# (argv, kind): each blocked without an ADR naming the task.
GATED = [
    (pwsh("Add-Type -TypeDefinition 'public class A { }'"), "add-type"),
    (pwsh("Microsoft.PowerShell.Utility\\Add-Type -Path Native.cs"), "add-type"),
    (pwsh("Set-Alias at Add-Type; at -AssemblyName System.Windows.Forms"), "add-type"),
    (
        pwsh("$t = 'class A {}'; & (Get-Command Add-Type) -TypeDefinition $t"),
        "add-type",
    ),
    (
        ["powershell", "-enc", encoded("Add-Type -TypeDefinition 'class B {}'")],
        "add-type",
    ),
    (
        ["bash", "-c", f"pwsh -NoProfile -e {encoded('Add-Type -Path x.cs')}"],
        "add-type",
    ),
    (pwsh("[Reflection.Assembly]::LoadFrom('Lib.dll')"), "add-type"),
    (
        pwsh(
            "$p = New-Object Microsoft.CSharp.CSharpCodeProvider; "
            "$p.CompileAssemblyFromSource($o, $src)"
        ),
        "add-type",
    ),
    (["csc", "/out:Tool.exe", "Tool.cs"], "csc"),
    (["C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe", "a.cs"], "csc"),
    (["vbc", "a.vb"], "csc"),
    (["dotnet", "new", "console", "-o", "Tool"], "dotnet-new"),
    (["dotnet", "new", "classlib"], "dotnet-new"),
    (["dotnet", "add", "package", "Newtonsoft.Json"], "dotnet-add-package"),
    (
        ["dotnet", "add", "App.csproj", "reference", "../Lib/Lib.csproj"],
        "dotnet-add-package",
    ),
    (["dotnet", "package", "add", "Serilog"], "dotnet-add-package"),
    (["msbuild", "New.csproj"], "msbuild-new-project"),
    (["dotnet", "build", "New.csproj"], "msbuild-new-project"),
    (["gcc", "-c", "native.c"], "native-compile"),
    (["cc", "native.c"], "native-compile"),
    (["x86_64-w64-mingw32-gcc", "-o", "build/tool.exe", "tool.c"], "native-compile"),
    (["bash", "-c", "cd src && gcc -O2 -o ../bin/tool tool.c"], "native-compile"),
    (["cl.exe", "/c", "native.c"], "native-compile"),
    (
        pwsh(
            OLEDB
            + "$k.CommandText = 'CREATE TABLE Hosts (Id INT)'; $k.ExecuteNonQuery()"
        ),
        "schema-change",
    ),
    (
        pwsh(
            OLEDB
            + '$k.CommandText = "ALTER TABLE Hosts ADD COLUMN Site TEXT"; $k.ExecuteNonQuery()'
        ),
        "schema-change",
    ),
    (
        pwsh(
            OLEDB
            + "$k.CommandText = 'drop   index ix_host ON Hosts'; $k.ExecuteNonQuery()"
        ),
        "schema-change",
    ),
    (
        pwsh(
            OLEDB
            + "$k.CommandText = 'SELECT * INTO HostsCopy FROM Hosts'; $k.ExecuteNonQuery()"
        ),
        "schema-change",
    ),
    (
        pwsh(
            OLEDB
            + "$k.CommandText = 'CRE' + 'ATE TABLE T (x INT)'; $k.ExecuteNonQuery()"
        ),
        "schema-change",
    ),
    (
        pwsh(
            OLEDB + "$k.CommandText = Get-Content schema.sql -Raw; $k.ExecuteNonQuery()"
        ),
        "schema-change",
    ),
    (
        pwsh(
            "$db = (New-Object -ComObject DAO.DBEngine.120).OpenDatabase('Data\\x.mdb'); "
            "$t = $db.CreateTableDef('Sites')"
        ),
        "schema-change",
    ),
    (
        pwsh(
            "$cn = New-Object -ComObject ADODB.Connection; $cn.Open($cs); "
            "$cn.Execute('CREATE INDEX ix ON Hosts (Name)')"
        ),
        "schema-change",
    ),
    (
        [
            "powershell",
            "-EncodedCommand",
            encoded(
                OLEDB
                + "$k.CommandText = 'CREATE TABLE X (a INT)'; $k.ExecuteNonQuery()"
            ),
        ],
        "schema-change",
    ),
    (["sqlite3", "Data/cache.sqlite", "CREATE TABLE t (x)"], "schema-change"),
    (
        pwsh(
            "$cat = New-Object -ComObject ADOX.Catalog; "
            "$cat.Create('Provider=Microsoft.ACE.OLEDB.12.0;Data Source=Data\\New.accdb')"
        ),
        "new-store",
    ),
    (["cp", "Data/WLLS/WLLS.accdb", "scratch/Copy.accdb"], "new-store"),
    (
        ["python3", "-c", "import sqlite3; sqlite3.connect('Data/new.sqlite')"],
        "new-store",
    ),
]
# Each allowed without any ADR.
NOT_GATED = [
    ["gcc", "--version"],
    ["gcc", "-fsyntax-only", "native.c"],
    ["gcc", "-o", "/tmp/guard-adr-test-out", "native.c"],
    ["msbuild", "Existing.csproj"],
    ["dotnet", "build", "Existing.csproj"],
    ["dotnet", "test", "Existing.csproj"],
    ["dotnet", "new", "list"],
    pwsh(OLEDB + "$k.CommandText = 'SELECT Name FROM Hosts'; $r = $k.ExecuteReader()"),
    pwsh(
        OLEDB
        + "$k.CommandText = \"UPDATE Hosts SET Site = 'X' WHERE Id = 1\"; $k.ExecuteNonQuery()"
    ),
    ["grep", "-rn", "CREATE TABLE", "docs"],
    ["cp", "Data/WLLS/WLLS.accdb", "Data/Existing.accdb"],
    ["cp", "Data/WLLS/WLLS.accdb", "/tmp/guard-adr-backup.accdb"],
    pwsh("Get-Content Data/x.accdb"),
]


@pytest.fixture
def repo(tmp_path):
    repo = Repo(tmp_path / "ws")
    tracked = (
        "Existing.csproj",
        "native.c",
        "Data/WLLS/WLLS.accdb",
        "Data/Existing.accdb",
        "Data/cache.sqlite",
    )
    for path in tracked:
        repo.write(path, b"x\n")
    repo.commit("project", *tracked)
    repo.write("New.csproj", b"<Project/>\n")
    return repo


def judge(repo, argv, *, task=TASK, policy=LENIENT):
    place = make_place(repo.root, repo.root, repo.root / "Logs", None, {})
    inspector = Inspector(
        workspace=place.decide.workspace,
        cwd=place.decide.cwd,
        log_dir=str(repo.root / "Logs"),
        env={"PATH": "/usr/bin:/bin"},
        task_id=task,
    )
    return evaluate(argv, Level.L1, policy, place, inspector).verdict


def write_adr(repo, name, text):
    repo.write(f"docs/adr/{name}", text.encode())


class TestAdrStop:
    """Blocked without an ADR naming the task, allowed with one."""

    @pytest.mark.parametrize(
        ("argv", "kind"),
        GATED,
        ids=lambda v: shlex.join(v)[:60] if isinstance(v, list) else v,
    )
    def test_rejects_without_an_adr(self, repo, argv, kind):
        """The block names the kind and says exactly what to do."""
        verdict = judge(repo, argv)
        assert not verdict.allowed, verdict.reasons
        assert f"adr:{kind}" in verdict.rules, verdict.reasons
        text = "\n".join(verdict.reasons)
        assert "open an ADR under docs/adr/ naming ST-A-001, then retry" in text
        assert any(rule.startswith("adr:") for rule in verdict.rules)

    @pytest.mark.parametrize(
        ("argv", "kind"),
        GATED,
        ids=lambda v: shlex.join(v)[:60] if isinstance(v, list) else v,
    )
    def test_accepts_with_an_adr(self, repo, argv, kind):
        """An ADR whose text names the task lets the same command through."""
        write_adr(repo, "0007-native-and-schema.md", f"# ADR 7 ({kind})\n\n{TASK}\n")
        verdict = judge(repo, argv)
        assert verdict.allowed, verdict.reasons

    @pytest.mark.parametrize("argv", NOT_GATED, ids=lambda v: shlex.join(v)[:60])
    def test_accepts_what_adds_no_component(self, repo, argv):
        """Reads, checks, tracked projects and data changes need no ADR."""
        verdict = judge(repo, argv)
        assert not any(rule.startswith("adr:") for rule in verdict.rules), (
            verdict.reasons
        )

    def test_an_adr_naming_the_task_in_its_file_name_counts(self, repo):
        """``docs/adr/ST-A-001-add-type.md`` names the task."""
        write_adr(repo, f"{TASK}-add-type.md", "# Add-Type for the parser\n")
        assert judge(repo, GATED[0][0]).allowed

    def test_an_adr_for_another_task_does_not_count(self, repo):
        """``ST-A-0011`` or ``ST-B-001`` is not ``ST-A-001``."""
        write_adr(repo, "0001-x.md", "Tasks: ST-A-0011, ST-B-001\n")
        write_adr(repo, "ST-A-001.txt", "wrong pattern: not *.md\n")
        assert not judge(repo, GATED[0][0]).allowed

    def test_without_a_task_the_block_says_how_to_get_one(self, repo):
        """A command outside any session cannot be covered by an ADR yet."""
        verdict = judge(repo, GATED[0][0], task=None)
        assert not verdict.allowed
        assert "start the session with --task" in "\n".join(verdict.reasons)

    def test_the_generic_policy_stops_for_nothing(self, repo):
        """Without [adr] applies, the same commands are the policy's alone."""
        for argv, _ in GATED[:3]:
            assert judge(repo, argv, policy=GENERIC).allowed
