"""Redaction: no raw secret reaches any file; nothing ordinary is touched."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from audit_helpers import make_facts

from statetrace_guard.audit.redact import REDACTED_PREFIX, Redactor, load_key
from statetrace_guard.audit.trail import Trail
from statetrace_guard.errors import AuditError

GH = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEpAIBAAKCAQEA7bq9Xv1nQ2k8yZ"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"

# (argv, the raw secret that must never reach disk)
SECRET_COMMANDS: list[tuple[tuple[str, ...], str]] = [
    (("mysql", "-uroot", "-pS3cretMysql", "db"), "S3cretMysql"),
    (("mysqldump", "--password=DumpPw991", "db"), "DumpPw991"),
    (("psql", "postgresql://app:PgPass777@db.local/app"), "PgPass777"),
    (("curl", "-u", "alice:CurlPw123", "https://example.com"), "CurlPw123"),
    (("curl", "--user", "bob:UserPw456", "https://example.com"), "UserPw456"),
    (
        ("curl", "-H", "Authorization: Bearer tok_live_88aa99bb", "https://api.x"),
        "tok_live_88aa99bb",
    ),
    (
        ("curl", "-H", "Cookie: session=ck_1234567890abcdef", "https://x"),
        "ck_1234567890abcdef",
    ),
    (("curl", "https://api.x.com/v1?token=QueryTok123&page=2"), "QueryTok123"),
    (
        ("curl", "https://s3.x.com/f?X-Amz-Signature=abcdef0123456789"),
        "abcdef0123456789",
    ),
    (
        ("wget", "https://x.blob.core.windows.net/c/f?sv=2020&sig=AzSig%2Fabc123"),
        "AzSig%2Fabc123",
    ),
    (("wget", "--password", "WgetPw321", "https://x/f"), "WgetPw321"),
    (("wget", "--http-password=HttpPw654", "https://x/f"), "HttpPw654"),
    (
        ("git", "clone", "https://oauth2:OauthTok987xyz@gitlab.com/g/p.git"),
        "OauthTok987xyz",
    ),
    (("git", "clone", f"https://{GH}@github.com/o/r.git"), GH),
    (
        (
            "git",
            "-c",
            "http.extraheader=AUTHORIZATION: basic QmFzaWNBdXRoMTIz",
            "fetch",
        ),
        "QmFzaWNBdXRoMTIz",
    ),
    (("gh", "api", "-H", f"Authorization: token {GH}", "/user"), GH),
    (("env", f"GITHUB_TOKEN={GH}", "gh", "pr", "list"), GH),
    (("env", "DB_PASSWORD=EnvDbPw111", "./run.sh"), "EnvDbPw111"),
    (
        (
            "env",
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws",
            "s3",
            "ls",
        ),
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        ("aws", "configure", "set", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
        "AKIAIOSFODNN7EXAMPLE",
    ),
    (("bash", "-c", "export API_TOKEN=ExportTok555 && ./deploy.sh"), "ExportTok555"),
    (("bash", "-c", "curl -u admin:BashCurlPw9 https://x | jq ."), "BashCurlPw9"),
    (("bash", "-c", "mysql -pInlineMy5ql -e 'select 1'"), "InlineMy5ql"),
    (("bash", "-c", "snmpwalk -v2c -c Comm5ecret 10.0.0.1 ifDescr"), "Comm5ecret"),
    (("snmpwalk", "-v2c", "-c", "public", "10.1.1.1"), "public"),
    (("snmpget", "-v", "2c", "-cPrivComm42", "10.1.1.1", "sysName.0"), "PrivComm42"),
    (
        ("snmpwalk", "-v3", "-u", "ops", "-A", "AuthPass88", "-X", "PrivPass99", "sw1"),
        "AuthPass88",
    ),
    (
        ("snmpwalk", "-v3", "-u", "ops", "-A", "AuthPass88", "-X", "PrivPass99", "sw1"),
        "PrivPass99",
    ),
    (
        (
            "pwsh",
            "-Command",
            "Invoke-StateTraceSnmp -Community 'PsComm777' -Target sw1",
        ),
        "PsComm777",
    ),
    (
        ("pwsh", "-Command", "Get-SnmpData -Community PsComm888 -IP 10.0.0.2"),
        "PsComm888",
    ),
    (
        (
            "pwsh",
            "-Command",
            "$s = ConvertTo-SecureString 'PlainPw!23' -AsPlainText -Force; Connect-X -Cred $s",
        ),
        "PlainPw!23",
    ),
    (
        (
            "pwsh",
            "-Command",
            'ConvertTo-SecureString -String "StrPw#45" -AsPlainText -Force',
        ),
        "StrPw#45",
    ),
    (
        ("pwsh", "-c", "ConvertTo-SecureString", "PosPw678", "-AsPlainText", "-Force"),
        "PosPw678",
    ),
    (
        ("pwsh", "-Command", "New-PSDrive -Credential CredUser:CredPw1 -Name Z"),
        "CredUser:CredPw1",
    ),
    (
        (
            "pwsh",
            "-Command",
            "Invoke-RestMethod -Uri https://x -Headers @{Authorization='Bearer PsBear3r99'}",
        ),
        "PsBear3r99",
    ),
    (
        ("pwsh", "-Command", "$env:STATETRACE_API_KEY = 'PsEnvKey42'; ./t.ps1"),
        "PsEnvKey42",
    ),
    (("pwsh", "-Command", "Connect-Db -Password 'PsDbPw55'"), "PsDbPw55"),
    (("sqlcmd", "-S", "srv", "-U", "sa", "-P", "SqlCmdPw1"), "SqlCmdPw1"),
    (("dotnet", "run", "--", "Server=db;User Id=sa;Password=ConnPw#22;"), "ConnPw#22"),
    (("app", "--conn", "Data Source=x;Uid=u;Pwd=ConnPwd33"), "ConnPwd33"),
    (("docker", "login", "-u", "me", "-p", "DockerPw44"), "DockerPw44"),
    (("docker", "login", "--password", "DockerPw55", "ghcr.io"), "DockerPw55"),
    (("docker", "run", "-e", "POSTGRES_PASSWORD=PgEnvPw66", "postgres"), "PgEnvPw66"),
    (("sshpass", "-p", "SshPassPw7", "ssh", "host"), "SshPassPw7"),
    (("redis-cli", "-a", "RedisPw88", "ping"), "RedisPw88"),
    (
        ("ldapsearch", "-x", "-D", "cn=admin", "-w", "LdapPw99", "-b", "dc=x"),
        "LdapPw99",
    ),
    (("zip", "-P", "ZipPw111", "out.zip", "a.txt"), "ZipPw111"),
    (("7z", "a", "-pSevenPw22", "out.7z", "dir"), "SevenPw22"),
    (
        ("keytool", "-list", "-keystore", "ks.jks", "-storepass", "StorePw33"),
        "StorePw33",
    ),
    (
        ("openssl", "pkcs12", "-in", "a.p12", "-passin", "pass:OsslPw44"),
        "pass:OsslPw44",
    ),
    (
        ("tool", "--api-key", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123"),
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
    ),
    (
        ("tool", "run", "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789"),
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789",
    ),
    (("tool", "--token", "glpat-AbCdEfGhIjKlMnOpQrSt"), "glpat-AbCdEfGhIjKlMnOpQrSt"),
    (("echo", "glpat-ZyXwVuTsRqPoNmLkJiHg"), "glpat-ZyXwVuTsRqPoNmLkJiHg"),
    (
        ("echo", "xoxb-123456789012-1234567890123-AbCdEfGhIjKl"),
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    ),
    (
        (
            "curl",
            "-X",
            "POST",
            "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
        ),
        "XXXXsecretXXXX",
    ),
    (("echo", JWT), JWT),
    (("curl", "-H", f"Authorization: Bearer {JWT}", "https://x"), JWT),
    (("printf", PEM), PEM_BODY),
    (("tool", "--client-secret", "ClientSec999"), "ClientSec999"),
    (("tool", "--secret=InlineSec000"), "InlineSec000"),
    (
        ("az", "storage", "blob", "upload", "--account-key", "AzAcctKey111=="),
        "AzAcctKey111==",
    ),
    (
        ("az", "storage", "blob", "list", "--sas-token", "se=2026&sig=SasSig222"),
        "SasSig222",
    ),
    (("helm", "install", "x", "--set", "db.password=HelmPw333"), "HelmPw333"),
    (
        ("npm", "config", "set", "//registry.npmjs.org/:_authToken=NpmTok444abc"),
        "NpmTok444abc",
    ),
    (("tool", "https://user:UrlPw555@host.example/path"), "UrlPw555"),
    (("tool", "https://x.example/cb#access_token=FragTok666"), "FragTok666"),
    (("tool", "-Token", "PsTokVal777"), "PsTokVal777"),
    (("tool", "-Password:PsColonPw8"), "PsColonPw8"),
    (("mongosh", "-u", "admin", "-p", "MongoPw999"), "MongoPw999"),
    (("smbclient", "//srv/share", "-U", "user%SmbPw101"), "SmbPw101"),
]

ORDINARY_COMMANDS: list[tuple[str, ...]] = [
    ("ls", "-la", "/tmp"),
    ("git", "status", "--short"),
    ("git", "push", "-u", "origin", "main"),
    ("git", "commit", "-m", "Fix the token parser tests"),
    ("git", "clone", "https://github.com/org/repo.git"),
    ("git", "log", "--oneline", "-n", "5"),
    ("docker", "run", "-p", "8080:80", "-u", "1000:1000", "nginx"),
    ("docker", "login", "--password-stdin", "-u", "me", "ghcr.io"),
    ("gh", "auth", "login", "--with-token"),
    ("python", "-m", "pytest", "-q", "tests/"),
    ("pytest", "-k", "not slow", "-p", "no:cacheprovider"),
    ("curl", "-sSL", "https://example.com/install.sh", "-o", "install.sh"),
    ("curl", "https://api.example.com/v1/items?page=2&limit=50"),
    ("wget", "-O", "out.tar.gz", "https://example.com/a.tar.gz"),
    ("grep", "-rn", "password", "src/"),
    ("rg", "--type", "py", "api_key"),
    ("ssh", "git@github.com"),
    ("scp", "file.txt", "user@host:/tmp/"),
    ("tar", "-czf", "backup.tgz", "docs"),
    ("make", "-j4", "test"),
    ("npm", "install", "--save-dev", "typescript"),
    ("pip", "install", "-r", "requirements.txt"),
    ("mysql", "-u", "root", "-h", "localhost", "-P", "3306"),
    ("snmpwalk", "-v2c", "10.0.0.1"),
    ("bash", "-c", "git status --short | grep -c M; ls"),
    (
        "pwsh",
        "-NoProfile",
        "-Command",
        "Get-ChildItem -Path docs -Recurse | Select-Object Name",
    ),
    ("pwsh", "-File", "Tools/Invoke-StateTracePipeline.ps1", "-SkipParse"),
    ("pwsh", "-Command", "Get-Content Logs/IngestionMetrics/latest.json"),
    (
        "pwsh",
        "-Command",
        "Invoke-AllowedDownload -Uri https://example.com/x.zip -OutPath x.zip",
    ),
    ("echo", "hello world"),
    ("sed", "-i", "s/foo/bar/g", "README.md"),
    ("find", ".", "-name", "*.py", "-newer", "setup.cfg"),
    ("kubectl", "get", "pods", "-n", "default"),
    ("ruff", "check", "--fix", "."),
    ("openssl", "x509", "-in", "cert.pem", "-noout", "-text"),
    ("ssh-keygen", "-t", "ed25519", "-f", "id_test"),
    ("node", "-e", "console.log(1+1)"),
    ("cat", "config/settings.toml"),
    ("mv", "a.txt", "b.txt"),
    ("cp", "-r", "src", "dst"),
]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(b"k" * 32)


@pytest.mark.parametrize(
    ("argv", "secret"),
    SECRET_COMMANDS,
    ids=[f"{i}-{a[0]}" for i, (a, _) in enumerate(SECRET_COMMANDS)],
)
def test_rejects_secret_reaching_disk(tmp_path, argv, secret):
    """The raw secret appears in no file under the log directory."""
    log_dir = tmp_path / "Logs"
    trail = Trail(log_dir, "s1")
    facts = make_facts(
        argv,
        network=True,
        urls=tuple(word for word in argv if "://" in word),
        effects=("network",),
        reasons=(f"ran {' '.join(argv)}",),
    )
    trail.started(facts, {"landlock": "on"})
    trail.finished(facts, {"exit_code": 0, "duration_ms": 3})
    trail.blocked(facts)
    files = [path for path in log_dir.rglob("*") if path.is_file()]
    assert any("NetOps" in str(path) for path in files)
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert REDACTED_PREFIX.encode() in (log_dir / "Sessions" / "s1.jsonl").read_bytes()


def test_corpus_is_large_enough():
    """At least 60 secret-bearing commands."""
    assert len(SECRET_COMMANDS) >= 60


@pytest.mark.parametrize("argv", ORDINARY_COMMANDS, ids=lambda a: " ".join(a)[:40])
def test_accepts_ordinary_command_unchanged(redactor, argv):
    """Nothing in an ordinary command is redacted."""
    record = redactor.record({"argv": list(argv), "reasons": ["because"]})
    assert record["argv"] == list(argv)


class TestTokens:
    def test_same_secret_same_token(self, redactor):
        """Equal secrets give equal tokens; different secrets different ones."""
        one = redactor.record({"argv": ["mysql", "-pAAAA1111"]})["argv"][1]
        two = redactor.record({"argv": ["x", "--password", "AAAA1111"]})["argv"][2]
        assert one == "-p" + two
        assert re.fullmatch(r"\[REDACTED:[0-9a-f]{8}\]", two)
        assert redactor.token("a") != redactor.token("b")

    def test_key_changes_token(self):
        """Another installation's key gives other tokens."""
        assert Redactor(b"a" * 32).token("x") != Redactor(b"b" * 32).token("x")

    def test_already_redacted_is_left_alone(self, redactor):
        """Redacting twice changes nothing."""
        once = redactor.record(
            {"argv": ["curl", "-u", "a:b12345", "https://x?token=abcd"]}
        )
        assert redactor.record(once) == once

    def test_env_redaction(self, redactor):
        """Secret-named variables are redacted whole; opt-ins stay as seen."""
        env = {
            "DB_PASSWORD": "pw123456",
            "STATETRACE_AGENT_ALLOW_NET": "1",
            "PATH": "/bin",
            "UNSET": None,
        }
        out = redactor.env(env)
        assert out["DB_PASSWORD"].startswith(REDACTED_PREFIX)
        assert out["STATETRACE_AGENT_ALLOW_NET"] == "1"
        assert out["UNSET"] is None
        assert out["PATH"] == "/bin"

    def test_text(self, redactor):
        """Text rules apply to free text."""
        assert "hunter2" not in redactor.text("login with password=hunter2")

    def test_secret_scrubbed_record_wide(self, redactor):
        """A secret found in argv is scrubbed from reasons too."""
        record = redactor.record(
            {"argv": ["x", "--token", "T0kenValue"], "reasons": ["saw T0kenValue"]}
        )
        assert "T0kenValue" not in str(record)

    def test_invalid_utf8_argv_is_made_encodable(self, redactor):
        """Lone surrogates (undecodable bytes) become escapes, not errors."""
        record = redactor.record({"argv": ["ls", "caf\udce9"]})
        record["argv"][1].encode("utf-8")


class TestKey:
    def test_created_private_on_first_use(self, tmp_path):
        """The key file is created with mode 0600 and reused afterwards."""
        path = tmp_path / "home" / "redact.key"
        key = load_key(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_key(path) == key
        assert len(key) == 32

    def test_default_location_is_guard_home(self, tmp_path, monkeypatch):
        """Without a path the key lives in STATETRACE_GUARD_HOME."""
        monkeypatch.setenv("STATETRACE_GUARD_HOME", str(tmp_path / "gh"))
        load_key()
        assert (tmp_path / "gh" / "redact.key").exists()

    @pytest.mark.parametrize("content", ["not hex", "abcd"])
    def test_rejects_bad_key(self, tmp_path, content):
        """A corrupt or short key is an AuditError."""
        path = tmp_path / "redact.key"
        path.write_text(content)
        with pytest.raises(AuditError):
            load_key(path)

    def test_unreadable_home(self, tmp_path):
        """A key path under a file cannot be created: AuditError."""
        blocker = tmp_path / "f"
        blocker.write_text("")
        with pytest.raises(AuditError):
            load_key(blocker / "redact.key")
        with pytest.raises(AuditError):
            load_key(blocker)  # a directory-less read of garbage

    def test_key_outside_log_dir(self, tmp_path):
        """Trail keeps the key in guard's home, never under the log directory."""
        log_dir = tmp_path / "Logs"
        Trail(log_dir, "s1").started(make_facts(), {})
        assert not list(log_dir.rglob("redact.key"))


class TestEdges:
    def test_long_user_only_url_is_a_token(self, redactor):
        """A user-info without password but token-long is redacted."""
        out = redactor.text("https://abcdefghijklmnopqrstuvwxyz0123@host/x")
        assert "abcdefghijklmnopqrstuvwxyz0123" not in out
        assert redactor.text("ssh://git@github.com/x") == "ssh://git@github.com/x"

    def test_text_cache_is_bounded(self, redactor, monkeypatch):
        """The per-redactor text cache is cleared when full."""
        from statetrace_guard.audit import redact  # noqa: PLC0415

        monkeypatch.setattr(redact, "_CACHE_SIZE", 2)
        for n in range(5):
            redactor.text(f"password={n}abc")
        assert len(redactor._texts) <= 2

    def test_key_creation_race(self, tmp_path, monkeypatch):
        """When another process links the key first, its key is used."""

        path = tmp_path / "redact.key"
        theirs = "ab" * 32

        def lose_race(_src, dst):
            Path(dst).write_text(theirs)
            raise FileExistsError(dst)

        monkeypatch.setattr(os, "link", lose_race)
        assert load_key(path) == bytes.fromhex(theirs)

    def test_curl_user_without_password(self, redactor):
        """curl -u user (prompting) has nothing to redact."""
        assert redactor.argv(["curl", "-u", "alice", "https://x"]).words[2] == "alice"

    def test_securestring_without_value(self, redactor):
        """ConvertTo-SecureString followed only by switches is left alone."""
        argv = ["pwsh", "-c", "ConvertTo-SecureString", "-AsPlainText", "-Force"]
        assert list(redactor.argv(argv).words) == argv
