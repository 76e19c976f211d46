"""What .NET types and methods do, as PowerShell scripts reach them.

PowerShell can call any .NET API: ``[IO.File]::WriteAllText(...)``,
``(New-Object Net.WebClient).DownloadString(...)``, ``[Net.Dns]::Resolve``.
The registry (``specs/dotnet.toml``) gives the effect of a static call on a
type, of creating an object of a type, and of calling a method on an object
of unknown type. What is not listed is ``dynamic``: .NET is too large to
guess safely.
"""

from __future__ import annotations

from statetrace_guard.classify.knowledge import Knowledge
from statetrace_guard.levels import Effect

__all__ = [
    "instance_method_effect",
    "new_object_effect",
    "normalize_type",
    "static_member_effect",
]


def normalize_type(text: str, knowledge: Knowledge | None = None) -> str:
    """Return a type name as the registry keys it: lower case, no ``System.``.

    ``[System.IO.File]`` -> ``io.file``; generic arguments are dropped
    (``List[string]`` -> ``collections.generic.list`` when qualified);
    an alias (``management.automation.scriptblock``) becomes its type.
    """
    name = text.strip().strip("[]").strip().lower()
    name = name.split("[", 1)[0].split("`", 1)[0]
    name = name.removeprefix("system.")
    return knowledge.dotnet_canonical(name) if knowledge is not None else name


def static_member_effect(type_text: str, method: str, knowledge: Knowledge) -> Effect:
    """Return the effect of calling ``[type]::method(...)``.

    Args:
        type_text: the type as written, e.g. ``System.IO.File``.
        method: the member name, any case.
        knowledge: the registry.

    Returns:
        The effect; ``dynamic`` for any type or member not known.
    """
    found = knowledge.dotnet_type(normalize_type(type_text, knowledge))
    member = method.lower()
    if found is None:
        return Effect.DYNAMIC
    listed = found.members.get(member)
    if listed is not None:
        return listed
    if member == "new":
        return found.construct
    return found.static


def new_object_effect(type_text: str, knowledge: Knowledge) -> Effect:
    """Return the effect of creating an object (``New-Object T``, ``[T]::new()``)."""
    found = knowledge.dotnet_type(normalize_type(type_text, knowledge))
    return Effect.DYNAMIC if found is None else found.construct


def instance_method_effect(method: str, knowledge: Knowledge) -> Effect:
    """Return the effect of ``$obj.Method(...)`` on an object of unknown type."""
    found = knowledge.method_effect(method.lower())
    return Effect.DYNAMIC if found is None else found
