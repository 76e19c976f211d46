"""The secret scan of file content uses redaction's own detectors."""

from __future__ import annotations

import pytest

from statetrace_guard.audit.redact import DETECTORS, Redactor, find_secrets

GITHUB = "ghp_" + "A1b2C3d4" * 5
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----\n"


class TestFindSecrets:
    """Real secret shapes are found, with the line; ordinary code is not."""

    @pytest.mark.parametrize(
        ("text", "detector", "line"),
        [
            ("x = 1\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "aws-access-key", 2),
            (f"token: {GITHUB}\n", "github-token", 1),
            (f"notes\n\n{PRIVATE_KEY}", "private-key", 3),
            (
                (
                    '$c = "Provider=Microsoft.ACE.OLEDB.12.0;Data Source=x.accdb;'
                    'Jet OLEDB:Database Password=Hunter2;"'
                ),
                "connection-string-password",
                1,
            ),
            ("Server=db;User Id=sa;Password=S3cret!;", "connection-string-password", 1),
            ("Password=S3cret;Server=db", "connection-string-password", 1),
            ("url = postgres://admin:S3cret@db.internal/app", "url-password", 1),
            ("k = 'sk-ant-" + "x" * 30 + "'", "api-key", 1),
            ("hook: https://hooks.slack.com/services/T0/B0/abcdef", "slack-webhook", 1),
        ],
    )
    def test_accepts_secrets(self, text, detector, line):
        """Each shape is named with the line it is on."""
        hits = find_secrets(text)
        assert (detector, line) in [(hit.detector, hit.line) for hit in hits]

    @pytest.mark.parametrize(
        "text",
        [
            "password = get_password()\n",
            'api_key = os.environ["API_KEY"]\n',
            "Server=db;User Id=sa;Password={0};",
            "Server=db;User Id=sa;Password=$pwd;",
            "https://user:password@example.com/",
            "the AKIA prefix marks access keys\n",
            "def token(self) -> str: ...\n",
        ],
    )
    def test_rejects_ordinary_code(self, text):
        """Variable names, placeholders and prose are not secrets in a file."""
        assert find_secrets(text) == []

    def test_the_limit_caps_the_hits(self):
        """A file full of keys stops the scan early."""
        text = "\n".join(f"AKIAIOSFODNN7EXAMPL{i}" for i in range(10))
        assert len(find_secrets(text, limit=3)) == 3

    def test_file_detectors_are_redaction_detectors(self):
        """One implementation: every file detector also redacts command lines."""
        redactor = Redactor(b"k" * 32)
        for detector in DETECTORS:
            if detector.in_files and detector.name == "github-token":
                assert GITHUB not in redactor.text(f"echo {GITHUB}")
        line = "Server=db;User Id=sa;Password=S3cret!;"
        assert "S3cret!" not in redactor.text(line)
