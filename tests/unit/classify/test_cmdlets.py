"""Cmdlet specs: binding, written paths, URLs, special rules, Windows natives."""

from __future__ import annotations

import pytest
from pwsh_helpers import CTX, effects, field, script

from statetrace_guard.classify import dotnet
from statetrace_guard.classify.cmdlets import (
    Arg,
    bind,
    canonical_name,
    judge,
    provider_env_name,
)
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import Word
from statetrace_guard.classify.registry import builtin_knowledge

KNOWLEDGE = builtin_knowledge()
ALIASES = {a: c for a, c in KNOWLEDGE.names("pwsh").items() if a != c}


def spec_of(name: str):
    found = KNOWLEDGE.cmdlet(name)
    assert found is not None
    return found


def classify_windows_native(_stem: str, argv: list[str]):
    found = classify_words([Word(a) for a in argv], CTX, "pwsh")
    return found[0] if found and found[0].spec.startswith("windows:") else None


def word(text: str) -> Arg:
    return Arg(text, static=True)


def param(text: str, *, colon: bool = False) -> Arg:
    return Arg(text, static=True, kind="param", colon=colon)


class TestBinding:
    """Parameters bind by name, unambiguous prefix, alias and position."""

    def test_positional(self):
        bound = bind(spec_of("set-content"), [word("a.txt"), word("x")])
        assert [a.text for a in bound.named["path"]] == ["a.txt"]
        assert [a.text for a in bound.named["value"]] == ["x"]

    def test_prefix_and_switch(self):
        args = [param("-Fo"), param("-Pat"), word("a")]
        bound = bind(spec_of("set-content"), args)
        assert "force" in bound.switches
        assert bound.named["path"][0].text == "a"

    def test_ambiguous_prefix_is_unknown(self):
        bound = bind(spec_of("set-content"), [param("-Pa"), word("a")])
        assert bound.unknown == ("pa",)

    def test_colon_value_on_switch(self):
        args = [param("-Force", colon=True), Arg("$false", static=False, kind="expr")]
        bound = bind(spec_of("remove-item"), [*args, word("a")])
        assert bound.named["path"][0].text == "a"

    def test_alias_parameter(self):
        bound = bind(spec_of("set-content"), [param("-LP"), word("a")])
        assert bound.named["literalpath"][0].text == "a"

    def test_splat(self):
        assert bind(
            spec_of("set-content"), [Arg("@p", static=False, kind="splat")]
        ).splat

    def test_unknown_cmdlet(self):
        assert judge("no-such-cmdlet", [], KNOWLEDGE) is None


class TestWrites:
    """Write cmdlets report the paths they write."""

    @pytest.mark.parametrize(
        ("text", "writes"),
        [
            ("Set-Content a.txt x", ["a.txt"]),
            ("sc -Path:b.txt -Value:x", ["b.txt"]),
            ("Add-Content -Value x -Path c.txt", ["c.txt"]),
            ("Out-File -FilePath o.txt", ["o.txt"]),
            ("Out-File -Path o.txt", ["o.txt"]),
            ("New-Item -ItemType Directory d", ["d"]),
            ("Remove-Item a,b", ["a", "b"]),
            ("Remove-Item 'a','b'", ["a", "b"]),
            ("Copy-Item a b", ["b"]),
            ("Copy-Item a", ["."]),
            ("Move-Item a b", ["a", "b"]),
            ("Rename-Item a b", ["a", "b"]),
            ("Export-Csv -Path x.csv", ["x.csv"]),
            ("Expand-Archive a.zip", ["."]),
            ("Expand-Archive a.zip -DestinationPath out", ["out"]),
            ("Compress-Archive src dst.zip", ["dst.zip"]),
            ("Tee-Object -FilePath t.txt", ["t.txt"]),
            ("tee t.txt", ["t.txt"]),
            (
                "Set-ItemProperty HKCU:\\Software\\X -Name a -Value 1",
                ["HKCU:\\Software\\X"],
            ),
            ("Invoke-WebRequest https://x.test -OutFile f.html", ["f.html"]),
            ("Start-BitsTransfer https://x.test/a a.zip", ["a.zip"]),
            ("Save-Module Pester -Path vendor", ["vendor"]),
        ],
    )
    def test_writes(self, text, writes):
        assert field(text, "writes") == writes
        assert "write" in effects(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Tee-Object -Variable x",
            "Get-ChildItem | Tee-Object -Variable x",
            "Get-Content a.txt",
            "Set-Location Tools",
        ],
    )
    def test_reads(self, text):
        assert effects(text) == ["read"]

    def test_computed_path_is_dynamic(self):
        assert effects("Set-Content $p x") == ["dynamic", "write"]

    def test_unknown_parameter_on_a_write_is_dynamic(self):
        assert "dynamic" in effects("Set-Content -Bogus 1 a.txt x")

    def test_splat_on_a_write_is_dynamic(self):
        assert "dynamic" in effects("Remove-Item @p")

    def test_splat_on_a_pure_read_is_fine(self):
        assert effects("Write-Output @p") == ["read"]

    def test_env_drive_sets_a_variable(self):
        assert field("Set-Item Env:FOO 1", "env_sets") == ["FOO"]
        assert field("Set-Item Env:FOO 1", "writes") == []

    def test_function_drive_is_dynamic(self):
        assert "dynamic" in effects("Set-Item function:gci { gci }")

    def test_variable_drive_is_not_a_file(self):
        assert field("Set-Item variable:x 1", "writes") == []

    def test_sc_as_sc_exe(self):
        assert "dynamic" in effects("sc stop guard")

    def test_cd_outside_then_relative_write(self):
        assert field("cd C:\\Windows; sc x.txt hi", "writes") == ["C:/Windows/x.txt"]

    def test_cd_to_provider_then_write_is_dynamic(self):
        assert "dynamic" in effects("cd HKCU:\\Software; New-Item x")

    def test_cd_computed_then_write_is_dynamic(self):
        assert "dynamic" in effects("cd $d; Set-Content x.txt y")

    def test_pop_location_then_write_is_dynamic(self):
        assert "dynamic" in effects("Pop-Location; Set-Content x.txt y")


class TestNetwork:
    """Network cmdlets, remote parameters and UNC paths."""

    @pytest.mark.parametrize(
        "text",
        [
            "Invoke-WebRequest https://x.test",
            "Invoke-RestMethod -Uri https://x.test",
            "Test-NetConnection x.test",
            "Resolve-DnsName x.test",
            "Test-Connection x.test",
            "Find-Module Pester",
            "Enter-PSSession srv",
            "Get-Service -ComputerName srv",
            "Get-Process -Comp srv",
            "Get-CimInstance Win32_OS -CimSession $s",
            "Get-Content \\\\srv\\share\\x",
        ],
    )
    def test_network(self, text):
        assert "network" in effects(text)

    def test_urls(self):
        assert field("iwr -Uri https://x.test/a", "urls") == ["https://x.test/a"]


class TestInstallAndDynamic:
    """Installs and code runners."""

    @pytest.mark.parametrize(
        "text",
        [
            "Install-Module Pester",
            "Update-Module Pester",
            "Register-PSRepository -Name x",
            "Set-ExecutionPolicy RemoteSigned",
        ],
    )
    def test_install(self, text):
        assert "install" in effects(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Invoke-Expression x",
            "iex x",
            "Start-Process x",
            "saps x",
            "start x",
            "Invoke-Item x",
            "Add-Type -TypeDefinition x",
            "New-Object -ComObject X",
            "New-Object $t",
            "New-Object Some.Unknown.Type",
            "Import-Module .\\x.psm1",
            "Import-Module $m",
            "Import-Module SomeModule",
            "Start-Job -FilePath x.ps1",
            "icm $block",
            "gci | % Delete",
            "gci | ForEach-Object -MemberName Kill",
            "gci | Where-Object -FilterScript $f",
            "gci | % -Begin $b -Process { $_ }",
            "r",
        ],
    )
    def test_dynamic(self, text):
        assert "dynamic" in effects(text)

    @pytest.mark.parametrize(
        "text",
        [
            "Import-Module Pester",
            "Import-Module Microsoft.PowerShell.Utility",
            "gci | % Name",
            "New-Object System.Text.StringBuilder",
        ],
    )
    def test_read(self, text):
        assert effects(text) == ["read"]

    def test_import_module_path_is_named_for_policy(self):
        (command,) = script("Import-Module .\\Modules\\ParserWorker.psm1")
        assert command.script == "Modules/ParserWorker.psm1"


class TestDotnet:
    """Static and instance .NET calls."""

    @pytest.mark.parametrize(
        ("type_name", "method", "effect"),
        [
            ("System.IO.File", "WriteAllText", "write"),
            ("IO.File", "ReadAllText", "read"),
            ("IO.Directory", "Delete", "write"),
            ("Net.WebClient", "new", "network"),
            ("Net.Dns", "GetHostEntry", "network"),
            ("System.Net.Http.HttpClient", "new", "network"),
            ("scriptblock", "Create", "dynamic"),
            ("System.Management.Automation.ScriptBlock", "Create", "dynamic"),
            ("Diagnostics.Process", "Start", "dynamic"),
            ("math", "Round", "read"),
            ("Environment", "GetEnvironmentVariable", "read"),
            ("Some.Unknown", "Thing", "dynamic"),
            ("IO.StreamWriter", "new", "dynamic"),
            ("Text.StringBuilder", "new", "read"),
        ],
    )
    def test_static(self, type_name, method, effect):
        assert dotnet.static_member_effect(type_name, method, KNOWLEDGE).value == effect

    @pytest.mark.parametrize(
        ("method", "effect"),
        [
            ("ToUpper", "read"),
            ("DownloadString", "network"),
            ("DownloadFile", "dynamic"),
            ("WriteAllText", "write"),
            ("Invoke", "dynamic"),
            ("Frobnicate", "dynamic"),
        ],
    )
    def test_instance(self, method, effect):
        assert dotnet.instance_method_effect(method, KNOWLEDGE).value == effect

    def test_normalize_type(self):
        assert dotnet.normalize_type("[System.IO.File]", KNOWLEDGE) == "io.file"

    def test_static_call_on_type_in_variable_is_instance(self):
        assert effects("$t::Frob()") == ["dynamic", "read"]

    def test_write_target_reported(self):
        assert field("[IO.File]::WriteAllText('a.txt', 'x')", "writes") == ["a.txt"]

    def test_computed_write_target_is_dynamic(self):
        assert "dynamic" in effects("[IO.File]::WriteAllText($p, 'x')")


class TestWindowsNatives:
    """schtasks, setx, reg, icacls, certutil, bitsadmin, package managers."""

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["schtasks", "/Query", "/TN", "X"], {"read"}),
            (["schtasks", "/Run", "/TN", "X"], {"write"}),
            (["schtasks", "/Create", "/TN", "X"], {"write", "dynamic"}),
            (["schtasks"], {"dynamic"}),
            (["setx", "X", "1"], {"write", "dynamic"}),
            (["reg", "query", "HKCU\\X"], {"read"}),
            (["reg", "export", "HKCU\\X", "x.reg"], {"write"}),
            (["reg", "add", "HKCU\\X"], {"write", "dynamic"}),
            (["icacls", "x"], {"read"}),
            (["icacls", "x", "/grant", "u:F"], {"write"}),
            (
                ["certutil", "-urlcache", "-f", "https://x.test/a", "a"],
                {"network", "write"},
            ),
            (["certutil", "-decode", "a.b64", "a.exe"], {"write"}),
            (["certutil", "-hashfile", "a"], {"read"}),
            (["certutil", "-addstore", "root", "a.cer"], {"dynamic"}),
            (["bitsadmin", "/list"], {"read"}),
            (
                ["bitsadmin", "/transfer", "j", "https://x.test/a", "C:\\a"],
                {"network", "write", "dynamic"},
            ),
            (["winget", "install", "x"], {"install", "network"}),
            (["winget", "search", "x"], {"network"}),
            (["winget", "frob"], {"dynamic"}),
            (["sc", "query", "x"], {"read"}),
            (["sc", "stop", "x"], {"write", "dynamic"}),
            (["msiexec", "/i", "x.msi"], {"install", "dynamic"}),
            (["whoami"], {"read"}),
            (["ping", "x.test"], {"network"}),
            (["mshta", "x"], {"dynamic"}),
        ],
    )
    def test_natives(self, argv, expected):
        command = classify_windows_native(argv[0], argv)
        assert command is not None
        assert {e.value for e in command.effects} == expected

    def test_unknown_native(self):
        assert classify_windows_native("git", ["git"]) is None

    def test_setx_env(self):
        command = classify_windows_native("setx", ["setx", "X", "1", "/M"])
        assert command is not None
        assert command.env_sets == ("X",)
        assert command.writes == ("HKLM:\\Environment",)


class TestTables:
    """The tables are consistent."""

    def test_aliases_resolve_in_one_step(self):
        assert all(c == c.lower() and c not in ALIASES for c in ALIASES.values())

    def test_write_and_network_cmdlets_are_specced(self):
        for name in ("set-content", "out-file", "invoke-webrequest", "install-module"):
            assert KNOWLEDGE.cmdlet(name) is not None

    def test_canonical_name(self):
        assert canonical_name("iwr", KNOWLEDGE) == "invoke-webrequest"
        assert canonical_name("get-content", KNOWLEDGE) == "get-content"

    def test_provider_env_name(self):
        assert provider_env_name("env:\\X") == "X"
        assert provider_env_name("Env:") is None
        assert provider_env_name("C:\\x") is None
