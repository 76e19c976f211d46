"""Commands that need an architecture decision record first (the ADR stop).

The autonomy plan: "Schema or compiled-code requirement: stop and open an
ADR (``docs/adr/``) before continuing." Pure: the classified simple commands
in, :class:`AdrNeed` values out. A need that depends on the file system (is
the project new? does the store exist yet?) names what to look at; the
inspector answers and the judgement decides.

What counts (``[adr] applies`` picks the kinds, see
:data:`statetrace_guard.guardrails.config.ADR_KINDS`):

* ``add-type``: ``Add-Type`` in any form, CodeDom and Roslyn compilers, and
  ``[Reflection.Assembly]::Load*``, found by the cmdlet's canonical name
  (aliases and module-qualified names resolved by the classifier) or in the
  text of an inline script (``-EncodedCommand`` decoded);
* ``csc``: ``csc``, ``vbc``, ``fsc``, ``ilasm`` (also ``dotnet csc.dll``);
* ``dotnet-new``, ``dotnet-add-package``: ``dotnet new`` (not ``list`` or
  ``search``), ``dotnet add ... package|reference``, ``dotnet package add``,
  ``nuget install``, ``Install-Package``;
* ``msbuild-new-project``: ``msbuild`` / ``dotnet build|publish|pack|run|test``
  of a project file git does not track;
* ``native-compile``: ``cl``, ``gcc``, ``cc``, ``clang`` and cross compilers,
  unless they only preprocess, check syntax, print versions, or write their
  output outside the workspace;
* ``schema-change``: ``CREATE``/``ALTER``/``DROP`` ``TABLE``/``INDEX``/``VIEW``,
  ``SELECT ... INTO``, DAO ``CreateTableDef``/``CreateIndex``, ADOX tables, in
  a command that reaches a database (OleDb, ADODB, DAO, ACE/Jet, ODBC, SQLite);
  and SQL executed through such an API when no statement text is visible
  (built at run time or read from elsewhere: guard cannot tell it is not DDL);
* ``new-store``: ``ADOX.Catalog`` ``.Create``, DAO ``CreateDatabase``,
  ``NewCurrentDatabase``, and any ``.accdb``/``.mdb``/``.sqlite`` path the
  command writes or names that does not exist yet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from statetrace_guard.classify.model import Classification, SimpleCommand
from statetrace_guard.levels import Effect

__all__ = ["STORE_SUFFIXES", "AdrNeed", "adr_needs", "schema_change_in"]

STORE_SUFFIXES = (
    ".accdb",
    ".accde",
    ".mdb",
    ".mde",
    ".sqlite",
    ".sqlite3",
    ".db3",
    ".s3db",
)
_PWSH = frozenset({"pwsh", "powershell"})
_COMPILERS = frozenset({"csc", "vbc", "fsc", "ilasm"})
_COMPILER_DLLS = frozenset({"csc.dll", "vbc.dll", "fsc.dll", "csc.exe", "vbc.exe"})
# The programs _program_needs knows by name; any other is looked at only when
# it writes files or its name ends like a C compiler's.
_PROGRAMS = _COMPILERS | {
    "add-type",
    "dotnet",
    "msbuild",
    "nuget",
    "install-package",
    "sqlite3",
    "sqlite",
}
_NATIVE_ENDINGS = ("cc", "c++", "clang", "clang++", "cl", "icx", "icpx")
_NATIVE = re.compile(
    r"^(?:[\w.+-]+-)?(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+|tcc|icc|icx|icpx|cl)"
    r"(?:-\d+(?:\.\d+)*)?$"
)
_PROJECT_SUFFIXES: tuple[str, ...] = (".csproj", ".vbproj", ".fsproj", ".vcxproj")
_PROJECT_SUFFIXES += (".proj", ".sln", ".slnx")
_DOTNET_BUILDS = frozenset({"build", "msbuild", "publish", "pack", "run", "test"})
_DOTNET_NEW_READS = frozenset(
    {"list", "search", "--list", "-l", "-h", "--help", "-?", "details", "uninstall"}
)
_NO_OUTPUT = frozenset(
    {
        "-E",
        "-M",
        "-MM",
        "-fsyntax-only",
        "--version",
        "-dumpversion",
        "-dumpmachine",
        "-dumpspecs",
        "--help",
        "-###",
        "/E",
        "/EP",
        "/P",
        "/Zs",
        "/?",
        "/help",
        "-Zs",
        "-EP",
    }
)
_I = re.IGNORECASE
_CODEDOM = re.compile(
    r"\b(?:CSharpCodeProvider|VBCodeProvider|CodeDomProvider|"
    r"CompileAssemblyFrom(?:Source|File|Dom)|CSharpCompilation|"
    r"Microsoft\.CodeAnalysis\.CSharp)\b|"
    r"\bAssembly\]::Load(?:From|File|WithPartialName)?\s*\(|\bAdd-Type\b",
    _I,
)
_DATABASE = re.compile(
    r"oledb|adodb|adox|\bdao\.|dbengine|microsoft\.(?:ace|jet)|\.accd[be]\b|"
    r"\.md[be]\b|odbc|access\.application|sqlite",
    _I,
)
_DDL = re.compile(
    r"\b(?:create|alter|drop)\s+(?:(?:unique|temp|temporary|virtual|or\s+replace)"
    r"\s+)*(?:table|index|view|procedure|trigger)\b|"
    r"\bselect\b[^;]*?\binto\s+[\w\[\"`]|"
    r"\.(?:CreateTableDef|CreateIndex|CreateField|CreateRelation)\s*\(|"
    r"\b(?:TableDefs|Tables|Indexes|Columns|Keys)\.(?:Append|Delete)\b|"
    r"\bADOX\.(?:Table|Index|Column|Key)\b|"
    r"(?:^|\s)\.(?:import|restore)\b",
    _I,
)
_SQL_EXEC = re.compile(
    r"\.(?:ExecuteNonQuery|ExecuteReader|ExecuteScalar|Execute|RunSQL|"
    r"OpenRecordset|executescript|executemany)\s*\(|\bInvoke-Sqlcmd\b",
    _I,
)
_STATEMENT = re.compile(
    r"\b(?:select\b|insert\s+into\b|update\s+[\w\[\]]+\s+set\b|delete\s+from\b|"
    r"pragma\b)",
    _I,
)
_NEW_STORE = re.compile(
    r"\bADOX\.Catalog\b[\s\S]*\.Create\s*\(|\.CreateDatabase\s*\(|"
    r"\bNewCurrentDatabase\b",
    _I,
)
# Every text need mentions one of these (lower case): a command without any
# costs one substring search each, no regular expression.
_TEXT_MARKERS = (
    "add-type",
    "codeprovider",
    "compileassembly",
    "csharpcompilation",
    "microsoft.codeanalysis",
    "assembly]::load",
    "oledb",
    "adodb",
    "adox",
    "dao.",
    "dbengine",
    "microsoft.ace",
    "microsoft.jet",
    "odbc",
    "access.application",
    "sqlite",
    "createdatabase",
    "newcurrentdatabase",
    ".accd",
    ".md",
    ".db3",
    ".s3db",
)
_STORE_LITERAL = re.compile(
    r"[\w./\\:~-]+(?:" + "|".join(re.escape(s) for s in STORE_SUFFIXES) + r")\b",
    _I,
)


@dataclass(frozen=True, slots=True)
class AdrNeed:
    """One command the ADR stop applies to.

    Attributes:
        command: the index of the simple command in the classification.
        kind: one of the ``[adr] applies`` kinds.
        why: what the command does, for the block message.
        if_untracked: project files: needed only when one is not tracked.
        projects_in: a directory whose project files are built (none named).
        if_missing: store paths: needed only when one does not exist yet.
    """

    command: int
    kind: str
    why: str
    if_untracked: tuple[str, ...] = ()
    projects_in: str | None = None
    if_missing: tuple[str, ...] = ()

    @property
    def conditional(self) -> bool:
        """True when only the file system can tell whether it applies."""
        return bool(self.if_untracked or self.projects_in or self.if_missing)


def adr_needs(
    argv: Sequence[str],
    classification: Classification,
    kinds: frozenset[str],
    cwd: str,
    workspace: str,
) -> tuple[AdrNeed, ...]:
    """Find the commands of a classification that the ADR stop applies to.

    Programs are recognised per simple command; scripts by the text of the
    whole command line (a schema change is spread over several statements:
    the connection, the SQL, the call that runs it).

    Args:
        argv: the whole command as given.
        classification: the classified command.
        kinds: the ``[adr] applies`` kinds of the policy.
        cwd: the command's working directory (for compiler outputs).
        workspace: the workspace root.

    Returns:
        One need per kind found, on the simple command it concerns.
    """
    if not kinds:
        return ()
    commands = classification.commands
    found: dict[str, AdrNeed] = {}
    for index, command in enumerate(commands):
        name = _base(command.name)
        if name in _PROGRAMS or command.written or name.endswith(_NATIVE_ENDINGS):
            for need in _program_needs(index, name, command, cwd, workspace):
                found.setdefault(need.kind, need)
    text = _whole_text(argv, commands)
    lowered = text.lower()
    if any(marker in lowered for marker in _TEXT_MARKERS):
        for need in _text_needs(_acting(commands), text, commands):
            found.setdefault(need.kind, need)
    return tuple(need for need in found.values() if need.kind in kinds)


def _acting(commands: Sequence[SimpleCommand]) -> int:
    """The simple command a script-wide need is charged to: the first that acts."""
    acting = {Effect.WRITE, Effect.DYNAMIC}
    return next((i for i, c in enumerate(commands) if c.effects & acting), 0)


def _program_needs(
    index: int, name: str, command: SimpleCommand, cwd: str, workspace: str
) -> Iterator[AdrNeed]:
    args = command.argv[1:]
    if name == "add-type":
        yield AdrNeed(index, "add-type", "Add-Type compiles or loads code")
    dll = name == "dotnet" and any(_base(a) in _COMPILER_DLLS for a in args[:2])
    if name in _COMPILERS or dll:
        yield AdrNeed(index, "csc", f"{name} compiles a .NET assembly")
    if name == "dotnet":
        yield from _dotnet_needs(index, args)
    if name == "msbuild":
        yield _build_need(index, "msbuild", args)
    if name in ("nuget", "install-package"):
        yield AdrNeed(index, "dotnet-add-package", f"{name} adds a package")
    if _NATIVE.match(name):
        need = _native_need(index, name, args, cwd, workspace)
        if need is not None:
            yield need
    if name in ("sqlite3", "sqlite"):
        yield from _sqlite_needs(index, args)
    written = tuple(dict.fromkeys(p for p in command.written if _is_store(p)))
    if written:
        why = f"{name} writes {written[0]}, a new database when it does not exist"
        yield AdrNeed(index, "new-store", why, if_missing=written)


def _dotnet_needs(index: int, args: Sequence[str]) -> Iterator[AdrNeed]:
    words = [a for a in args if not a.startswith("-")]
    sub = words[0].lower() if words else ""
    if sub == "new" and (len(words) < 2 or words[1].lower() not in _DOTNET_NEW_READS):  # noqa: PLR2004 - "new" and its template
        yield AdrNeed(index, "dotnet-new", "dotnet new makes a new project or item")
    lowered = [w.lower() for w in words]
    adds = sub == "add" and any(w in ("package", "reference") for w in lowered[1:])
    if adds or lowered[:2] in (["package", "add"], ["reference", "add"]):
        yield AdrNeed(index, "dotnet-add-package", "dotnet adds a package or reference")
    if sub in _DOTNET_BUILDS:
        yield _build_need(index, f"dotnet {sub}", args)


def _build_need(index: int, what: str, args: Sequence[str]) -> AdrNeed:
    """A build: needed only for a project git does not track."""
    values = (_option_value(arg) for arg in args)
    projects = tuple(v for v in values if v.lower().endswith(_PROJECT_SUFFIXES))
    why = f"{what} builds a project git does not track"
    if projects:
        return AdrNeed(index, "msbuild-new-project", why, if_untracked=projects)
    return AdrNeed(index, "msbuild-new-project", why, projects_in=".")


def _option_value(arg: str) -> str:
    """``--project:x.csproj`` / ``-p=x`` / ``x.csproj``: the path part."""
    if arg.startswith(("-", "/")) and (":" in arg or "=" in arg):
        return re.split(r"[:=]", arg, maxsplit=1)[1]
    return arg


def _native_need(
    index: int, name: str, args: Sequence[str], cwd: str, workspace: str
) -> AdrNeed | None:
    """A C/C++ compiler: needed when it writes objects into the workspace."""
    if not args or any(arg in _NO_OUTPUT for arg in args):
        return None
    outputs = list(_compiler_outputs(args))
    why = f"{name} compiles native code into the workspace"
    if not outputs:  # a.out, *.o or *.obj in the working directory
        return AdrNeed(index, "native-compile", why)
    for output in outputs:
        # A relative path climbing out may start from a directory a cd chose.
        climbs = not os.path.isabs(output) and ".." in output.replace("\\", "/").split(
            "/"
        )
        resolved = os.path.realpath(os.path.join(cwd, output)) if cwd else output
        if not cwd or climbs or _within(resolved, workspace):
            return AdrNeed(index, "native-compile", why)
    return None


def _compiler_outputs(args: Sequence[str]) -> Iterator[str]:
    for i, arg in enumerate(args):
        if arg == "-o" and i + 1 < len(args):
            yield args[i + 1]
        elif arg.startswith("-o") and len(arg) > 2:  # noqa: PLR2004 - "-o" and a value
            yield arg[2:]
        elif arg[:3].lower() in ("/fo", "-fo", "/fe", "-fe") and len(arg) > 3:  # noqa: PLR2004 - "/Fo" and a value
            yield arg[3:].lstrip(":")


def _sqlite_needs(index: int, args: Sequence[str]) -> Iterator[AdrNeed]:
    operands = [a for a in args if not a.startswith("-")]
    if operands:
        yield AdrNeed(
            index,
            "new-store",
            f"sqlite3 opens {operands[0]}, which makes it when it does not exist",
            if_missing=(operands[0],),
        )
    sql = " ".join(operands[1:])
    if not sql.strip():
        yield AdrNeed(index, "schema-change", "sqlite3 reads SQL guard cannot see")


def _text_needs(
    index: int, text: str, commands: Sequence[SimpleCommand]
) -> Iterator[AdrNeed]:
    if _CODEDOM.search(text):
        yield AdrNeed(index, "add-type", "the script compiles or loads an assembly")
    why = schema_change_in(text)
    if why is not None:
        yield AdrNeed(index, "schema-change", why)
    if _NEW_STORE.search(text):
        yield AdrNeed(index, "new-store", "the script creates a database")
    if any(c.effects & {Effect.WRITE, Effect.DYNAMIC} for c in commands):
        named = [m.group(0).strip("'\"") for m in _STORE_LITERAL.finditer(text)]
        stores = tuple(dict.fromkeys(p for p in named if "://" not in p))
        if stores:
            why = f"the command names {stores[0]}, a new database if it does not exist"
            yield AdrNeed(index, "new-store", why, if_missing=stores)


def schema_change_in(text: str) -> str | None:
    """Why a command or script text changes a database schema, else None.

    Only text that reaches a database counts (OleDb, ADODB, DAO, ACE/Jet,
    ODBC, SQLite); ``grep 'CREATE TABLE' schema.sql`` is not a change.
    """
    if not _DATABASE.search(text):
        return None
    ddl = _DDL.search(text)
    if ddl is not None:
        return f"changes a database schema ({' '.join(ddl.group(0).split())[:40]})"
    if _SQL_EXEC.search(text) and not _STATEMENT.search(text):
        return "runs SQL whose text guard cannot read (it may change the schema)"
    return None


def _is_store(path: str) -> bool:
    return path.lower().endswith(STORE_SUFFIXES)


_ENCODED = re.compile(
    r"(?:pwsh|powershell)(?:\.exe)?['\"]?\s(?:[^|;&\n]*?\s)?[-/]e(?:c|n|nc|nco|ncod|"
    r"ncode|ncoded|ncodedc|ncodedco|ncodedcom|ncodedcomm|ncodedcomma|ncodedcomman|"
    r"ncodedcommand)?\s+['\"]?([A-Za-z0-9+/=]{8,})",
    re.IGNORECASE,
)
_MAX_DECODES = 8


def _whole_text(argv: Sequence[str], commands: Sequence[SimpleCommand]) -> str:
    """Every word of the command line and of its simple commands, one text.

    Encoded PowerShell scripts (``-EncodedCommand``, at any depth) are decoded
    and added.
    """
    parts = [*argv, *(word for command in commands for word in command.argv)]
    text = "\n".join(parts)
    pending = text
    for _ in range(_MAX_DECODES):
        decoded = list(_decoded(pending))
        if not decoded:
            break
        pending = "\n".join(decoded)
        text += "\n" + pending
    return text


def _decoded(text: str) -> Iterator[str]:
    lowered = text.lower()
    if "pwsh" not in lowered and "powershell" not in lowered:
        return
    from statetrace_guard.classify.powershell import (  # noqa: PLC0415 - only for pwsh, whose parser is loaded
        decode_encoded_command,
    )

    for match in _ENCODED.finditer(text):
        script = decode_encoded_command(match.group(1))
        if script is not None:
            yield script


def _base(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base.removesuffix(".exe")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
