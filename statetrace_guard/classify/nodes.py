"""The tree-sitter-bash node kinds the walker understands, by role.

Anything outside these sets is an unknown construct: the walker records a
parse error and classifies that part ``dynamic`` (fail closed).
"""

from __future__ import annotations

__all__ = ["CONTAINERS", "EXPRESSIONS", "SUBSTITUTIONS", "WORDS"]

# Nodes whose named children are statements (or expressions, scanned).
CONTAINERS = frozenset(
    {
        "program",
        "list",
        "pipeline",
        "subshell",
        "compound_statement",
        "do_group",
        "if_statement",
        "elif_clause",
        "else_clause",
        "while_statement",
        "for_statement",
        "c_style_for_statement",
        "case_statement",
        "case_item",
        "negated_command",
        "test_command",
    }
)

# Nodes that run commands whose output becomes a word.
SUBSTITUTIONS = frozenset({"command_substitution", "process_substitution"})

# Word-level nodes: evaluated to a Word, scanned for substitutions.
WORDS = frozenset(
    {
        "word",
        "string",
        "raw_string",
        "ansi_c_string",
        "translated_string",
        "concatenation",
        "simple_expansion",
        "expansion",
        "arithmetic_expansion",
        "number",
        "command_substitution",
        "process_substitution",
        "brace_expression",
        "extglob_pattern",
        "regex",
    }
)

# Everything else that may appear inside words, tests, arithmetic, loops.
EXPRESSIONS = WORDS | frozenset(
    {
        "string_content",
        "variable_name",
        "special_variable_name",
        "subscript",
        "binary_expression",
        "unary_expression",
        "ternary_expression",
        "postfix_expression",
        "parenthesized_expression",
        "test_operator",
        "heredoc_body",
        "heredoc_content",
        "heredoc_start",
        "heredoc_end",
        "file_descriptor",
        "array",
        "comment",
        "variable_assignment",
        "command_name",
    }
)
