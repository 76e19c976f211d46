"""Load the program-knowledge registry: ``classify/specs/*.toml``, validated once.

The registry is data: one entry per program, cmdlet, .NET type or
environment variable, with full key names (see ``specs_schema.py``) and
``match``/``not_match`` examples checked by the test suite. The loader
refuses a name defined twice (per namespace, aliases included), an unknown
key, a handler that does not exist and a handler key the handler does not
read.

NOTE(registry): parsing the TOML and validating it costs about half a
second, more than a whole helper-served ``guard run``. The validated
documents are cached as JSON in guard's home (without their examples and
default values, which the cache stores once), named by a key that changes
with any spec file, the schema or the guard's version; the in-process path
reads them in a few milliseconds, and namespaces and entries are indexed
and compiled on first use. Guard's home is never writable by a guarded
program. Without a writable home the files are parsed every time (slower,
same answers).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from statetrace_guard.classify.handler_names import HANDLER_DATA_KEYS
from statetrace_guard.classify.knowledge import Knowledge, RegistryError
from statetrace_guard.classify.trusted import DEFAULT_TRUSTED_DIRS

__all__ = [
    "builtin_knowledge",
    "knowledge_for",
    "load_documents",
    "spec_files",
    "validate_documents",
    "validate_programs",
]

_CACHE_FORMAT = "registry-v2"
_HERE = Path(__file__).resolve().parent
_EXAMPLES = ("match", "not_match")


def spec_files() -> list[tuple[str, bytes]]:
    """Every built-in spec file as (name, bytes), sorted by name."""
    from importlib import resources  # noqa: PLC0415 - only on a cache miss

    folder = resources.files("statetrace_guard.classify").joinpath("specs")
    found = [
        (entry.name, entry.read_bytes())
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    ]
    return sorted(found)


def _cache_key() -> str:
    """A key that changes with any spec file, the schema or the guard's version.

    NOTE(registry): file names, sizes and modification times, not contents:
    reading and hashing half a megabyte is most of what a cache hit saves.
    Without a directory to list (a zipped package) the contents are hashed.
    """
    from statetrace_guard._version import __version__  # noqa: PLC0415 - tiny

    digest = hashlib.sha256(f"{_CACHE_FORMAT}\0{__version__}\0".encode())
    try:
        entries = sorted(os.scandir(_HERE / "specs"), key=lambda e: e.name)
        stats = [(e.name, e.stat()) for e in entries if e.name.endswith(".toml")]
        stats.append(("specs_schema.py", (_HERE / "specs_schema.py").stat()))
    except OSError:
        for name, raw in spec_files():
            digest.update(name.encode() + b"\0" + hashlib.sha256(raw).digest())
        return digest.hexdigest()[:32]
    for name, st in stats:
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def load_documents() -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """The built-in registry's documents and the defaults that complete them.

    The documents carry no examples and no default values (cached in
    guard's home).
    """
    path = _cache_path(_cache_key())
    cached = _read_cache(path)
    if cached is not None:
        return cached
    documents = validate_documents(spec_files())
    result = (tuple(_sparse(d) for d in documents), _defaults())
    _write_cache(path, result)
    return result


def _sparse(document: Mapping[str, Any]) -> dict[str, Any]:
    """A validated document for run time: no examples, no default values."""
    from statetrace_guard.classify.specs_schema import SpecFile  # noqa: PLC0415

    model = SpecFile.model_validate(_without_examples(document))
    return model.model_dump(mode="json", exclude_defaults=True) | {
        "namespace": document["namespace"]
    }


def _without_examples(value: Any) -> Any:  # noqa: ANN401 - JSON-shaped data
    if isinstance(value, dict):
        return {k: _without_examples(v) for k, v in value.items() if k not in _EXAMPLES}
    if isinstance(value, list):
        return [_without_examples(item) for item in value]
    return value


def _defaults() -> dict[str, Any]:
    """Every key's default value, per kind of entry (to complete sparse ones).

    Built from instances with placeholder required values, which are then
    dropped: a required key is always in a sparse entry.
    """
    from statetrace_guard.classify import specs_schema as schema  # noqa: PLC0415

    def dump(model: Any, *required: str) -> dict[str, Any]:  # noqa: ANN401
        data: dict[str, Any] = model.model_dump(mode="json")
        for key in required:
            data.pop(key)
        return data

    variable = dump(schema.VariableSpec(name="x", kind="plain"), "kind")
    return {
        "program": dump(schema.ProgramSpec(name="x"), "name"),
        "subcommand": dump(schema.SubcommandSpec()),
        "mode": dump(schema.Mode(options=(), effects=()), "options", "effects"),
        "cmdlet": dump(schema.CmdletSpec(name="x"), "name"),
        "type": dump(schema.DotnetTypeSpec(name="x"), "name"),
        "variable": variable | {"name": None},
    }


def _cache_path(key: str) -> Path | None:
    from statetrace_guard.paths import guard_home  # noqa: PLC0415 - cheap, lazy

    try:
        return guard_home() / "cache" / f"registry-{key}.json"
    except (OSError, RuntimeError):  # no home directory can be named
        return None


def _read_cache(
    path: Path | None,
) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return None
    return tuple(data["documents"]), data["defaults"]


def _write_cache(
    path: Path | None, result: tuple[tuple[dict[str, Any], ...], dict[str, Any]]
) -> None:
    """Write the cache atomically and drop older ones; failures cost speed only."""
    if path is None:
        return
    import tempfile  # noqa: PLC0415 - only on a cache miss

    data = {"format": _CACHE_FORMAT, "documents": result[0], "defaults": result[1]}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".registry-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(data, separators=(",", ":")).encode())
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        _prune(path)


# NOTE(registry): several installs (or checkouts) of guard may share one home;
# each keeps its own cache, so only the oldest beyond a few are removed.
_KEEP_CACHES = 8


def _prune(current: Path) -> None:
    """Drop the oldest registry caches beyond ``_KEEP_CACHES``."""
    found = []
    for old in current.parent.glob("registry-*.json"):
        with contextlib.suppress(OSError):
            found.append((old.stat().st_mtime_ns, old))
    found.sort(reverse=True)
    for _, old in found[_KEEP_CACHES:]:
        if old != current:
            old.unlink(missing_ok=True)


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
    Knowledge(tuple(documents)).index_all()
    return tuple(documents)


def validate_programs(programs: Sequence[Mapping[str, Any]], source: str) -> None:
    """Check a policy's ``[[programs]]`` (already schema-valid) for handlers.

    Raises:
        RegistryError: an unknown handler or handler key, or a name twice.
    """
    _check_handlers(source, {"program": list(programs), "cmdlet": []})
    Knowledge((), tuple(programs))  # indexes the policy's programs: names once


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
    documents, defaults = load_documents()
    return Knowledge(documents, defaults=defaults)


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
    if not programs and trusted_dirs == DEFAULT_TRUSTED_DIRS:
        return base
    key = (programs, trusted_dirs)
    found = _POLICY_KNOWLEDGE.get(key)
    if found is None:
        if len(_POLICY_KNOWLEDGE) >= _POLICY_KNOWLEDGE_KEPT:
            _POLICY_KNOWLEDGE.clear()  # a helper serving many policies stays bounded
        found = _POLICY_KNOWLEDGE[key] = Knowledge(
            base.documents,
            tuple(json.loads(text) for text in programs),
            frozenset(trusted_dirs),
            base.defaults,
        )
    return found


# One Knowledge per policy content: its compiled entries are reused.
_POLICY_KNOWLEDGE: dict[tuple[tuple[str, ...], tuple[str, ...]], Knowledge] = {}
_POLICY_KNOWLEDGE_KEPT = 16
