"""Statement splitting: semicolons inside strings, identifiers, comments and dollar quotes."""

from __future__ import annotations

import re

import pytest

from migrations.sqlsplit import SqlSyntaxError, split_statements


def sqls(text: str) -> list[str]:
    return [statement.sql for statement in split_statements(text)]


def test_plain_statements_and_their_lines() -> None:
    statements = split_statements("-- header\nSELECT 1;\n\nSELECT\n  2;\nSELECT 3")
    assert [(s.sql, s.line) for s in statements] == [("SELECT 1", 2), ("SELECT\n  2", 4), ("SELECT 3", 6)]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 'a;b'",
        "SELECT 'it''s; fine'",
        "SELECT E'it\\'s; fine'",
        'SELECT "odd;name" FROM t',
        "SELECT $$a;b$$",
        "SELECT $fn$ x; $$ y; $fn$",
        "SELECT 1 /* a; /* nested; */ still comment; */ + 1",
        "SELECT 1 -- trailing; comment\n + 1",
    ],
)
def test_semicolons_that_do_not_end_a_statement(statement: str) -> None:
    assert sqls(f"{statement};\nSELECT 2;") == [statement, "SELECT 2"]


def test_comment_only_and_empty_chunks_are_dropped() -> None:
    assert sqls(";;\n-- only a comment;\n/* and another; */\n") == []


def test_dollar_sign_inside_identifier_is_not_a_quote() -> None:
    assert sqls("SELECT a$b FROM t; SELECT 2") == ["SELECT a$b FROM t", "SELECT 2"]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("SELECT 1;\nSELECT 'open", "unterminated string", 2),
        ('SELECT "open', "unterminated quoted identifier", 1),
        ("SELECT 1;\n\n/* open", "unterminated /* comment", 3),
        ("SELECT $tag$ open", "unterminated dollar quote $tag$", 1),
    ],
)
def test_unterminated_constructs_are_reported_with_their_line(text: str, message: str, line: int) -> None:
    with pytest.raises(SqlSyntaxError, match=re.escape(message)) as failure:
        split_statements(text)
    assert failure.value.line == line
