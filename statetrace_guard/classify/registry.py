"""Load the program-knowledge registry: ``classify/specs/*.toml``, validated once.

The registry is data: one entry per program, cmdlet, .NET type or
environment variable, with full key names (see ``specs_schema.py``) and
``match``/``not_match`` examples checked by the test suite. The loader
refuses a name defined twice (per namespace, aliases included), an unknown
key, a handler that does not exist and a handler key the handler does not
read.

NOTE(registry): parsing the TOML and validating it costs about 100 ms, more
than a whole helper-served ``guard run``. The validated documents are
cached as JSON in guard's home under a name derived from the content of
every spec file and of the schema, so the in-process path reads them in a
few milliseconds and any change to the data or the schema is a new cache.
Guard's home is never writable by a guarded program. Without a writable
home, the files are parsed every time (slower, same answers).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from statetrace_guard.classify.handler_names import HANDLER_DATA_KEYS
from statetrace_guard.classify.knowledge import (
    DEFAULT_TRUSTED_DIRS,
    Knowledge,
    RegistryError,
)

__all__ = [
    "builtin_knowledge",
    "knowledge_for",
    "load_documents",
    "spec_files",
    "validate_documents",
    "validate_programs",
]

_CACHE_FORMAT = "registry-v1"


def spec_files() -> list[tuple[str, bytes]]:
    """Every built-in spec file as (name, bytes), sorted by name."""
    folder = resources.files("statetrace_guard.classify").joinpath("specs")
    found = [
        (entry.name, entry.read_bytes())
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    ]
    return sorted(found)


def _schema_bytes() -> bytes:
    here = resources.files("statetrace_guard.classify")
    return here.joinpath("specs_schema.py").read_bytes()


def _cache_key(files: Sequence[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(_CACHE_FORMAT.encode())
    for name, raw in (*files, ("specs_schema.py", _schema_bytes())):
        digest.update(name.encode() + b"\0" + len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()[:32]


def load_documents() -> tuple[dict[str, Any], ...]:
    """The built-in registry's validated documents (cached by content)."""
    files = spec_files()
    path = _cache_path(_cache_key(files))
    cached = _read_cache(path)
    if cached is not None:
        return cached
    documents = validate_documents(files)
    _write_cache(path, documents)
    return documents


def _cache_path(key: str) -> Path | None:
    from statetrace_guard.paths import guard_home  # noqa: PLC0415 - cheap, lazy

    try:
        return guard_home() / "cache" / f"registry-{key}.json"
    except (OSError, RuntimeError):  # no home directory can be named
        return None


def _read_cache(path: Path | None) -> tuple[dict[str, Any], ...] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, list):
        return None
    return tuple(data)


def _write_cache(path: Path | None, documents: Iterable[dict[str, Any]]) -> None:
    """Write the cache atomically; a home that cannot be written costs speed only."""
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".registry-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(list(documents), separators=(",", ":")).encode())
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)


def validate_documents(
    files: Sequence[tuple[str, bytes]],
) -> tuple[dict[str, Any], ...]:
    """Parse and validate spec files; every key present in the result.

    Raises:
        RegistryError: a file is not TOML, breaks the schema, defines a name
            twice or names a handler (or handler key) that does not exist.
    """
    import tomllib  # noqa: PLC0415 - only on a cache miss

    from pydantic import ValidationError  # noqa: PLC0415 - only on a cache miss

    from statetrace_guard.classify.specs_schema import SpecFile  # noqa: PLC0415

    documents = []
    for name, raw in files:
        try:
            model = SpecFile.model_validate(tomllib.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            msg = f"{name}: not valid TOML: {exc}"
            raise RegistryError(msg) from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            msg = f"{name}: {field}: {first['msg']}"
            raise RegistryError(msg) from exc
        document = model.model_dump(mode="json")
        _check_handlers(name, document)
        documents.append(document)
    # Indexing refuses a name defined twice, across files too.
    Knowledge(tuple(documents))
    return tuple(documents)


def validate_programs(programs: Sequence[Mapping[str, Any]], source: str) -> None:
    """Check a policy's ``[[programs]]`` (already schema-valid) for handlers.

    Raises:
        RegistryError: an unknown handler or handler key, or a name twice.
    """
    _check_handlers(source, {"program": list(programs), "cmdlet": []})
    Knowledge((), tuple(programs))


def _check_handlers(source: str, document: Mapping[str, Any]) -> None:
    for raw in (*document.get("program", ()), *document.get("cmdlet", ())):
        _check_one(source, raw["name"], raw)


def _check_one(source: str, where: str, raw: Mapping[str, Any]) -> None:
    handler = raw.get("handler")
    data = raw.get("handler_data", {})
    if handler is not None and handler not in HANDLER_DATA_KEYS:
        msg = f"{source}: {where}: unknown handler {handler!r}"
        raise RegistryError(msg)
    allowed = HANDLER_DATA_KEYS.get(handler or "", frozenset())
    extra = sorted(set(data) - allowed)
    if extra:
        msg = f"{source}: {where}: handler_data {extra[0]!r} is not read by {handler!r}"
        raise RegistryError(msg)
    for sub_name, sub in raw.get("subcommands", {}).items():
        _check_one(source, f"{where} {sub_name}", sub)


@functools.cache
def builtin_knowledge() -> Knowledge:
    """The built-in registry with the default trusted directories."""
    return Knowledge(load_documents())


@functools.lru_cache(maxsize=16)
def knowledge_for(
    programs: tuple[str, ...], trusted_dirs: tuple[str, ...]
) -> Knowledge:
    """The registry a policy sees: built-in entries plus its own programs.

    Args:
        programs: the policy's ``[[programs]]`` entries as canonical JSON
            (hashable, so one Knowledge serves one policy content).
        trusted_dirs: the policy's trusted program directories.

    Returns:
        The built-in knowledge itself when the policy adds nothing.
    """
    base = builtin_knowledge()
    if not programs and frozenset(trusted_dirs) == frozenset(DEFAULT_TRUSTED_DIRS):
        return base
    return Knowledge(
        base.documents,
        tuple(json.loads(text) for text in programs),
        frozenset(trusted_dirs),
    )
