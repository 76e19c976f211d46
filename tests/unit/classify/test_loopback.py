"""Loopback URLs: only the unmistakable spellings count (issue 15.5)."""

from __future__ import annotations

import pytest

from statetrace_guard.classify.loopback import is_loopback_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "127.0.0.1",
        "localhost:3000",
        "http://localhost",
        "https://localhost/health?x=1#top",
        "http://[::1]:9000/api/v1",
        "[::1]",
        "http://localhost:65535/",
    ],
)
def test_accepts_loopback(url):
    """localhost, 127.0.0.1 and [::1], with scheme, port and path."""
    assert is_loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost.example.com/",
        "http://127.0.0.1.nip.io/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://127.0.0.2/",
        "http://localhost@evil.com/",
        "http://localhost:80@evil.com/",
        "http://user@localhost/",
        "http://[::ffff:127.0.0.1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://localhost./",
        "http://LOCALHOST/",
        "http://localhost%2f@evil.com/",
        "http://localhost\\@evil.com/",
        "http://localhost:0/",
        "http://localhost:65536/",
        "http://localhost:8080evil.com/",
        "ftp://localhost/",
        "file://localhost/etc/passwd",
        "//localhost/",
        "http://localhost /x",
        "http://evil.com/localhost",
        "",
    ],
)
def test_rejects_look_alikes(url):
    """Every other spelling stays network, also those that do reach loopback."""
    assert not is_loopback_url(url)
