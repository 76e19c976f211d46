"""The directories whose programs are judged by their name (the default list).

A program given by a path in one of these (``/usr/bin/curl``) is the system
program ``curl``; any other path is a file the agent may have written, run
as a script. A policy's ``trusted_dirs`` replaces this list. Kept alone so
that loading a policy does not load the classifier.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TRUSTED_DIRS"]

DEFAULT_TRUSTED_DIRS = (
    # Windows system directories, compared lower case with forward slashes.
    "c:/windows",
    "c:/windows/system32",
    "c:/windows/syswow64",
    "c:/windows/system32/windowspowershell/v1.0",
    "c:/program files/powershell/7",
    "c:/program files/git/cmd",
    "c:/program files/git/bin",
    "/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/bin",
    "/usr/libexec/git-core",
    "/run/current-system/sw/bin",
)
