"""Redaction: secrets never reach a log file.

A secret becomes ``[REDACTED:<8 hex>]``, the hex being HMAC-SHA256 of the
value under a per-installation key kept in guard's home (``redact.key``,
created with mode 0600 on first use), so a reviewer can tell that two records
used the same secret without learning it.

Two layers find secrets:

* word rules on an argv (and on the words of a script passed to ``bash -c`` or
  ``pwsh -Command``): values of secret-named options (``--password``,
  ``--api-key=...``, ``-Credential``, ``-Community``, ``-storepass``), the
  short options of known programs (``mysql -pX``, ``sshpass -p``,
  ``snmpwalk -c``, ``curl -u user:pass``, ``docker login -p``), and the
  first argument of ``ConvertTo-SecureString``;
* text rules on every string of a record: PEM private key blocks, JWTs, AWS,
  GitHub, GitLab, Slack, OpenAI and Anthropic key shapes, ``Authorization:`` /
  ``Cookie:`` headers, ``Password=``/``Pwd=`` in connection strings,
  ``*_TOKEN=``-style assignments, URL user-info and secret query keys.

Every value found anywhere in a record is then scrubbed from every other
string of that record (a reason quoting the command must not leak it).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from statetrace_guard.errors import AuditError
from statetrace_guard.paths import guard_home

__all__ = [
    "DETECTORS",
    "KEY_FILE_NAME",
    "REDACTED_PREFIX",
    "Detector",
    "Redactor",
    "SecretHit",
    "find_secrets",
    "key_file",
    "load_key",
    "read_key",
]

KEY_FILE_NAME = "redact.key"
REDACTED_PREFIX = "[REDACTED:"
_MIN_SCRUB = 4  # shorter values are replaced where found, not record-wide
_CACHE_SIZE = 4096  # strings remembered per Redactor

# Option names (without dashes) whose value is a secret.
_SECRET_OPTION = re.compile(
    r"(?:[a-z0-9]+[-_])*(?:password|passwd|passphrase|pass-word|token|secret|"
    r"api[-_]?key|access[-_]?key|secret[-_]?key|account[-_]?key|auth[-_]?key|"
    r"credentials?|community|storepass|keypass|srcstorepass|deststorepass|"
    r"srckeypass|destkeypass|passin|passout|pwd|accesstoken|clientsecret|"
    r"authpassword|privpassword|privprotocolpassword|sastoken|pat)",
    re.IGNORECASE,
)
# Options that name a secret but take no value, or take a file/source instead.
_NOT_A_VALUE = re.compile(
    r"(?:no|with|ask|show|use|prompt|print|read|require|skip|allow|from)[-_].*|"
    r".*[-_](?:stdin|file|path|env|command|cmd|helper|prompt|length|type|id|"
    r"name|url)",
    re.IGNORECASE,
)

_SNMP = {"c": "both", "A": "both", "X": "both"}
# program -> short option -> "both" (separate or attached) | "attached".
_SHORT_OPTIONS: dict[str, dict[str, str]] = {
    **{
        p: {"p": "attached"}
        for p in (
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlshow",
            "mariadb",
            "mariadb-dump",
            "7z",
            "7za",
        )
    },
    **{
        p: dict(_SNMP)
        for p in (
            "snmpwalk",
            "snmpget",
            "snmpset",
            "snmpbulkwalk",
            "snmpbulkget",
            "snmpgetnext",
            "snmptrap",
            "snmptable",
            "snmpdelta",
            "snmpstatus",
        )
    },
    **{
        p: {"w": "both"}
        for p in (
            "ldapsearch",
            "ldapmodify",
            "ldapadd",
            "ldapdelete",
            "ldapwhoami",
            "ldappasswd",
        )
    },
    **{
        p: {"p": "both"}
        for p in (
            "sshpass",
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
        )
    },
    **{p: {"P": "both"} for p in ("zip", "unzip", "sqlcmd", "bcp")},
    "redis-cli": {"a": "both"},
}
_LOGIN_PROGRAMS = frozenset(
    {"docker", "podman", "nerdctl", "helm", "skopeo", "buildah", "oras"}
)
_USERPASS_OPTIONS = {
    "curl": ("-u", "--user", "-U", "--proxy-user"),
    "smbclient": ("-U", "--user"),
}
_SECURESTRING = "convertto-securestring"


@dataclass(frozen=True, slots=True)
class _Found:
    """The result of redacting one value: the new text and the raw secrets."""

    text: str
    secrets: frozenset[str]


@functools.lru_cache(maxsize=4096)
def _program(word: str) -> str:
    """Return the lower-case basename of a program word, without ``.exe``."""
    base = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base.removesuffix(".exe")


class Redactor:
    """Replaces secrets in argvs, environments, texts and whole records."""

    def __init__(self, key: bytes) -> None:
        """Keep the per-installation HMAC key."""
        self._key = key
        # text -> (redacted, secrets): records repeat most strings (cwd, rules...)
        self._texts: dict[str, tuple[str, frozenset[str]]] = {}

    def token(self, value: str) -> str:
        """Return ``[REDACTED:<8 hex>]`` for ``value``."""
        raw = value.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, raw, hashlib.sha256).hexdigest()
        return f"{REDACTED_PREFIX}{digest[:8]}]"

    def record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``record`` with every secret replaced, in every string.

        ``argv`` gets the word rules, ``env`` the name rules, and every
        string the text rules; then every secret found is scrubbed from all
        strings of the record.
        """
        found: set[str] = set()
        out = dict(record)
        if isinstance(out.get("argv"), list | tuple):
            argv = self.argv([str(word) for word in out["argv"]])
            out["argv"], found = list(argv.words), set(argv.secrets)
        if isinstance(out.get("env"), Mapping):
            out["env"] = self._env(out["env"], found)
        walked: dict[str, Any] = self._walk(out, lambda text: self._text(text, found))
        long_ones = sorted(
            (s for s in found if len(s) >= _MIN_SCRUB), key=len, reverse=True
        )
        if long_ones:
            walked = self._walk(
                walked, lambda text: _scrub(text, long_ones, self.token)
            )
        return walked

    def argv(self, argv: Sequence[str]) -> _Argv:
        """Return the argv with the word rules applied, and the secrets found."""
        words, found = _redact_words(list(argv), self.token)
        for index, word in enumerate(words):
            if _looks_like_script(word):
                script = self._script(word)
                words[index] = script.text
                found |= script.secrets
        return _Argv(tuple(words), frozenset(found))

    def text(self, text: str) -> str:
        """Return ``text`` with the text rules applied."""
        return self._text(text, set())

    def env(self, env: Mapping[str, str | None]) -> dict[str, str | None]:
        """Return the environment overrides with secret values replaced."""
        return self._env(env, set())

    def _env(self, env: Mapping[str, Any], found: set[str]) -> dict[str, Any]:
        """Redact values of secret-named variables whole, others by text rules."""
        out: dict[str, Any] = {}
        for name, value in env.items():
            if isinstance(value, str) and value and _secret_name(name):
                found.add(value)
                out[name] = self.token(value)
            else:
                out[name] = value
        return out

    def _script(self, script: str) -> _Found:
        """Apply the word rules to the words of a shell or PowerShell script."""
        words = _split_script(script)
        _, found = _redact_words(words, self.token)
        # NOTE(audit): in a script, ``-Credential $cred`` names a variable.
        found = {value for value in found if not value.startswith(("$", "("))}
        text = _scrub(script, sorted(found, key=len, reverse=True), self.token)
        return _Found(text, frozenset(found))

    def _text(self, text: str, found: set[str]) -> str:
        """Apply every text rule, remembering the raw values replaced (cached)."""
        cached = self._texts.get(text)
        if cached is None:
            seen: set[str] = set()
            cached = (self._text_rules(text, seen), frozenset(seen))
            if len(self._texts) >= _CACHE_SIZE:
                self._texts.clear()
            self._texts[text] = cached
        found.update(cached[1])
        return cached[0]

    def _text_rules(self, text: str, found: set[str]) -> str:
        """Apply every text rule to one string."""
        text = _clean(text)
        if not _HINT.search(text):
            return text
        for rule in _TEXT_RULES:
            text = rule.sub(lambda match: self._replace(match, found), text)
        return _redact_urls(text, self.token, found)

    def _replace(self, match: re.Match[str], found: set[str]) -> str:
        """Replace the value groups (named ``v*``) of one text-rule match."""
        whole, start = match.group(0), match.start()
        for name, value in sorted(match.groupdict().items(), reverse=True):
            if not name.startswith("v") or not value:
                continue
            if value.startswith(REDACTED_PREFIX):
                continue
            found.add(value)
            left, right = match.span(name)
            whole = whole[: left - start] + self.token(value) + whole[right - start :]
        return whole

    def _walk(self, value: Any, change: Callable[[str], str]) -> Any:  # noqa: ANN401 - JSON values
        """Apply ``change`` to every string inside a JSON-like value."""
        if type(value) is str:
            return change(value)
        if type(value) is dict or isinstance(value, Mapping):
            return {key: self._walk(item, change) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item, change) for item in value]
        return value


@dataclass(frozen=True, slots=True)
class _Argv:
    """A redacted argv and the raw secrets that were replaced."""

    words: tuple[str, ...]
    secrets: frozenset[str]


def _clean(text: str) -> str:
    r"""Make text encodable as UTF-8: lone surrogates become ``\\x..`` escapes."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace")
    return text


def _secret_name(name: str) -> bool:
    """Return True for environment variable names that hold secrets."""
    upper = name.upper()
    if upper.startswith("STATETRACE_AGENT_ALLOW_"):
        return False
    return bool(_SECRET_ENV_NAME.fullmatch(upper))


_SECRET_ENV_NAME = re.compile(
    r"[A-Z0-9_]*(?:PASSWORD|PASSWD|PASSPHRASE|TOKEN|SECRET|_KEY|APIKEY|"
    r"CREDENTIALS?|_PAT|_PWD|COMMUNITY)|PWD_.*|.*_SECRET_.*|.*_TOKEN_.*"
)


def _looks_like_script(word: str) -> bool:
    """Return True when a word is a script of several words (``bash -c '...'``)."""
    return any(char in word for char in " \t\n;|")


def _split_script(script: str) -> list[str]:
    """Split a script into words as a shell would, falling back to whitespace."""
    try:
        lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        return list(lexer)
    except ValueError:
        return script.split()


def _scrub(text: str, values: Sequence[str], token: Callable[[str], str]) -> str:
    """Replace every occurrence of each known secret in ``text``."""
    for value in values:
        if value in text:
            text = text.replace(value, token(value))
    return text


# ---------------------------------------------------------------- word rules


def _redact_words(
    words: list[str], token: Callable[[str], str]
) -> tuple[list[str], set[str]]:
    """Apply the option rules to a list of words, in place; return the secrets."""
    found: set[str] = set()
    program = ""
    index = 0
    while index < len(words):
        word = words[index]
        name = _program(word)
        if name in _SHORT_OPTIONS or name in _USERPASS_OPTIONS:
            program = name
        step = _redact_at(words, index, program, token, found)
        index += step
    return words, found


def _redact_at(
    words: list[str],
    index: int,
    program: str,
    token: Callable[[str], str],
    found: set[str],
) -> int:
    """Redact what the word at ``index`` marks as secret; return words consumed."""
    word = words[index]
    if _program(word) == _SECURESTRING:
        return 1 + _redact_securestring(words, index + 1, token, found)
    mode, value_start = _option_mode(word, program, words)
    if mode == "inline":
        _replace_word_tail(words, index, value_start, token, found)
        return 1
    if mode == "next" and index + 1 < len(words):
        _replace_word_tail(words, index + 1, 0, token, found)
        return 2
    if mode == "userpass" and index + 1 < len(words):
        _replace_userpass(words, index + 1, token, found)
        return 2
    return 1


def _option_mode(word: str, program: str, words: Sequence[str]) -> tuple[str, int]:
    """Say how a word carries a secret: ``inline`` at an offset, ``next``, or not."""
    if not word.startswith("-") or word in {"-", "--"}:
        return "", 0
    name, sep, _ = word.lstrip("-").partition("=")
    if not sep and word.count("-", 0, 2) == 1:
        name, sep, _ = name.partition(":")  # PowerShell -Password:value
    if _SECRET_OPTION.fullmatch(name) and not _NOT_A_VALUE.fullmatch(name):
        return ("inline", len(word) - len(_)) if sep else ("next", 0)
    if program in _USERPASS_OPTIONS and word in _USERPASS_OPTIONS[program]:
        return "userpass", 0
    return _short_mode(word, program, words)


def _short_mode(word: str, program: str, words: Sequence[str]) -> tuple[str, int]:
    """Apply the known programs' short secret options (``-pSECRET``, ``-c X``)."""
    if len(word) < 2 or word[1] == "-":  # noqa: PLR2004 - "-x" is two characters
        return "", 0
    options = dict(_SHORT_OPTIONS.get(program, {}))
    if words and _program(words[0]) in _LOGIN_PROGRAMS and "login" in words:
        options["p"] = "both"
    mode = options.get(word[1])
    if mode is None:
        return "", 0
    if len(word) > 2:  # noqa: PLR2004 - attached value after "-x"
        return "inline", 2
    return ("next", 0) if mode == "both" else ("", 0)


def _replace_word_tail(
    words: list[str],
    index: int,
    start: int,
    token: Callable[[str], str],
    found: set[str],
) -> None:
    """Replace ``words[index][start:]`` with its redaction token."""
    value = words[index][start:]
    if not value or value.startswith(REDACTED_PREFIX):
        return
    found.add(value)
    words[index] = words[index][:start] + token(value)


def _replace_userpass(
    words: list[str], index: int, token: Callable[[str], str], found: set[str]
) -> None:
    """Redact the password part of ``user:pass`` (or smbclient's ``user%pass``)."""
    word = words[index]
    for separator in (":", "%"):
        user, sep, password = word.partition(separator)
        if sep and password:
            _replace_word_tail(words, index, len(user) + 1, token, found)
            return


def _redact_securestring(
    words: list[str], index: int, token: Callable[[str], str], found: set[str]
) -> int:
    """Redact ``ConvertTo-SecureString``'s string argument; return words consumed."""
    position = index
    while position < len(words) and words[position] not in {";", "|", ")", "&&"}:
        word = words[position]
        if word.lower() == "-string" and position + 1 < len(words):
            _replace_word_tail(words, position + 1, 0, token, found)
            return position + 2 - index
        if not word.startswith(("-", "$", "(")):
            _replace_word_tail(words, position, 0, token, found)
            return position + 1 - index
        position += 1
    return position - index


# ---------------------------------------------------------------- text rules

_V = r"(?!\[REDACTED:)"  # a value that is already a token is left alone
_QUOTED = rf"(?:'(?P<v1>{_V}[^']*)'|\"(?P<v2>{_V}[^\"]*)\"|(?P<v3>{_V}[^\s'\";&|)]+))"


@dataclass(frozen=True, slots=True)
class Detector:
    """One secret shape: a pattern whose ``v*`` groups hold the secret.

    ``markers`` are literal strings at least one of which every match
    contains (compared with the lower-cased text when ``fold``): a file
    without any is skipped at C speed. ``in_files`` marks the shapes that are
    secrets wherever they appear, so the commit guard runs them on staged
    content too; the others (``Authorization:``, ``*_TOKEN=`` assignments,
    a bare ``password=``) are only secrets in a command line, while in source
    code they mostly name variables.
    """

    name: str
    pattern: re.Pattern[str]
    markers: tuple[str, ...]
    in_files: bool = True
    fold: bool = False


def _detector(
    name: str,
    pattern: str,
    markers: tuple[str, ...],
    *,
    flags: int = 0,
    in_files: bool = True,
) -> Detector:
    fold = bool(flags & re.IGNORECASE)
    return Detector(name, re.compile(pattern, flags), markers, in_files, fold)


_AWS_PREFIXES: tuple[str, ...] = (
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "AGPA",
    "AIDA",
    "AIPA",
    "ANPA",
)
_AWS_PREFIXES += ("ANVA", "AROA", "APKA")
_GITLAB = ("pat", "dt", "rt", "ptt", "ft", "soat", "cbt", "imt", "oas", "agent")
# A connection string names its parts: ``Data Source=x;...;Password=y``.
_CONNECTION_PART = (
    r"(?:provider|data source|server|user id|uid|database|initial catalog|dsn|"
    r"driver|host|address)"
)
_CS_PASSWORD = r"(?:jet oledb:(?:new )?database )?(?:password|pwd)\s*=\s*"  # noqa: S105 - a pattern
# Values that stand for a secret rather than being one: {0}, $pwd, %PASS%, <pw>.
_CS_VALUE = rf"{_V}(?![{{$%<*\[])[^;'\"\r\n]+"

DETECTORS: tuple[Detector, ...] = (
    _detector(
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?P<v>.+?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        ("PRIVATE KEY",),
        flags=re.DOTALL,
    ),
    _detector(
        "jwt",
        r"(?P<v>\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
        ("eyJ",),
    ),
    _detector(
        "aws-access-key",
        rf"(?P<v>\b(?:{'|'.join(_AWS_PREFIXES)})[A-Z0-9]{{16}}\b)",
        _AWS_PREFIXES,
    ),
    _detector(
        "github-token",
        r"(?P<v>\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}))",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _detector(
        "gitlab-token",
        rf"(?P<v>\bgl(?:{'|'.join(_GITLAB)})-[A-Za-z0-9_-]{{20,}})",
        tuple(f"gl{kind}-" for kind in _GITLAB),
    ),
    _detector("slack-token", r"(?P<v>\bxox[abposre]-[A-Za-z0-9-]{10,})", ("xox",)),
    _detector(
        "slack-webhook",
        r"hooks\.slack\.com/(?:services|workflows)/(?P<v>[A-Za-z0-9/_-]+)",
        ("hooks.slack.com",),
    ),
    _detector(
        "api-key",
        r"(?P<v>\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})",
        ("sk-",),
    ),
    _detector(
        "connection-string-password",
        rf"\b{_CONNECTION_PART}\s*=[^'\"\r\n]*?;\s*{_CS_PASSWORD}(?P<v>{_CS_VALUE})|"
        rf"(?:^|(?<=[;'\"\s])){_CS_PASSWORD}(?P<v2>{_CS_VALUE});"
        rf"[^'\"\r\n]*?\b{_CONNECTION_PART}\s*=",
        ("password", "pwd"),
        flags=re.IGNORECASE,
    ),
    _detector(
        "auth-header",
        (
            r"\b(?:proxy-)?(?:authorization|cookie|set-cookie|x-api-key|api-key|"
            r"x-auth-token|private-token|x-gitlab-token|x-github-token|"
            r"ocp-apim-subscription-key)['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|"
            rf"token|digest|negotiate|ntlm|apikey|sso-key)\s+)?(?P<v>{_V}[^'\"\r\n}}]+)"
        ),
        ("authori", "cookie", "key", "token"),
        flags=re.IGNORECASE,
        in_files=False,
    ),
    _detector(
        "password-assignment",
        rf"(?:^|(?<=[;'\"\s]))(?:password|pwd)\s*=\s*(?P<v>{_V}[^;'\"\r\n]+)",
        ("password", "pwd"),
        flags=re.IGNORECASE,
        in_files=False,
    ),
    _detector(
        "secret-assignment",
        r"(?<![\w-])(?:\$env:|\$)?[A-Za-z0-9_]*(?:password|passwd|passphrase|"
        r"token|secret|_key|apikey|credentials?|_pat)\s*=\s*" + _QUOTED,
        ("pass", "token", "secret", "key", "credential", "_pat"),
        flags=re.IGNORECASE,
        in_files=False,
    ),
)
_TEXT_RULES: tuple[re.Pattern[str], ...] = tuple(
    detector.pattern for detector in DETECTORS
)

_HINT = re.compile(
    r"PRIVATE KEY|eyJ|A[A-Z]{3}[A-Z0-9]{16}|gh[pousr]_|github_pat_|gl[a-z]+-|xox|"
    r"sk-|authori|cookie|token|pass|pwd|secret|key|credential|://|_pat",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_SECRET_QUERY = re.compile(
    r"(?:[a-z0-9]+[-_])*(?:token|key|apikey|sig|signature|password|passwd|pass|"
    r"pwd|secret|auth|credential|jwt|sas|session|sessionid)",
    re.IGNORECASE,
)
_MIN_USER_TOKEN = 20  # a user-info name this long is a token, not a login


def _redact_urls(text: str, token: Callable[[str], str], found: set[str]) -> str:
    """Redact URL passwords, token-like user names and secret query values."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: _redact_url(match.group(0), token, found), text)


def _redact_url(url: str, token: Callable[[str], str], found: set[str]) -> str:
    """Redact one URL's user-info password and secret query or fragment values."""
    values = list(_url_secrets(url))
    for value in sorted(set(values), key=len, reverse=True):
        if value and not value.startswith(REDACTED_PREFIX):
            found.add(value)
            url = url.replace(value, token(value))
    return url


def _url_secrets(url: str) -> Iterator[str]:
    """Yield the secret values in one URL."""
    try:
        parts = urlsplit(url)
        password, user = parts.password, parts.username
    except ValueError:
        return
    if password:
        yield password
    elif user and len(user) >= _MIN_USER_TOKEN:
        yield user
    for chunk in (parts.query, parts.fragment):
        for pair in re.split(r"[&;]", chunk):
            name, sep, value = pair.partition("=")
            if sep and value and _SECRET_QUERY.fullmatch(name):
                yield value


@dataclass(frozen=True, slots=True)
class SecretHit:
    """Where a secret was found in a text: the detector and the 1-based line."""

    detector: str
    line: int


_URL_PLACEHOLDERS = frozenset({"password", "pass", "passwd", "secret", "pwd", "xxx"})


def find_secrets(text: str, limit: int = 5) -> list[SecretHit]:
    """Return up to ``limit`` secrets in a file's text, never the values.

    Runs the detectors marked ``in_files`` (the same patterns redaction uses)
    and URL passwords (``scheme://user:pass@host``, placeholders such as
    ``user:password@`` aside). A detector looks only at the lines holding one
    of its literal markers (found by substring search), so a file without
    them costs one ``str.find`` per marker; a private key block, which spans
    lines, is searched from its marker on.
    """
    hits: list[SecretHit] = []
    lowered = text.lower()
    # A letter whose lower case is longer would shift every offset after it.
    folded = lowered if len(lowered) == len(text) else None
    for detector in DETECTORS:
        if detector.in_files:
            hits.extend(_detector_hits(detector, text, folded))
            if len(hits) >= limit:
                return hits[:limit]
    if "://" in text:
        for start, line in _lines_with(text, text, ("://",)):
            hits.extend(
                SecretHit("url-password", _line_of(text, start))
                for match in _URL.finditer(line)
                if _url_password(match.group(0))
            )
    return hits[:limit]


def _detector_hits(
    detector: Detector, text: str, folded: str | None
) -> list[SecretHit]:
    """One detector's hits, searched only where its markers occur."""
    if detector.pattern.flags & re.DOTALL:
        first = min(
            (at for at in map(text.find, detector.markers) if at >= 0), default=-1
        )
        if first < 0:
            return []
        start = text.rfind("\n", 0, first) + 1
        return [
            SecretHit(detector.name, _line_of(text, match.start()))
            for match in detector.pattern.finditer(text, start)
        ]
    if detector.fold and folded is None:  # offsets would not line up
        return [
            SecretHit(detector.name, _line_of(text, match.start()))
            for match in detector.pattern.finditer(text)
        ]
    haystack = folded if detector.fold and folded is not None else text
    return [
        SecretHit(detector.name, _line_of(text, start))
        for start, line in _lines_with(text, haystack, detector.markers)
        if detector.pattern.search(line)
    ]


def _lines_with(
    text: str, haystack: str, markers: tuple[str, ...]
) -> Iterator[tuple[int, str]]:
    """Yield (offset, line) for each distinct line of ``text`` holding a marker.

    ``haystack`` is ``text`` or its lower-cased form (same offsets).
    """
    seen: set[int] = set()
    for marker in markers:
        at = haystack.find(marker)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            if start not in seen:
                seen.add(start)
                yield start, text[start:end]
            at = haystack.find(marker, end)


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _url_password(url: str) -> bool:
    """True when a URL carries a real-looking password in its user-info."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return False
    if not password or password.lower() in _URL_PLACEHOLDERS:
        return False
    return not password.startswith(("$", "{", "<", "%", "*"))


def key_file(path: Path | None = None) -> Path:
    """Where the key lives: ``path``, else ``guard_home()/redact.key``."""
    return path if path is not None else guard_home() / KEY_FILE_NAME


def load_key(path: Path | None = None) -> bytes:
    """Return the redaction key, creating it (mode 0600) on first use.

    Args:
        path: where the key lives; default ``guard_home()/redact.key``.

    Returns:
        32 random bytes.

    Raises:
        AuditError: the key cannot be read or created (then nothing may be
            logged, since nothing could be redacted).
    """
    path = key_file(path)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AuditError(f"cannot read the redaction key {path}: {exc}") from exc
    try:
        return _create_key(path)
    except OSError as exc:
        raise AuditError(f"cannot create the redaction key {path}: {exc}") from exc


def read_key(path: Path | None = None) -> bytes | None:
    """Return the key if it exists (never creates it); None when absent.

    Raises:
        AuditError: it exists but cannot be read or is not a key.
    """
    path = key_file(path)
    try:
        return _read_key(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(f"cannot read the key {path}: {exc}") from exc


def _read_key(path: Path) -> bytes:
    """Read a hex key file."""
    text = path.read_text(encoding="ascii").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise AuditError(f"redaction key {path} is not hex") from exc
    if len(key) < 16:  # noqa: PLR2004 - 128 bits at least
        raise AuditError(f"redaction key {path} is too short")
    return key


def _create_key(path: Path) -> bytes:
    """Create the key atomically: write a private temp file, then link it."""
    import secrets  # noqa: PLC0415 - only the first run creates a key

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process created it first
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    return _read_key(path)
