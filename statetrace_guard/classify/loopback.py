r"""Loopback URLs: the three spellings a request to the machine itself may take.

Below L3 a session's programs share one network namespace with loopback
only (issue 15.5), so ``curl http://127.0.0.1:8000/`` reaches the session's
own server and nothing else. The classifier calls such a request loopback
traffic only when its URL is unmistakable: ``localhost``, ``127.0.0.1`` or
``[::1]``, exactly so spelled, optionally ``http://``/``https://`` before and
``:PORT`` and a path after. Everything else that may reach the machine
itself (``127.1``, ``0x7f000001``, ``2130706433``, ``[::ffff:127.0.0.1]``,
``localhost.``, ``LOCALHOST``) stays network: a spelling a client or
resolver reads otherwise than this module would be a way out
(``localhost.example.com``, ``127.0.0.1.nip.io``, ``localhost@evil.com``,
``localhost:80@evil.com``, ``localhost\@evil.com``). No ``@``, backslash,
percent sign, whitespace or control character anywhere in the URL, so no
client finds user information or an encoded host in it.
"""

from __future__ import annotations

import re

__all__ = ["is_loopback_url"]

_LOOPBACK = re.compile(
    r"(?:https?://)?"
    r"(?:localhost|127\.0\.0\.1|\[::1\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:[/?#][\x21-\x7e]*)?",
)
_REFUSED = frozenset("@\\%")


def is_loopback_url(text: str) -> bool:
    """Whether ``text`` is a URL (or bare host) that names loopback unmistakably."""
    found = None if _REFUSED & set(text) else _LOOPBACK.fullmatch(text)
    if found is None:
        return False
    port = found.group("port")
    return port is None or 0 < int(port) < 65536  # noqa: PLR2004 - the port range
