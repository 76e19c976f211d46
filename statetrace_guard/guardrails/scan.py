"""The secret scan of what a commit would hold: redaction's own detectors.

Blobs are read in one ``git cat-file --batch`` (sizes first, so nothing over
the cap is read), working-tree files directly. Text is decoded the way
editors save it (UTF-8, or UTF-16 with its byte order mark, as PowerShell
writes); anything else with a NUL byte is binary and not scanned. Each file
is searched with :func:`statetrace_guard.audit.redact.find_secrets`, which
only reads the lines holding a detector's marker.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence

from statetrace_guard.audit.redact import find_secrets
from statetrace_guard.guardrails.contents import Content, Repository
from statetrace_guard.guardrails.facts import SecretFinding
from statetrace_guard.guardrails.gitcmd import GitFailed
from statetrace_guard.guardrails.rules import CommitRules

__all__ = ["MESSAGE_PATH", "scan_contents", "scan_messages"]

MESSAGE_PATH = "<commit message>"
_BINARY_PROBE = 8000  # as git: a NUL in the first 8000 bytes means binary
_HITS_PER_FILE = 3


def scan_messages(messages: Sequence[str]) -> list[SecretFinding]:
    """Secrets in ``-m`` messages: they are committed too."""
    return [
        SecretFinding(MESSAGE_PATH, hit.detector, hit.line)
        for message in messages
        for hit in find_secrets(message, _HITS_PER_FILE)
    ]


def scan_contents(
    repo: Repository, contents: Iterable[Content], rules: CommitRules
) -> tuple[list[SecretFinding], list[str]]:
    """Scan each content the rules want scanned.

    Returns:
        The secrets found, and the paths left unscanned (over the size cap).

    Raises:
        GitFailed: a blob could not be read.
    """
    wanted = [item for item in contents if rules.scanned(item.path)]
    found: list[SecretFinding] = []
    unscanned: list[str] = []
    blobs = _read_blobs(repo, [i.blob for i in wanted if i.blob], rules.max_file_bytes)
    for item in wanted:
        data = _data_of(item, blobs, rules.max_file_bytes)
        if data is None:
            unscanned.append(item.path)
            continue
        text = item.text if item.text is not None else _decode(data)
        if text is None:
            continue
        found.extend(
            SecretFinding(item.path, hit.detector, hit.line)
            for hit in find_secrets(text, _HITS_PER_FILE)
        )
    return found, unscanned


def _data_of(item: Content, blobs: dict[str, bytes | None], cap: int) -> bytes | None:
    """The bytes to scan; None when over the cap (or unreadable)."""
    if item.text is not None:
        return b""
    if item.blob is not None:
        return blobs.get(item.blob)
    if item.file is None:
        return None
    try:
        with open(item.file, "rb") as handle:
            data = handle.read(cap + 1)
    except OSError:
        return b""  # gone since git listed it: nothing of it is committed
    return data if len(data) <= cap else None


def _read_blobs(
    repo: Repository, oids: Sequence[str], cap: int
) -> dict[str, bytes | None]:
    """Read blobs no larger than ``cap`` (others map to None)."""
    unique = list(dict.fromkeys(oids))
    if not unique:
        return {}
    request = "".join(f"{oid}\n" for oid in unique).encode("ascii")
    sizes = repo.git(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        stdin=request,
    )
    small: list[str] = []
    out: dict[str, bytes | None] = dict.fromkeys(unique)
    for line in sizes.decode("ascii", "replace").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == "blob" and int(fields[2]) <= cap:  # noqa: PLR2004 - id, type, size
            small.append(fields[0])
    if small:
        batch = repo.git(
            "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in small).encode()
        )
        out.update(_split_batch(batch))
    return out


def _split_batch(batch: bytes) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    at = 0
    while at < len(batch):
        end = batch.index(b"\n", at)
        fields = batch[at:end].split()
        if len(fields) != 3:  # noqa: PLR2004 - "<id> missing"
            raise GitFailed(f"git cat-file: {batch[at:end].decode('ascii', 'replace')}")
        size = int(fields[2])
        found[fields[0].decode("ascii")] = batch[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
    return found


def _decode(data: bytes) -> str | None:
    """Text as saved (UTF-8, or UTF-16 with a BOM); None for binary."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    if b"\0" in data[:_BINARY_PROBE]:
        return None
    return data.decode("utf-8", "replace")
