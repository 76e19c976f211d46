"""The policy's ``[commit]`` and ``[adr]`` sections, and their compiled form.

``[commit]`` says what may never be committed::

    [commit]
    scan_secrets = true            # the redaction detectors over staged content
    scan_exclude = ["tests/fixtures/**"]
    max_file_bytes = 1048576       # scanned per file; the rest is not read

    [[commit.never]]
    id = "access-database"
    paths = ["*.accdb", "*.mdb"]   # repository globs (.gitignore style)
    allow = []                     # exceptions (a sanitised bundle)
    description = "Access stores hold live data"
    fix = "keep the store out of git"
    match = ["Data/WLLS/WLLS.accdb"]
    not_match = ["docs/accdb.md"]

``[[commit.never]]`` entries are an array of tables, so a policy that
``extends`` a built-in one adds its own after the built-in ones (it cannot
drop them); ``scan_secrets`` and the other keys are replaced.

``[adr]`` says which commands need an architecture decision record first::

    [adr]
    folder = "docs/adr"
    pattern = "*.md"
    applies = ["add-type", "csc", "schema-change", ...]

See :data:`ADR_KINDS` for what each kind covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from statetrace_guard.guardrails.globs import compile_globs
from statetrace_guard.guardrails.rules import (
    CommitRules,
    CompiledNever,
    compile_commit_rules,
    compile_never,
)

__all__ = [
    "ADR_KINDS",
    "AdrKind",
    "AdrPolicy",
    "CommitPolicy",
    "Guardrails",
    "NeverRule",
    "compile_guardrails",
]

AdrKind = Literal[
    "add-type",
    "csc",
    "dotnet-new",
    "dotnet-add-package",
    "msbuild-new-project",
    "native-compile",
    "schema-change",
    "new-store",
]
# What each kind covers (README and `guard policy show` use these words).
ADR_KINDS: dict[str, str] = {
    "add-type": "PowerShell Add-Type (source or an assembly) and CodeDom compilers",
    "csc": "the C#, VB and F# compilers (csc, vbc, fsc, ilasm)",
    "dotnet-new": "dotnet new (a new project or item from a template)",
    "dotnet-add-package": "dotnet add package / reference, nuget install",
    "msbuild-new-project": "msbuild / dotnet build of a project git does not track",
    "native-compile": "cl, gcc, cc, clang... writing objects into the workspace",
    "schema-change": "CREATE/ALTER/DROP TABLE or INDEX through OleDb, ADODB, DAO",
    "new-store": "a new .accdb, .mdb or .sqlite store (ADOX Catalog.Create...)",
}
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_MEBIBYTE = 1 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NeverRule(_Strict):
    """Paths that may never be committed, with the way out."""

    id: Annotated[str, Field(pattern=_ID)]
    paths: Annotated[tuple[str, ...], Field(min_length=1)]
    allow: tuple[str, ...] = ()
    description: str = ""
    fix: str = ""
    match: tuple[str, ...] = ()
    not_match: tuple[str, ...] = ()

    @field_validator("paths", "allow")
    @classmethod
    def _globs_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        compile_globs(value)  # raises ValueError naming the bad glob
        return value

    def model_post_init(self, _context: object) -> None:
        """Check the examples: each ``match`` is refused, each ``not_match`` not."""
        rule = _compile_never(self)
        for path in self.match:
            if not rule.refuses(path):
                msg = f"commit rule {self.id!r} does not refuse its example {path!r}"
                raise ValueError(msg)
        for path in self.not_match:
            if rule.refuses(path):
                msg = f"commit rule {self.id!r} refuses its not_match {path!r}"
                raise ValueError(msg)


class CommitPolicy(_Strict):
    """``[commit]``: the paths never committed and the secret scan."""

    scan_secrets: bool = True
    scan_exclude: tuple[str, ...] = ()
    max_file_bytes: Annotated[int, Field(gt=0)] = _MEBIBYTE
    never: tuple[NeverRule, ...] = ()

    @field_validator("scan_exclude")
    @classmethod
    def _globs_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        compile_globs(value)
        return value

    @field_validator("never")
    @classmethod
    def _unique_ids(cls, rules: tuple[NeverRule, ...]) -> tuple[NeverRule, ...]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                msg = f"duplicate commit rule id {rule.id!r}"
                raise ValueError(msg)
            seen.add(rule.id)
        return rules


class AdrPolicy(_Strict):
    """``[adr]``: which commands need an ADR naming the task, and where ADRs live."""

    folder: str = "docs/adr"
    pattern: str = "*.md"
    applies: tuple[AdrKind, ...] = ()

    @field_validator("folder")
    @classmethod
    def _relative(cls, value: str) -> str:
        text = value.replace("\\", "/").strip("/")
        if not text or text.startswith("../") or "/../" in f"/{text}/":
            msg = "the ADR folder must be a path inside the workspace"
            raise ValueError(msg)
        return text


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The compiled guardrail sections of a policy (one field on CompiledPolicy)."""

    commit: CommitRules
    adr: AdrPolicy


def _compile_never(rule: NeverRule) -> CompiledNever:
    return compile_never(rule.id, rule.paths, rule.allow, rule.description, rule.fix)


def compile_guardrails(commit: CommitPolicy, adr: AdrPolicy) -> Guardrails:
    """Compile the two sections once per policy."""
    return Guardrails(
        commit=compile_commit_rules(
            tuple(_compile_never(rule) for rule in commit.never),
            scan_secrets=commit.scan_secrets,
            scan_exclude=commit.scan_exclude,
            max_file_bytes=commit.max_file_bytes,
        ),
        adr=adr,
    )
