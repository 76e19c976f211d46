"""``guard fetch``: judged like L3, written inside the workspace, hash checked."""

from __future__ import annotations

import hashlib
import json

import pytest
from netservers import LoopbackServer, have_tools, make_certificate

from statetrace_guard.online.fetch import parse_fetch

pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))

BODY_SHA = hashlib.sha256(b"x" * 1000).hexdigest()
LOCAL = 'extends = "builtin:statetrace"\nname = "t"\n[[network]]\nid = "lo"\nhost = "127.0.0.1"\n'


@pytest.fixture
def tls(tmp_path):
    certificate = make_certificate(tmp_path)
    with LoopbackServer(certificate) as server:
        yield server, certificate[0]


@pytest.fixture
def online(guard, workspace, tls):
    """The built-in policy plus 127.0.0.1 over https; L3 with the opt-in."""
    (workspace / "guard.toml").write_text(LOCAL)
    (workspace / "dl").mkdir()
    server, cert = tls
    env = {"STATETRACE_AGENT_ALLOW_NET": "1", "SSL_CERT_FILE": str(cert)}

    def fetch(url, *args, level="L3", extra_env=None):
        return guard(
            "fetch", url, "--level", level, *args, env={**env, **(extra_env or {})}
        )

    fetch.env = env
    return fetch, server, workspace


def netops(workspace):
    (path,) = (workspace / "Logs" / "NetOps").glob("*.json")
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


class TestFetch:
    def test_right_hash(self, online):
        """The file lands at --out; NetOps has the computed hash and the path."""
        fetch, server, workspace = online
        result = fetch(
            server.url("/bytes/1000"), "--out", "dl/a.bin", "--sha256", BODY_SHA
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == f"{BODY_SHA}  dl/a.bin\n"
        assert (workspace / "dl" / "a.bin").read_bytes() == b"x" * 1000
        (line,) = netops(workspace)
        assert line["Action"] == "download"
        assert line["Program"] == "guard fetch"
        assert line["Arguments"]["HashSha256"] == BODY_SHA
        assert line["Arguments"]["OutPath"] == "dl/a.bin"
        assert line["Result"]["Status"] == "succeeded"
        assert sorted((workspace / "dl").iterdir()) == [workspace / "dl" / "a.bin"]

    def test_wrong_hash_removes_the_file(self, online):
        """A mismatch: exit 1, nothing at --out, no temporary left behind."""
        fetch, server, workspace = online
        result = fetch(
            server.url("/bytes/1000"), "--out", "dl/a.bin", "--sha256", "0" * 64
        )
        assert result.returncode == 1
        assert b"sha256 mismatch" in result.stderr
        assert list((workspace / "dl").iterdir()) == []
        (line,) = netops(workspace)
        assert (
            line["Arguments"]["HashSha256"] == BODY_SHA
        )  # what came, not what was asked
        assert line["Result"]["Status"] == "failed"

    def test_size_cap(self, online):
        """More than --max-bytes: exit 1, nothing written."""
        fetch, server, workspace = online
        result = fetch(
            server.url("/bytes/5000"), "--out", "dl/a.bin", "--max-bytes", "100"
        )
        assert result.returncode == 1
        assert b"--max-bytes 100" in result.stderr
        assert list((workspace / "dl").iterdir()) == []


class TestRefusals:
    @pytest.mark.parametrize(
        ("args", "level", "env", "expected"),
        [
            (("--out", "dl/a.bin"), "L2", {}, b"needs L3"),
            (
                ("--out", "dl/a.bin"),
                "L3",
                {"STATETRACE_AGENT_ALLOW_NET": "0"},
                b"STATETRACE_AGENT_ALLOW_NET=1",
            ),
            (("--out", "/tmp/a.bin"), "L3", {}, b"write-outside-workspace"),
            (("--out", "Logs/NetOps/x.json"), "L3", {}, b"self-protect"),
        ],
    )
    def test_judged_like_l3(self, online, args, level, env, expected):
        """Level, opt-in and where it writes are judged before anything happens."""
        fetch, server, workspace = online
        result = fetch(server.url("/bytes/10"), *args, level=level, extra_env=env)
        assert result.returncode == 126
        assert expected in result.stderr
        assert netops(workspace)[0]["Action"] == "blocked"

    def test_http_needs_a_rule_saying_so(self, online):
        """https only unless an entry lists http."""
        fetch, server, _ = online
        url = server.url("/bytes/10").replace("https://", "http://")
        result = fetch(url, "--out", "dl/a.bin")
        assert result.returncode == 126
        assert b"lo allows https only" in result.stderr

    def test_unlisted_host(self, online):
        """A host off the allow-list is blocked with its rule."""
        fetch, server, _ = online
        result = fetch(server.url("/bytes/10", host="localhost"), "--out", "dl/a.bin")
        assert result.returncode == 126
        assert b"(rule network:no-rule)" in result.stderr

    def test_redirect_is_judged_again(self, online):
        """A redirect to a host the rules refuse stops the download."""
        fetch, server, workspace = online
        target = server.url("/bytes/10", host="localhost")
        result = fetch(server.url(f"/redirect/{target}"), "--out", "dl/a.bin")
        assert result.returncode == 126
        assert b"no [[network]] entry allows localhost" in result.stderr
        assert list((workspace / "dl").iterdir()) == []

    def test_through_guard_run(self, online, guard):
        """`guard run -- guard fetch ...` is served by the guard itself."""
        fetch, server, workspace = online
        result = guard(
            "run", "--level", "L3", "--", "guard", "fetch", server.url("/bytes/1000"),
            "--out", "dl/b.bin", env=fetch.env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert (workspace / "dl" / "b.bin").stat().st_size == 1000


class TestParse:
    @pytest.mark.parametrize(
        "argv",
        [
            ("guard", "fetch", "https://a.example/x"),
            ("guard", "fetch", "https://a.example/x", "--out"),
            ("guard", "fetch", "https://a.example/x", "--out", "a", "--bogus", "1"),
            ("guard", "fetch", "https://a.example/x", "--out", "a", "--sha256", "xyz"),
            ("curl", "fetch", "https://a.example/x", "--out", "a"),
        ],
    )
    def test_rejects_other_forms(self, argv):
        """Only the exact form is served by the guard; the rest is judged as is."""
        assert parse_fetch(argv) is None

    def test_reads_the_form(self):
        """Options in either spelling."""
        request = parse_fetch(
            (
                "/usr/bin/guard",
                "fetch",
                "https://a.example/x",
                "--out=a",
                "--max-bytes",
                "9",
            )
        )
        assert request is not None
        assert (request.out, request.max_bytes) == ("a", 9)
