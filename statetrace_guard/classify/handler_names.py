"""The code handlers a registry entry may name, and the data keys each reads.

Kept apart from the handlers themselves so the loader can check an entry's
``handler`` and ``handler_data`` without importing any handler (the handlers
import the registry's compiled form; the loader must not import them back).
``handlers.py`` maps these names to functions; a test keeps the two in step.
"""

from __future__ import annotations

__all__ = ["FRONT_ENDS", "HANDLER_DATA_KEYS"]

# Handlers that hand the command to another front end (a shell's parser).
FRONT_ENDS = frozenset({"posix-shell", "pwsh", "cmd", "other-shell"})

HANDLER_DATA_KEYS: dict[str, frozenset[str]] = {
    # front ends
    "posix-shell": frozenset(
        {
            "flag_letters",
            "argument_letters",
            "dynamic_letters",
            "end_letters",
            "argument_long_options",
            "startup_file_options",
        }
    ),
    "pwsh": frozenset(),
    "cmd": frozenset(),
    "other-shell": frozenset(),
    # grammars
    "git": frozenset({"dangerous_config", "safe_config_values", "repository_options"}),
    "git-config": frozenset({"read_actions", "write_actions"}),
    "git-branch": frozenset({"listing_flags", "config_flags"}),
    "tar": frozenset({"extract_options", "archive_writing_options", "stdout_options"}),
    "sed": frozenset(),
    "awk": frozenset(),
    "python": frozenset({"inline_options", "isolating_flags"}),
    "interpreter": frozenset({"inline_options"}),
    "find": frozenset({"exec_actions", "write_actions", "delete_actions"}),
    "xargs": frozenset({"replace_options"}),
    "fd": frozenset({"exec_options"}),
    "parallel": frozenset({"separators"}),
    "env": frozenset({"split_options", "unset_options", "chdir_options"}),
    "command": frozenset({"lookup_flags"}),
    "watch": frozenset(),
    "download": frozenset(
        {
            "remote_name_flags",
            "output_dir_options",
            "no_file_flags",
            "url_options",
            "loopback_refused_options",
        }
    ),
    "network-client": frozenset(),
    "loopback-server": frozenset({"bind_options"}),
    "ssh": frozenset({"command_config_keys"}),
    "rsync": frozenset(),
    "socat": frozenset({"exec_addresses"}),
    "dd": frozenset(),
    "less": frozenset(),
    "date": frozenset(),
    "test": frozenset(),
    "declare": frozenset(),
    "unset": frozenset(),
    "read": frozenset(),
    "printf": frozenset(),
    "mapfile": frozenset(),
    "getopts": frozenset(),
    "wait": frozenset(),
    "let": frozenset(),
    "setx": frozenset(),
    "cmd-set": frozenset(),
    # PowerShell cmdlets
    "foreach": frozenset({"pure_members"}),
    "where": frozenset(),
    "job": frozenset(),
    "new-object": frozenset(),
    "import-module": frozenset({"builtin_modules"}),
    "alias": frozenset(),
    "variable": frozenset(),
}
