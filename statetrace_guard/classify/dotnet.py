"""What .NET types and methods do, as PowerShell scripts reach them.

PowerShell can call any .NET API: ``[IO.File]::WriteAllText(...)``,
``(New-Object Net.WebClient).DownloadString(...)``, ``[Net.Dns]::Resolve``.
These tables give the effect of a static call on a type, of creating an
object of a type, and of calling a method on an object of unknown type. What
is not listed is ``dynamic``: .NET is too large to guess safely.
"""

from __future__ import annotations

from statetrace_guard.levels import Effect

__all__ = [
    "instance_method_effect",
    "new_object_effect",
    "normalize_type",
    "static_member_effect",
]

_R = Effect.READ
_W = Effect.WRITE
_N = Effect.NETWORK
_D = Effect.DYNAMIC

# Types whose every member touches the network.
_NETWORK_TYPES = frozenset(
    {
        "net.webclient",
        "net.webrequest",
        "net.httpwebrequest",
        "net.ftpwebrequest",
        "net.filewebrequest",
        "net.dns",
        "net.http.httpclient",
        "net.http.httpclienthandler",
        "net.http.socketshttphandler",
        "net.http.httprequestmessage",
        "net.sockets.tcpclient",
        "net.sockets.udpclient",
        "net.sockets.socket",
        "net.sockets.tcplistener",
        "net.networkinformation.ping",
        "net.mail.smtpclient",
        "net.servicepointmanager",
        "net.websockets.clientwebsocket",
        "net.httplistener",
        "directoryservices.directoryentry",
        "directoryservices.directorysearcher",
        "adsi",
        "adsisearcher",
    }
)

# Types whose members only compute or read.
_PURE_TYPES = frozenset(
    {
        "math",
        "string",
        "char",
        "int",
        "int32",
        "int64",
        "long",
        "double",
        "decimal",
        "bool",
        "boolean",
        "byte",
        "datetime",
        "datetimeoffset",
        "timespan",
        "guid",
        "version",
        "convert",
        "bitconverter",
        "regex",
        "text.regularexpressions.regex",
        "text.encoding",
        "text.stringbuilder",
        "io.path",
        "uri",
        "array",
        "collections.arraylist",
        "collections.hashtable",
        "collections.generic.list",
        "collections.generic.dictionary",
        "collections.generic.hashset",
        "collections.specialized.ordereddictionary",
        "ordered",
        "pscustomobject",
        "psobject",
        "object",
        "hashtable",
        "xml",
        "xml.xmldocument",
        "security.cryptography.sha256",
        "security.cryptography.md5",
        "globalization.cultureinfo",
        "stringcomparer",
        "stringcomparison",
        "consolecolor",
        "enum",
        "nullable",
        "diagnostics.stopwatch",
        "threading.thread",
        "console",
        "io.fileinfo",
        "io.directoryinfo",
        "io.driveinfo",
        "management.automation.language.parser",
        "management.automation.psparser",
        "net.ipaddress",
        "security.principal.windowsidentity",
        "runtime.interopservices.runtimeinformation",
        "io.searchoption",
        "io.filemode",
        "io.fileaccess",
    }
)

_FILE_READ = frozenset(
    {
        "exists",
        "readalltext",
        "readalllines",
        "readallbytes",
        "readlines",
        "openread",
        "opentext",
        "getattributes",
        "getcreationtime",
        "getlastwritetime",
        "getlastaccesstime",
        "getcreationtimeutc",
        "getlastwritetimeutc",
        "getlastaccesstimeutc",
        "getfiles",
        "getdirectories",
        "getfilesystementries",
        "enumeratefiles",
        "enumeratedirectories",
        "enumeratefilesystementries",
        "getcurrentdirectory",
        "getparent",
        "getdirectoryroot",
        "getlogicaldrives",
        "readalltextasync",
        "readalllinesasync",
        "readallbytesasync",
        "getunixfilemode",
    }
)

# (type, method) pairs that are not the type's default effect.
_STATIC_SPECIAL: dict[tuple[str, str], Effect] = {
    ("environment", "getenvironmentvariable"): _R,
    ("environment", "getenvironmentvariables"): _R,
    ("environment", "getfolderpath"): _R,
    ("environment", "getcommandlineargs"): _R,
    ("environment", "expandenvironmentvariables"): _R,
    ("environment", "getlogicaldrives"): _R,
    ("environment", "setenvironmentvariable"): _R,  # env_sets decides
    ("environment", "exit"): _R,
    ("environment", "failfast"): _R,
    ("scriptblock", "create"): _D,
    ("diagnostics.process", "start"): _D,
    ("diagnostics.process", "getprocesses"): _R,
    ("diagnostics.process", "getprocessesbyname"): _R,
    ("diagnostics.process", "getcurrentprocess"): _R,
    ("diagnostics.process", "getprocessbyid"): _R,
    ("io.file", "create"): _W,
    ("activator", "createinstance"): _D,
    ("powershell", "create"): _D,
    ("runspaces.runspacefactory", "createrunspace"): _D,
    ("reflection.assembly", "load"): _D,
    ("reflection.assembly", "loadfrom"): _D,
    ("reflection.assembly", "loadfile"): _D,
    ("reflection.assembly", "loadwithpartialname"): _D,
    ("runtime.interopservices.marshal", "getdelegateforfunctionpointer"): _D,
    ("io.compression.zipfile", "openread"): _R,
}

_TYPE_ALIASES = {
    "management.automation.scriptblock": "scriptblock",
    "management.automation.powershell": "powershell",
    "management.automation.runspaces.runspacefactory": "runspaces.runspacefactory",
    "io.file": "io.file",
}

# Instance methods safe on any object: string, collection and formatting
# helpers that cannot reach the world.
_PURE_METHODS = frozenset(
    {
        "tostring",
        "tolower",
        "toupper",
        "tolowerinvariant",
        "toupperinvariant",
        "trim",
        "trimstart",
        "trimend",
        "split",
        "replace",
        "substring",
        "contains",
        "containskey",
        "containsvalue",
        "startswith",
        "endswith",
        "indexof",
        "lastindexof",
        "padleft",
        "padright",
        "equals",
        "gethashcode",
        "gettype",
        "compareto",
        "format",
        "join",
        "insert",
        "remove",
        "add",
        "addrange",
        "clear",
        "toarray",
        "tochararray",
        "getenumerator",
        "where",
        "foreach",
        "count",
        "get_item",
        "getvalue",
        "keys",
        "values",
        "clone",
        "normalize",
        "adddays",
        "addhours",
        "addminutes",
        "addseconds",
        "addmilliseconds",
        "tostringinvariant",
        "touniversaltime",
        "tolocaltime",
        "matches",
        "match",
        "ismatch",
        "getbytes",
        "getstring",
        "appendline",
        "append",
        "trygetvalue",
        "sort",
        "reverse",
        "exists",
        "item",
    }
)

_DYNAMIC_METHODS = frozenset(
    {
        "downloadfile",  # network and a write to a path we do not bind
        "downloadfileasync",
        "downloadfiletaskasync",
        "invoke",
        "invokereturnasis",
        "invokescript",
        "newscriptblock",
        "getnewclosure",
        "begininvoke",
        "addscript",
        "addcommand",
        "start",
        "createinstance",
    }
)

_NETWORK_METHODS = frozenset(
    {
        "downloadstring",
        "downloaddata",
        "downloadstringasync",
        "downloaddataasync",
        "downloadstringtaskasync",
        "uploadstring",
        "uploadfile",
        "uploaddata",
        "uploadvalues",
        "openreadasync",
        "getasync",
        "postasync",
        "putasync",
        "sendasync",
        "getstringasync",
        "getbytearrayasync",
        "getstreamasync",
        "getresponse",
        "getresponseasync",
        "getrequeststream",
        "connect",
        "connectasync",
        "send",
        "sendto",
        "receive",
        "resolve",
        "gethostentry",
        "gethostaddresses",
        "gethostbyname",
    }
)

_WRITE_METHODS = frozenset(
    {
        "writealltext",
        "writealllines",
        "writeallbytes",
        "appendalltext",
        "appendalllines",
        "delete",
        "moveto",
        "copyto",
        "create",
        "createtext",
        "createsubdirectory",
        "save",
        "write",
        "writeline",
        "flush",
        "setattributes",
        "encrypt",
        "decrypt",
        "extracttodirectory",
        "createfromdirectory",
    }
)


def normalize_type(text: str) -> str:
    """Return a type name as the tables key it: lower case, no ``System.``.

    ``[System.IO.File]`` -> ``io.file``; generic arguments are dropped
    (``List[string]`` -> ``collections.generic.list`` when qualified).
    """
    name = text.strip().strip("[]").strip().lower()
    name = name.split("[", 1)[0].split("`", 1)[0]
    name = name.removeprefix("system.")
    return _TYPE_ALIASES.get(name, name)


def _file_like_effect(type_name: str, method: str) -> Effect | None:
    """Effects of ``[IO.File]``/``[IO.Directory]`` and kin, else ``None``."""
    if type_name not in {"io.file", "io.directory", "io.compression.zipfile"}:
        return None
    if method in _FILE_READ:
        return _R
    return _W


def static_member_effect(type_text: str, method: str) -> Effect:
    """Return the effect of calling ``[type]::method(...)``.

    Args:
        type_text: the type as written, e.g. ``System.IO.File``.
        method: the member name, any case.

    Returns:
        The effect; ``dynamic`` for any type or method not known.
    """
    type_name = normalize_type(type_text)
    member = method.lower()
    special = _STATIC_SPECIAL.get((type_name, member))
    if special is not None:
        return special
    file_effect = _file_like_effect(type_name, member)
    if file_effect is not None:
        return file_effect
    if type_name in _NETWORK_TYPES:
        return _N
    if member == "new":
        return new_object_effect(type_name)
    if type_name in _PURE_TYPES:
        return _R
    return _D


def new_object_effect(type_text: str) -> Effect:
    """Return the effect of creating an object (``New-Object T``, ``[T]::new()``)."""
    type_name = normalize_type(type_text)
    if type_name in _NETWORK_TYPES:
        return _N
    if type_name in {"io.streamwriter", "io.filestream", "io.binarywriter"}:
        return _D  # writes a path given in arguments we do not bind
    if type_name in {"io.streamreader", "io.binaryreader"}:
        return _R
    if type_name in _PURE_TYPES:
        return _R
    return _D


def instance_method_effect(method: str) -> Effect:
    """Return the effect of ``$obj.Method(...)`` on an object of unknown type."""
    member = method.lower()
    if member in _PURE_METHODS:
        return _R
    if member in _NETWORK_METHODS:
        return _N
    if member in _WRITE_METHODS:
        return _W
    if member in _DYNAMIC_METHODS:
        return _D
    return _D
