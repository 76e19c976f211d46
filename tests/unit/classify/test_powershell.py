"""The PowerShell walker and pwsh's own command line."""

from __future__ import annotations

import pytest
from pwsh_helpers import CTX, argv, argv_effects, effects, field, script

import statetrace_guard.classify.powershell as module
from statetrace_guard.classify.dispatch import classify_words
from statetrace_guard.classify.model import ClassifyContext
from statetrace_guard.classify.powershell import (
    MAX_DEPTH,
    classify_pwsh_argv,
    classify_pwsh_script,
    is_pwsh_program,
)


class TestStatements:
    """Every statement form is walked."""

    @pytest.mark.parametrize(
        "text",
        [
            "if ($true) { iwr https://x.test }",
            "if ($a) { gci } elseif ($b) { iwr https://x.test } else { gci }",
            "foreach ($i in 1..3) { iwr https://x.test }",
            "for ($i=0; $i -lt 2; $i++) { iwr https://x.test }",
            "while ($x) { iwr https://x.test }",
            "do { iwr https://x.test } until ($x)",
            "switch ($x) { 1 { iwr https://x.test } }",
            "try { gci } catch { iwr https://x.test } finally { gci }",
            "trap { iwr https://x.test } gci",
            "function f { iwr https://x.test }",
            "filter f { iwr https://x.test }",
            "$x = iwr https://x.test",
            "$x += (iwr https://x.test)",
            "$(iwr https://x.test)",
            "@(iwr https://x.test)",
            "@{ a = (iwr https://x.test) }",
            "[void](iwr https://x.test)",
            "gci && iwr https://x.test",
            "gci || iwr https://x.test",
            "gci; iwr https://x.test",
            'Write-Output "$(iwr https://x.test)"',
            "& { iwr https://x.test }",
            ". { iwr https://x.test }",
            "gci | % { iwr https://x.test }",
            "gci | ? { iwr https://x.test }",
            "Invoke-Command { iwr https://x.test }",
            "Start-Job { iwr https://x.test }",
            "$sb = { iwr https://x.test }",
            "param($a = (iwr https://x.test)) gci",
        ],
    )
    def test_network_found_anywhere(self, text):
        assert "network" in effects(text)

    @pytest.mark.parametrize(
        "text",
        [
            "$PSVersionTable.PSVersion",
            "$env:STATETRACE_AGENT_ALLOW_NET",
            "$x = 1; $x + 2",
            "[math]::Round(1.5)",
            "'abc'.ToUpper()",
            "1..3 | % { $_ }",
            "",
            "# only a comment",
        ],
    )
    def test_expressions_read(self, text):
        assert effects(text) == ["read"]

    def test_function_called_after_definition(self):
        commands = script("function f { Remove-Item a.txt }; f")
        assert [c.spec for c in commands] == ["pwsh:remove-item", "pwsh:function"]

    def test_function_shadowing_a_cmdlet_keeps_its_body(self):
        assert "network" in effects("function Get-Content { iwr https://x.test }; gc x")

    def test_alias_defined_then_used(self):
        assert "network" in effects("Set-Alias g iwr; g https://x.test")

    def test_alias_with_dynamic_target(self):
        assert "dynamic" in effects("Set-Alias g $x; g https://x.test")


class TestCommandNames:
    """Names resolve like PowerShell resolves them."""

    @pytest.mark.parametrize(
        "text",
        [
            "Invoke-WebRequest https://x.test",
            "INVOKE-WEBREQUEST https://x.test",
            "iwr https://x.test",
            "IWR https://x.test",
            "i`wr https://x.test",
            "& 'iwr' https://x.test",
            '& "iwr" https://x.test',
            ". iwr https://x.test",
            "Microsoft.PowerShell.Utility\\Invoke-WebRequest https://x.test",
            "curl https://x.test",
            "wget https://x.test",
            "irm https://x.test",
        ],
    )
    def test_spellings_of_invoke_webrequest(self, text):
        assert effects(text) == ["network"]

    @pytest.mark.parametrize(
        "text",
        ["& $x", "& $env:X", '& "i$x"', "& (gcm iwr)", "& $x.y", ". $x", "& ('a'+'b')"],
    )
    def test_computed_names_are_dynamic(self, text):
        assert "dynamic" in effects(text)

    def test_backtick_n_is_a_newline_not_n(self):
        assert effects("I`nvoke-WebRequest https://x.test") == ["dynamic"]

    def test_unknown_verb_noun_is_left_to_policy(self):
        (command,) = script("Invoke-Pester Modules/Tests")
        assert (command.spec, command.name) == ("unknown", "invoke-pester")

    def test_number_in_command_position_is_a_value(self):
        assert effects("1..3") == ["read"]


class TestScripts:
    """Script paths are normalised for the policy."""

    @pytest.mark.parametrize(
        "text",
        [
            "Tools\\X.ps1 -A 1",
            ".\\Tools\\X.ps1 -A 1",
            "Tools/X.ps1 -A 1",
            "./Tools/X.ps1 -A 1",
            "& .\\Tools\\X.ps1 -A 1",
            ". .\\Tools\\X.ps1 -A 1",
            "Tools\\..\\Tools\\X.ps1 -A 1",
            "pwsh Tools\\X.ps1 -A 1",
            "pwsh -File Tools\\X.ps1 -A 1",
            "pwsh -NoProfile -STA -f Tools/X.ps1 -A 1",
        ],
    )
    def test_script_forms(self, text):
        (command,) = script(text)
        assert (command.spec, command.script, command.name) == (
            "script",
            "Tools/X.ps1",
            "tools/x.ps1",
        )
        assert command.effects == frozenset({"dynamic"})
        assert command.argv[1:] == ("-A", "1")

    def test_script_outside_workspace_has_no_script_path(self):
        (command,) = script("..\\..\\evil.ps1")
        assert command.script is None
        assert command.spec == "script"

    def test_set_location_moves_script_paths(self):
        commands = script("cd Tools; .\\X.ps1")
        assert commands[-1].script == "Tools/X.ps1"

    def test_nested_pwsh_with_computed_script_args(self):
        commands = script("pwsh Tools\\X.ps1 -Hosts (Get-Content h.txt)")
        assert [c.spec for c in commands] == ["pwsh:get-content", "script"]

    def test_nested_pwsh_with_computed_script_is_dynamic(self):
        assert effects("pwsh $x") == ["dynamic"]


class TestRedirection:
    """Redirections write files; $null and merges do not."""

    @pytest.mark.parametrize(
        ("text", "target"),
        [
            ("gci > out.txt", "out.txt"),
            ("gci >> out.txt", "out.txt"),
            ("gci 2> err.txt", "err.txt"),
            ("gci 2>err.txt", "err.txt"),
            ("gci *> all.txt", "all.txt"),
            ("gci 3>> w.txt", "w.txt"),
            ('"x" > out.txt', "out.txt"),
            ("git status > s.txt", "s.txt"),
        ],
    )
    def test_writes(self, text, target):
        assert field(text, "redirects") == [target]
        assert "write" in effects(text)

    @pytest.mark.parametrize(
        "text",
        ["gci > $null", "gci 2>$null", "gci *>$null", "gci 2>&1", "gci | Out-Null"],
    )
    def test_not_writes(self, text):
        assert effects(text) == ["read"]

    def test_computed_target_is_dynamic(self):
        assert effects("gci > $p") == ["dynamic", "read", "write"]

    def test_cd_then_redirect(self):
        assert field("cd Logs; gci > Sessions\\x", "redirects") == ["Logs/Sessions/x"]


class TestEnvironment:
    """Environment variables set by the script are reported."""

    @pytest.mark.parametrize(
        "text",
        [
            "$env:STATETRACE_AGENT_ALLOW_NET = '1'",
            "${env:STATETRACE_AGENT_ALLOW_NET} = '1'",
            "$ENV:STATETRACE_AGENT_ALLOW_NET = 1",
            "[Environment]::SetEnvironmentVariable('STATETRACE_AGENT_ALLOW_NET', '1')",
            "Set-Item Env:STATETRACE_AGENT_ALLOW_NET 1",
            "Set-Content env:\\STATETRACE_AGENT_ALLOW_NET 1",
            "setx STATETRACE_AGENT_ALLOW_NET 1",
        ],
    )
    def test_env_sets(self, text):
        names = [n.upper() for n in field(text, "env_sets")]
        assert names == ["STATETRACE_AGENT_ALLOW_NET"]

    def test_path_hijack_is_dynamic(self):
        assert "dynamic" in effects("$env:PATH = 'C:\\evil'; git status")

    def test_persistent_scope_writes_registry(self):
        text = "[Environment]::SetEnvironmentVariable('X', '1', 'User')"
        assert field(text, "writes") == ["HKCU:\\Environment"]


class TestPwshArgv:
    """pwsh's own options."""

    @pytest.mark.parametrize(
        "words",
        [
            ("pwsh", "-c", "iwr https://x.test"),
            ("pwsh", "-Command", "iwr", "https://x.test"),
            ("pwsh", "-comm", "iwr https://x.test"),
            ("pwsh", "/c", "iwr https://x.test"),
            ("pwsh", "--command", "iwr https://x.test"),
            ("pwsh", "\u2013Command", "iwr https://x.test"),
            ("PWSH.EXE", "-NoLogo", "-NoProfile", "-c", "iwr https://x.test"),
            ("pwsh", "-nop", "-noni", "-ep", "Bypass", "-c", "iwr https://x.test"),
            ("pwsh", "-ExecutionPolicy", "Bypass", "-w", "hidden", "-c", "iwr x"),
            ("powershell", "iwr", "https://x.test"),
            ("C:\\Windows\\System32\\powershell.exe", "-c", "iwr https://x.test"),
            ("/usr/bin/pwsh", "-cwa", "iwr https://x.test"),
        ],
    )
    def test_command_forms(self, words):
        assert argv_effects(*words) == ["network"]

    @pytest.mark.parametrize(
        "words",
        [
            ("pwsh",),
            ("pwsh", "-Command", "-"),
            ("pwsh", "-File", "-"),
            ("pwsh", "-NoExit", "-c", "gci"),
            ("pwsh", "-Interactive"),
            ("pwsh", "-wd", "C:\\", "-c", "gci"),
            ("pwsh", "-con", "gci"),
            ("pwsh", "-Command"),
            ("pwsh", "-EncodedCommand"),
        ],
    )
    def test_stdin_or_unknowable_is_dynamic(self, words):
        assert "dynamic" in argv_effects(*words)

    def test_bare_path_for_pwsh_is_a_file(self):
        (command,) = argv("pwsh", "Tools\\X.ps1", "-A")
        assert command.script == "Tools/X.ps1"

    def test_depth_is_bounded(self):
        deep = ClassifyContext(CTX.cwd, CTX.workspace, MAX_DEPTH + 1)
        assert classify_pwsh_script("gci", deep, classify_words)[
            0
        ].effects == frozenset({"dynamic"})
        nested = ClassifyContext(CTX.cwd, CTX.workspace, MAX_DEPTH)
        assert (
            classify_pwsh_argv(["pwsh", "-c", "gci"], nested, classify_words)[0].spec
            == "unknown"
        )

    def test_nested_quotes(self):
        assert argv_effects("pwsh", "-c", "pwsh -c \"pwsh -c 'iwr x'\"") == ["network"]

    @pytest.mark.parametrize(
        "name", ["pwsh", "PWSH.exe", "powershell", "C:\\x\\powershell.exe", "/opt/pwsh"]
    )
    def test_is_pwsh_program(self, name):
        assert is_pwsh_program(name)

    def test_is_not_pwsh_program(self):
        assert not is_pwsh_program("bash")


class TestTolerance:
    """Documentation placeholders and grammar gaps parse; errors are dynamic."""

    @pytest.mark.parametrize(
        "text",
        [
            "Select-String -Path . -Pattern <term> -Recurse",
            "Get-ChildItem | Select-Object FullName, Length",
            "Get-ChildItem | Select-Object FullName,Length",
            "git diff HEAD~1 -- Modules",
            "Get-Content [-Raw] README.md",
        ],
    )
    def test_reads(self, text):
        assert effects(text) == ["read"]

    def test_digits_in_parameter_names(self):
        (command,) = script("Some-Function -ExpectedSha256 abc")
        assert command.argv == ("Some-Function", "-ExpectedSha256", "abc")

    def test_braced_placeholder_inside_a_path(self):
        (command,) = script("Tools/X.ps1 -DatabasePath Data/P-{id}.accdb")
        assert command.script == "Tools/X.ps1"

    def test_braced_command_is_not_rewritten(self):
        assert "network" in effects("gci x-{iwr}.txt; iwr https://x.test")

    @pytest.mark.parametrize(
        "text", ["gci (", "& {", "Get-Content 'unterminated", "}}}", "[IO.File]::("]
    )
    def test_parse_errors_are_dynamic(self, text):
        assert "dynamic" in effects(text)

    def test_unsupported_nodes_are_dynamic(self):
        assert "dynamic" in effects("class X { [void] M() { gci } }")

    def test_huge_script_is_bounded(self):
        commands = script("gci;" * 30_000)
        assert "dynamic" in {e.value for c in commands for e in c.effects}

    def test_internal_errors_fail_closed(self, monkeypatch):
        def boom(*_args):
            raise RuntimeError

        monkeypatch.setattr(module, "_classify_script", boom)
        module._cached_script.cache_clear()
        assert module.classify_pwsh_script("gci # boom", CTX, classify_words)[
            0
        ].reasons == ("classifier error: RuntimeError",)
        monkeypatch.setattr(module, "_classify_argv", boom)
        assert module.classify_pwsh_argv(["pwsh"], CTX, classify_words)[
            0
        ].effects == frozenset({"dynamic"})
