"""The data behind ``cmdlets.py``: specs, aliases, built-in modules.

Parameter lists are written as space-separated lower-case names; the tables
are compiled once at import (frozen sets and tuples), nothing per command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from statetrace_guard.levels import Effect

__all__ = ["ALIASES", "BUILTIN_MODULES", "PURE_MEMBERS", "SPECS", "CmdletSpec"]

_COMMON = (
    "erroraction warningaction informationaction progressaction errorvariable "
    "warningvariable informationvariable outvariable outbuffer pipelinevariable"
)
_COMMON_SWITCHES = "verbose debug whatif confirm"


@dataclass(frozen=True, slots=True)
class CmdletSpec:
    """What one cmdlet does and how its parameters bind.

    ``writes``/``urls`` name the parameters holding written paths / remote
    addresses; ``special`` keys an extra rule in ``cmdlets.py``;
    ``default_write`` is the path written when no write parameter is given.
    """

    name: str
    effects: frozenset[Effect]
    why: str
    positional: tuple[str, ...]
    writes: tuple[str, ...]
    urls: tuple[str, ...]
    special: str
    default_write: str | None
    all_params: tuple[str, ...]
    switch_set: frozenset[str]
    aliases: Mapping[str, str] = field(default_factory=dict)


_LETTERS = {
    "r": Effect.READ,
    "w": Effect.WRITE,
    "n": Effect.NETWORK,
    "i": Effect.INSTALL,
    "d": Effect.DYNAMIC,
}


def _spec(
    name: str,
    letters: str,
    why: str = "",
    *,
    v: str = "",
    s: str = "",
    pos: str = "",
    w: str = "",
    u: str = "",
    special: str = "",
    default: str | None = None,
    al: str = "",
) -> CmdletSpec:
    """Build one spec; ``al`` is ``alias=param`` pairs."""
    values = tuple(dict.fromkeys((*v.split(), *pos.split(), *w.split(), *u.split())))
    switches = tuple(s.split())
    params = tuple(
        dict.fromkeys((*values, *switches, *_COMMON.split(), *_COMMON_SWITCHES.split()))
    )
    aliases = dict(pair.split("=", 1) for pair in al.split())
    return CmdletSpec(
        name=name,
        effects=frozenset(_LETTERS[c] for c in letters),
        why=why,
        positional=tuple(pos.split()),
        writes=tuple(w.split()),
        urls=tuple(u.split()),
        special=special,
        default_write=default,
        all_params=params,
        switch_set=frozenset((*switches, *_COMMON_SWITCHES.split())),
        aliases=MappingProxyType(aliases),
    )


_PATH_V = "path literalpath filter include exclude credential stream"
_PATH_AL = "pspath=literalpath lp=literalpath"

# Read-only cmdlets: parameters matter only for binding, never for effects.
_READ_NAMES = [
    "get-childitem",
    "get-content",
    "get-item",
    "get-itemproperty",
    "get-itempropertyvalue",
    "get-location",
    "get-process",
    "get-service",
    "get-command",
    "get-help",
    "get-member",
    "get-date",
    "get-variable",
    "get-module",
    "get-psdrive",
    "get-filehash",
    "get-acl",
    "get-executionpolicy",
    "get-host",
    "get-history",
    "get-alias",
    "get-culture",
    "get-uiculture",
    "get-random",
    "get-unique",
    "get-job",
    "receive-job",
    "wait-job",
    "remove-job",
    "stop-job",
    "get-event",
    "get-eventlog",
    "get-winevent",
    "get-ciminstance",
    "get-wmiobject",
    "get-counter",
    "get-computerinfo",
    "get-timezone",
    "get-uptime",
    "get-error",
    "get-pscallstack",
    "get-typedata",
    "get-formatdata",
    "get-verb",
    "get-psprovider",
    "get-installedmodule",
    "get-psrepository",
    "get-scheduledtask",
    "get-scheduledtaskinfo",
    "get-netipaddress",
    "get-nettcpconnection",
    "get-netadapter",
    "get-clipboard",
    "get-authenticodesignature",
    "get-pfxcertificate",
    "get-localuser",
    "get-disk",
    "get-volume",
    "get-hotfix",
    "get-package",
    "get-packageprovider",
    "get-psreadlineoption",
    "get-psbreakpoint",
    "get-pssessionconfiguration",
    "get-pssession",
    "get-itemproperty",
    "get-psresource",
    "get-installedpsresource",
    "get-credential",
    "get-windowsoptionalfeature",
    "get-appxpackage",
    "get-smbshare",
    "get-printer",
    "select-object",
    "select-string",
    "select-xml",
    "measure-object",
    "measure-command",
    "test-path",
    "test-json",
    "test-modulemanifest",
    "test-scriptfileinfo",
    "resolve-path",
    "format-table",
    "format-list",
    "format-wide",
    "format-custom",
    "format-hex",
    "convertfrom-json",
    "convertfrom-csv",
    "convertfrom-stringdata",
    "convertfrom-securestring",
    "convertfrom-markdown",
    "convertto-json",
    "convertto-csv",
    "convertto-xml",
    "convertto-html",
    "convertto-securestring",
    "compare-object",
    "group-object",
    "sort-object",
    "tee-object",
    "write-output",
    "write-host",
    "write-verbose",
    "write-warning",
    "write-error",
    "write-debug",
    "write-information",
    "write-progress",
    "out-string",
    "out-host",
    "out-null",
    "out-default",
    "out-gridview",
    "join-path",
    "split-path",
    "convert-path",
    "join-string",
    "new-timespan",
    "new-guid",
    "start-sleep",
    "set-location",
    "push-location",
    "pop-location",
    "import-csv",
    "import-clixml",
    "import-powershelldatafile",
    "import-localizeddata",
    "read-host",
    "clear-host",
    "set-strictmode",
    "add-member",
    "new-variable",
    "set-variable",
    "remove-variable",
    "clear-variable",
    "get-fileversioninfo",
    "new-object",
    "foreach-object",
    "where-object",
    "set-alias",
    "new-alias",
    "export-modulemember",
    "get-uptime",
    "show-command",
    "get-localgroup",
    "get-localgroupmember",
    "get-winsystemlocale",
    "get-culture",
    "update-list",
    "new-psobject",
    "get-netroute",
    "get-dnsclientcache",
    "get-firewallrule",
    "new-pssessionoption",
    "new-cimsessionoption",
    "get-cimclass",
    "set-psreadlineoption",
    "disable-psbreakpoint",
    "register-argumentcompleter",
    "get-transaction",
    "set-clipboard",
]

_READ_SPECIAL: dict[str, CmdletSpec] = {
    "get-content": _spec(
        "get-content",
        "r",
        "reads files",
        v=_PATH_V + " totalcount tail readcount delimiter encoding head first last",
        s="raw wait force asbytestream",
        pos="path",
        al=_PATH_AL + " gc=totalcount",
    ),
    "get-childitem": _spec(
        "get-childitem",
        "r",
        "lists files",
        v=_PATH_V + " depth attributes",
        s="recurse force name directory file hidden readonly system followsymlink",
        pos="path filter",
        al=_PATH_AL + " s=recurse ad=directory af=file",
    ),
    "select-string": _spec(
        "select-string",
        "r",
        "searches text",
        v=_PATH_V + " pattern inputobject encoding context culture",
        s="simplematch casesensitive quiet list allmatches notmatch raw noemphasis",
        pos="pattern path",
        al=_PATH_AL,
    ),
    "tee-object": _spec(
        "tee-object",
        "r",
        "copies the pipeline",
        v="filepath literalpath variable inputobject encoding",
        s="append",
        pos="filepath",
        w="filepath literalpath",
        al="path=filepath pspath=literalpath lp=literalpath",
    ),
    "foreach-object": _spec(
        "foreach-object",
        "r",
        "runs a block per item (classified apart)",
        v="process begin end remainingscripts membername argumentlist inputobject "
        "parallel throttlelimit timeoutseconds",
        s="asjob usenewrunspace",
        pos="process",
        special="foreach",
    ),
    "where-object": _spec(
        "where-object",
        "r",
        "filters the pipeline",
        v="filterscript property value inputobject",
        s="eq ne gt lt ge le like notlike match notmatch contains in is not",
        pos="filterscript value",
        special="where",
    ),
    "new-object": _spec(
        "new-object",
        "r",
        "",
        v="typename comobject argumentlist property",
        s="strict",
        pos="typename argumentlist",
        special="new-object",
        al="args=argumentlist",
    ),
    "set-alias": _spec(
        "set-alias",
        "r",
        "defines an alias",
        v="name value description option scope",
        s="passthru force",
        pos="name value",
        special="alias",
    ),
    "set-location": _spec(
        "set-location",
        "r",
        "changes directory",
        v="path literalpath stackname",
        s="passthru",
        pos="path",
        al=_PATH_AL,
    ),
    "measure-command": _spec(
        "measure-command",
        "r",
        "times a block",
        v="expression inputobject",
        pos="expression",
    ),
}
_READ_SPECIAL["new-alias"] = _READ_SPECIAL["set-alias"]
for _name in ("set-variable", "new-variable"):
    _READ_SPECIAL[_name] = _spec(
        _name,
        "r",
        "sets a variable",
        v="name value description option scope visibility include exclude",
        s="passthru force",
        pos="name value",
        special="variable",
    )
for _name in ("remove-variable", "clear-variable"):
    _READ_SPECIAL[_name] = _spec(
        _name,
        "r",
        "clears a variable",
        v="name scope include exclude",
        s="passthru force",
        pos="name",
        special="variable",
    )
_READ_SPECIAL["push-location"] = _READ_SPECIAL["set-location"]


def _write(name: str, pos: str, w: str, extra_v: str = "", **kw: str) -> CmdletSpec:
    """A cmdlet that writes the paths in its ``w`` parameters."""
    default = kw.pop("default", None)
    return _spec(
        name,
        "w",
        "writes files",
        v=_PATH_V + " " + extra_v,
        s=kw.pop("s", "force passthru recurse"),
        pos=pos,
        w=w,
        default=default,
        al=_PATH_AL + " " + kw.pop("al", ""),
        **kw,
    )


_ITEMPROP_V = "name value propertytype type"
_WRITE_SPECS = [
    _write(
        "set-content",
        "path value",
        "path literalpath",
        "value encoding delimiter",
        s="force passthru nonewline asbytestream",
    ),
    _write(
        "add-content",
        "path value",
        "path literalpath",
        "value encoding delimiter",
        s="force passthru nonewline asbytestream",
    ),
    _write("clear-content", "path", "path literalpath"),
    _write(
        "out-file",
        "filepath encoding",
        "filepath literalpath path",
        "filepath encoding inputobject width",
        s="append force noclobber nonewline",
        al="pspath=literalpath",
    ),
    _write(
        "new-item", "path", "path name", "name itemtype value type", al="type=itemtype"
    ),
    _write("remove-item", "path", "path literalpath"),
    _write("clear-item", "path", "path literalpath"),
    _write("set-item", "path value", "path literalpath", "value"),
    _write(
        "copy-item",
        "path destination",
        "destination",
        "destination tosession fromsession",
        s="force passthru recurse container",
        default=".",
    ),
    _write(
        "move-item",
        "path destination",
        "path literalpath destination",
        "destination",
        default=".",
    ),
    _write("rename-item", "path newname", "path literalpath newname", "newname"),
    _write("set-itemproperty", "path name value", "path literalpath", _ITEMPROP_V),
    _write("new-itemproperty", "path name value", "path literalpath", _ITEMPROP_V),
    _write("remove-itemproperty", "path name", "path literalpath", "name"),
    _write("clear-itemproperty", "path name", "path literalpath", "name"),
    _write(
        "rename-itemproperty", "path name newname", "path literalpath", "name newname"
    ),
    _write(
        "copy-itemproperty", "path destination name", "destination", "destination name"
    ),
    _write(
        "move-itemproperty",
        "path destination name",
        "path literalpath destination",
        "destination name",
    ),
    _write(
        "export-csv",
        "path",
        "path literalpath",
        "inputobject delimiter encoding usequotes quotefields",
        s="force noclobber append notypeinformation includetypeinformation useculture",
    ),
    _write(
        "export-clixml",
        "path",
        "path literalpath",
        "inputobject depth encoding",
        s="force noclobber",
    ),
    _write(
        "export-alias",
        "path name",
        "path literalpath",
        "name as scope description",
        s="append force noclobber passthru",
    ),
    _write(
        "export-formatdata",
        "",
        "path literalpath",
        "inputobject",
        s="force noclobber includescriptblock",
    ),
    _write(
        "expand-archive",
        "path destinationpath",
        "destinationpath",
        "destinationpath",
        default=".",
    ),
    _write(
        "compress-archive",
        "path destinationpath",
        "destinationpath",
        "destinationpath compressionlevel",
        s="update force passthru",
    ),
    _write(
        "start-transcript",
        "path",
        "path literalpath outputdirectory",
        "outputdirectory",
        default="~/Documents",
        s="append force noclobber includeinvocationheader useminimalheader",
    ),
    _write("set-acl", "path aclobject", "path literalpath", "aclobject inputobject"),
    _write("new-temporaryfile", "", "", default="/tmp/new-temporaryfile"),  # noqa: S108 - a name, never opened
    _write("mkdir", "path", "path name", "name"),
]


def _net(name: str, pos: str = "", u: str = "", **kw: str) -> CmdletSpec:
    """A cmdlet that talks to the network."""
    return _spec(name, kw.pop("letters", "n"), "uses the network", pos=pos, u=u, **kw)


_WEB_V = (
    "uri outfile infile method body headers contenttype useragent websession "
    "sessionvariable credential certificate certificatethumbprint proxy "
    "proxycredential timeoutsec maximumredirection transferencoding form "
    "authentication token maximumretrycount retryintervalsec sslprotocol "
    "httpversion custommethod responseheadersvariable statuscodevariable "
    "maximumfollowrellink connectiontimeoutseconds operationtimeoutseconds"
)
_WEB_S = (
    "usebasicparsing usedefaultcredentials disablekeepalive passthru "
    "skipcertificatecheck skipheadervalidation allowunencryptedauthentication "
    "proxyusedefaultcredentials resume skiphttperrorcheck followrellink "
    "preserveauthorizationonredirect allowinsecureredirect nobodyprogress"
)
_NET_SPECS = [
    _net(
        "invoke-webrequest",
        "uri",
        "uri",
        v=_WEB_V,
        s=_WEB_S,
        w="outfile",
        al="us=useragent",
    ),
    _net("invoke-restmethod", "uri", "uri", v=_WEB_V, s=_WEB_S, w="outfile"),
    _net(
        "start-bitstransfer",
        "source destination",
        "source",
        v="source destination "
        "displayname description priority transfertype credential proxylist",
        s="asynchronous suspended",
        w="destination",
        default=".",
    ),
    _net(
        "test-netconnection",
        "computername",
        "computername",
        v="port commontcpport traceroute hops constrainsourceaddress",
        s="informationlevel detailed",
    ),
    _net(
        "test-connection",
        "targetname",
        "targetname computername",
        v="count delay buffersize source",
        s="quiet ping tcpport traceroute",
    ),
    _net("resolve-dnsname", "name type", "name server", v="server"),
    _net(
        "send-mailmessage",
        "to subject body",
        "smtpserver",
        v="from cc bcc attachments smtpserver port credential encoding priority",
    ),
    _net("new-pssession", "computername", "computername connectionuri hostname"),
    _net("enter-pssession", "computername", "computername connectionuri hostname"),
    _net("connect-pssession", "computername", "computername"),
    _net("receive-pssession", "computername", "computername"),
    _net("import-pssession", "session", letters="nd"),
    _net("export-pssession", "session outputmodule", w="outputmodule", letters="nw"),
    _net("new-cimsession", "computername", "computername"),
    _net("new-webserviceproxy", "uri", "uri"),
    _net("find-module", "name"),
    _net("find-script", "name"),
    _net("find-package", "name"),
    _net("find-packageprovider", "name"),
    _net("find-dscresource", "name"),
    _net("find-command", "name"),
    _net("find-rolecapability", "name"),
    _net("find-psresource", "name"),
    _net(
        "save-module",
        "name path",
        v="literalpath repository requiredversion minimumversion maximumversion",
        w="path literalpath",
        letters="nw",
    ),
    _net("save-script", "name path", w="path literalpath", letters="nw"),
    _net("save-package", "name path", w="path literalpath", letters="nw"),
    _net("save-psresource", "name path", w="path", letters="nw"),
    _net("update-help", "module", letters="nw", default="~/help"),
    _net("save-help", "destinationpath module", w="destinationpath", letters="nw"),
    _net("invoke-wmimethod", "class name", letters="d"),
    _net("invoke-cimmethod", "classname methodname", letters="d"),
]


def _inst(name: str, letters: str = "in") -> CmdletSpec:
    """A cmdlet that installs software or changes machine configuration."""
    return _spec(
        name,
        letters,
        "installs or changes the machine's setup",
        v="name scope repository source",
        pos="name",
    )


_INSTALL_NAMES = [
    "install-module",
    "install-package",
    "install-script",
    "install-packageprovider",
    "install-psresource",
    "update-module",
    "update-script",
    "update-psresource",
    "uninstall-module",
    "uninstall-package",
    "uninstall-script",
    "uninstall-psresource",
    "register-psrepository",
    "set-psrepository",
    "unregister-psrepository",
    "register-packagesource",
    "set-packagesource",
    "unregister-packagesource",
    "register-psresourcerepository",
    "set-psresourcerepository",
    "import-packageprovider",
    "enable-windowsoptionalfeature",
    "disable-windowsoptionalfeature",
    "add-windowscapability",
    "remove-windowscapability",
    "install-windowsfeature",
    "add-appxpackage",
    "remove-appxpackage",
]

_INSTALL_SPECS = [
    *(_inst(n) for n in _INSTALL_NAMES),
    _spec(
        "set-executionpolicy",
        "i",
        "changes the execution policy",
        v="executionpolicy scope",
        s="force",
        pos="executionpolicy scope",
    ),
]

# Commands that run code or change the machine in ways no spec can bound.
_DYNAMIC_SPECS = [
    _spec(
        "invoke-expression", "d", "runs a string as code", v="command", pos="command"
    ),
    _spec(
        "start-process",
        "d",
        "starts any program",
        v="filepath argumentlist "
        "workingdirectory verb redirectstandardoutput redirectstandarderror "
        "redirectstandardinput windowstyle credential",
        s="wait passthru nonewwindow loaduserprofile usenewenvironment",
        pos="filepath argumentlist",
    ),
    _spec(
        "invoke-item",
        "d",
        "opens files with their associated program",
        v=_PATH_V,
        pos="path",
    ),
    _spec(
        "add-type",
        "d",
        "compiles and loads code",
        v="typedefinition path "
        "literalpath assemblyname memberdefinition name namespace language",
        pos="typedefinition",
    ),
    _spec("invoke-history", "d", "re-runs earlier commands", v="id", pos="id"),
    _spec("register-scheduledtask", "d", "persists a scheduled task"),
    _spec("set-scheduledtask", "d", "changes a scheduled task"),
    _spec("unregister-scheduledtask", "d", "deletes a scheduled task"),
    _spec("start-scheduledtask", "d", "runs a scheduled task"),
    _spec("register-objectevent", "d", "runs code on events"),
    _spec("register-engineevent", "d", "runs code on events"),
    _spec("register-wmievent", "d", "runs code on events"),
    _spec("set-psbreakpoint", "d", "runs code at breakpoints"),
    _spec("update-typedata", "d", "loads type extensions (script code)"),
    _spec("update-formatdata", "d", "loads format data (script code)"),
    _spec("import-alias", "d", "redefines commands"),
    _spec("new-module", "d", "builds a module from code"),
    _spec("enable-psremoting", "d", "opens the machine to remoting"),
    _spec("start-service", "d", "changes services"),
    _spec("stop-service", "d", "changes services"),
    _spec("restart-service", "d", "changes services"),
    _spec("set-service", "d", "changes services"),
    _spec("new-service", "d", "creates a service"),
    _spec("remove-service", "d", "removes a service"),
    _spec("stop-process", "d", "kills processes (the guard's too)"),
    _spec("stop-computer", "d", "shuts the machine down"),
    _spec("restart-computer", "d", "restarts the machine"),
    _spec("set-date", "d", "changes the clock"),
    _spec("new-localuser", "d", "creates accounts"),
    _spec("set-localuser", "d", "changes accounts"),
    _spec("add-localgroupmember", "d", "changes groups"),
    _spec("set-netfirewallrule", "d", "changes the firewall"),
    _spec("new-netfirewallrule", "d", "changes the firewall"),
    _spec("set-mppreference", "d", "changes Defender"),
    _spec("add-mppreference", "d", "changes Defender"),
    _spec(
        "invoke-command",
        "r",
        "runs a block (classified apart) or a file",
        v="scriptblock filepath argumentlist computername session connectionuri "
        "hostname vmname containerid inputobject credential",
        s="asjob hidecomputername nonewscope",
        pos="scriptblock argumentlist",
        special="job",
        al="cn=computername args=argumentlist",
    ),
    _spec(
        "start-job",
        "r",
        "runs a block (classified apart) or a file in a job",
        v="scriptblock filepath literalpath initializationscript argumentlist name "
        "credential inputobject",
        pos="scriptblock",
        special="job",
        al="args=argumentlist",
    ),
    _spec(
        "start-threadjob",
        "r",
        "runs a block (classified apart) in a thread job",
        v="scriptblock filepath initializationscript argumentlist name "
        "throttlelimit inputobject",
        pos="scriptblock",
        special="job",
    ),
    _spec(
        "import-module",
        "r",
        "",
        v="name fullyqualifiedname prefix "
        "minimumversion requiredversion maximumversion scope argumentlist",
        s="force global passthru asCustomObject disablenamechecking noclobber",
        pos="name",
        special="import-module",
    ),
    _spec(
        "trace-command",
        "r",
        "traces a block",
        v="name expression command",
        pos="name expression",
    ),
]


def _build_specs() -> Mapping[str, CmdletSpec]:
    """Compile every table into one read-only mapping."""
    table: dict[str, CmdletSpec] = {
        name: _spec(name, "r", "reads only", pos="path", v=_PATH_V, al=_PATH_AL)
        for name in _READ_NAMES
    }
    table.update(_READ_SPECIAL)
    for spec in (*_WRITE_SPECS, *_NET_SPECS, *_INSTALL_SPECS, *_DYNAMIC_SPECS):
        table[spec.name] = spec
    return MappingProxyType(table)


SPECS = _build_specs()

# Windows PowerShell 5.1 built-in aliases (a superset of PowerShell 7's).
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "%": "foreach-object",
        "?": "where-object",
        "foreach": "foreach-object",
        "where": "where-object",
        "ac": "add-content",
        "asnp": "add-pssnapin",
        "cat": "get-content",
        "cd": "set-location",
        "chdir": "set-location",
        "clc": "clear-content",
        "clear": "clear-host",
        "cls": "clear-host",
        "clhy": "clear-history",
        "cli": "clear-item",
        "clp": "clear-itemproperty",
        "clv": "clear-variable",
        "cnsn": "connect-pssession",
        "compare": "compare-object",
        "copy": "copy-item",
        "cp": "copy-item",
        "cpi": "copy-item",
        "cpp": "copy-itemproperty",
        "curl": "invoke-webrequest",
        "cvpa": "convert-path",
        "dbp": "disable-psbreakpoint",
        "del": "remove-item",
        "diff": "compare-object",
        "dir": "get-childitem",
        "dnsn": "disconnect-pssession",
        "ebp": "enable-psbreakpoint",
        "echo": "write-output",
        "epal": "export-alias",
        "epcsv": "export-csv",
        "epsn": "export-pssession",
        "erase": "remove-item",
        "etsn": "enter-pssession",
        "exsn": "exit-pssession",
        "fc": "format-custom",
        "fhx": "format-hex",
        "fl": "format-list",
        "ft": "format-table",
        "fw": "format-wide",
        "gal": "get-alias",
        "gbp": "get-psbreakpoint",
        "gc": "get-content",
        "gcb": "get-clipboard",
        "gci": "get-childitem",
        "gcm": "get-command",
        "gcs": "get-pscallstack",
        "gdr": "get-psdrive",
        "ghy": "get-history",
        "gi": "get-item",
        "gin": "get-computerinfo",
        "gjb": "get-job",
        "gl": "get-location",
        "gm": "get-member",
        "gmo": "get-module",
        "gp": "get-itemproperty",
        "gps": "get-process",
        "gpv": "get-itempropertyvalue",
        "group": "group-object",
        "gsn": "get-pssession",
        "gsnp": "get-pssnapin",
        "gsv": "get-service",
        "gtz": "get-timezone",
        "gu": "get-unique",
        "gv": "get-variable",
        "gwmi": "get-wmiobject",
        "h": "get-history",
        "history": "get-history",
        "icm": "invoke-command",
        "iex": "invoke-expression",
        "ihy": "invoke-history",
        "ii": "invoke-item",
        "ipal": "import-alias",
        "ipcsv": "import-csv",
        "ipmo": "import-module",
        "ipsn": "import-pssession",
        "irm": "invoke-restmethod",
        "ise": "powershell_ise",
        "iwmi": "invoke-wmimethod",
        "iwr": "invoke-webrequest",
        "kill": "stop-process",
        "lp": "out-printer",
        "ls": "get-childitem",
        "man": "get-help",
        "md": "mkdir",
        "measure": "measure-object",
        "mi": "move-item",
        "mount": "new-psdrive",
        "move": "move-item",
        "mp": "move-itemproperty",
        "mv": "move-item",
        "nal": "new-alias",
        "ndr": "new-psdrive",
        "ni": "new-item",
        "nmo": "new-module",
        "npssc": "new-pssessionconfigurationfile",
        "nsn": "new-pssession",
        "nv": "new-variable",
        "ogv": "out-gridview",
        "oh": "out-host",
        "popd": "pop-location",
        "ps": "get-process",
        "pushd": "push-location",
        "pwd": "get-location",
        "r": "invoke-history",
        "rbp": "remove-psbreakpoint",
        "rcjb": "receive-job",
        "rcsn": "receive-pssession",
        "rd": "remove-item",
        "rdr": "remove-psdrive",
        "ren": "rename-item",
        "ri": "remove-item",
        "rjb": "remove-job",
        "rm": "remove-item",
        "rmdir": "remove-item",
        "rmo": "remove-module",
        "rni": "rename-item",
        "rnp": "rename-itemproperty",
        "rp": "remove-itemproperty",
        "rsn": "remove-pssession",
        "rsnp": "remove-pssnapin",
        "rujb": "resume-job",
        "rv": "remove-variable",
        "rvpa": "resolve-path",
        "rwmi": "remove-wmiobject",
        "sajb": "start-job",
        "sal": "set-alias",
        "saps": "start-process",
        "sasv": "start-service",
        "sbp": "set-psbreakpoint",
        "sc": "set-content",
        "scb": "set-clipboard",
        "select": "select-object",
        "set": "set-variable",
        "shcm": "show-command",
        "si": "set-item",
        "sl": "set-location",
        "sleep": "start-sleep",
        "sls": "select-string",
        "sort": "sort-object",
        "sp": "set-itemproperty",
        "spjb": "stop-job",
        "spps": "stop-process",
        "spsv": "stop-service",
        "start": "start-process",
        "stz": "set-timezone",
        "sujb": "suspend-job",
        "sv": "set-variable",
        "swmi": "set-wmiinstance",
        "tee": "tee-object",
        "tnc": "test-netconnection",
        "trcm": "trace-command",
        "type": "get-content",
        "wget": "invoke-webrequest",
        "wjb": "wait-job",
        "write": "write-output",
        "help": "get-help",
    }
)

BUILTIN_MODULES = frozenset(
    [
        "pester",
        "psscriptanalyzer",
        "packagemanagement",
        "powershellget",
        "psreadline",
        "threadjob",
        "cimcmdlets",
        "nettcpip",
        "dnsclient",
        "scheduledtasks",
        "storage",
        "smbshare",
        "netadapter",
        "international",
        "appx",
        "dism",
        "bitstransfer",
        "psdiagnostics",
        "pki",
        "defender",
        "microsoft.powershell.archive",
        "microsoft.powershell.utility",
        "microsoft.powershell.management",
        "microsoft.powershell.security",
        "microsoft.powershell.diagnostics",
        "microsoft.powershell.host",
        "microsoft.powershell.core",
        "microsoft.powershell.psresourceget",
    ]
)

# Properties ``ForEach-Object Name`` may read without running anything.
PURE_MEMBERS = frozenset(
    [
        "name",
        "fullname",
        "basename",
        "extension",
        "length",
        "directoryname",
        "directory",
        "lastwritetime",
        "creationtime",
        "count",
        "id",
        "processname",
        "path",
        "value",
        "key",
        "keys",
        "values",
        "status",
        "displayname",
        "source",
        "version",
        "definition",
        "line",
        "linenumber",
        "filename",
        "pattern",
        "matches",
        "tostring",
        "trim",
        "tolower",
        "toupper",
        "mode",
        "parent",
        "root",
        "psparentpath",
        "pspath",
    ]
)
