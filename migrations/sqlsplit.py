"""Split a SQL file into statements, each with the line it starts on.

A hand-written lexer rather than ``sqlparse.split``: sqlparse cuts a statement in two at a semicolon
inside a nested block comment (``/* a /* b; */ c; */``), which PostgreSQL and DSQL both accept, and it
gives no line numbers for error messages. The lexer knows exactly the PostgreSQL rules that can hide a
semicolon: single-quoted strings (with ``''`` and, for ``E''``, backslash escapes), quoted identifiers,
``--`` comments, nested ``/* */`` comments and dollar quotes (``$$`` and ``$tag$``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$]")


class SqlSyntaxError(ValueError):
    """The text cannot be split: an unterminated string, identifier, comment or dollar quote."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.reason = message
        self.line = line


@dataclass(frozen=True)
class Statement:
    """One SQL statement without its trailing semicolon, and the 1-based line it starts on."""

    sql: str
    line: int


def split_statements(text: str) -> list[Statement]:
    """Return the statements of ``text`` in order; comments-only chunks are dropped."""
    statements: list[Statement] = []
    start = 0  # where the current statement's text begins
    has_code = False  # whether the current chunk holds anything but comments and blanks
    code_start = 0  # offset of the first non-comment character of the current chunk
    i, n = 0, len(text)

    def line_of(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    def close(end: int) -> None:
        nonlocal start, has_code
        if has_code:
            statements.append(Statement(text[start:end].strip(), line_of(code_start)))
        start, has_code = end + 1, False

    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if ch == "/" and text.startswith("/*", i):
            i = _skip_block_comment(text, i, line_of)
            continue
        if ch.isspace():
            i += 1
            continue
        if not has_code and ch != ";":
            has_code, code_start = True, i
            start = i
        if ch == ";":
            close(i)
            i += 1
        elif ch == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(text[i - 2]))
            i = _skip_quoted(text, i, "'", escapes, line_of)
        elif ch == '"':
            i = _skip_quoted(text, i, '"', False, line_of)
        elif ch == "$" and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
            tag = _DOLLAR_TAG.match(text, i)
            if tag:
                end = text.find(tag.group(0), tag.end())
                if end < 0:
                    raise SqlSyntaxError(f"unterminated dollar quote {tag.group(0)}", line_of(i))
                i = end + len(tag.group(0))
            else:
                i += 1
        else:
            i += 1
    close(n)
    return statements


def _skip_block_comment(text: str, i: int, line_of) -> int:
    depth, opened = 0, i
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlSyntaxError("unterminated /* comment", line_of(opened))


def _skip_quoted(text: str, i: int, quote: str, backslash_escapes: bool, line_of) -> int:
    opened, i = i, i + 1
    while i < len(text):
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch == quote:
            if text.startswith(quote * 2, i):  # a doubled quote is an escaped quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    what = "string" if quote == "'" else "quoted identifier"
    raise SqlSyntaxError(f"unterminated {what} (opening {quote} never closed)", line_of(opened))
