"""What SQL arrowlog accepts, for every engine: read-only, bounded, parameters bound.

One policy, which each engine enforces with its own machinery where it has some:

- **DataFusion**: ``READ_ONLY`` (``SQLOptions``) refuses DDL, DML (COPY included) and
  SET-style statements; no URL tables are enabled. ``engine_error`` turns the refusal
  into ``ReadOnlyQuery``.
- **DuckDB**: exactly one statement, of type SELECT, as DuckDB's own parser reads it
  (``check_duckdb_statement``); then only the referenced streams' live files stay
  readable and the configuration is locked (``lock_duckdb``).
- **Daft**: neither bound parameters nor statement options, so a lexical check over the
  tokenizer below (``check_select_only``) and, in ``arrowlog/distributed.py``, a check
  of the plan's sources.

Every engine refuses queries over ``MAX_OPERATORS`` operators (``check_operators``).

Text: one tokenizer (``tokens``) knows string literals, quoted identifiers, comments and
``$n`` parameters. Parameters: DataFusion binds Arrow scalars itself once ``?`` is
numbered ``$1``, ``$2``, ... (``datafusion_params``); DuckDB binds ``?`` and ``$n``
itself; Daft has no binding, so values become SQL literals (``bind_literals``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from datafusion import SQLOptions

from arrowlog.errors import ArrowlogError, InvalidInput, ReadOnlyQuery, StreamNotFound

__all__ = [
    "MAX_OPERATORS",
    "READ_ONLY",
    "Params",
    "bind_literals",
    "check_duckdb_statement",
    "check_operators",
    "check_select_only",
    "datafusion_params",
    "engine_error",
    "lock_duckdb",
    "number_placeholders",
    "only_select",
    "significant",
    "sql_identifier",
    "sql_string",
    "tokens",
]

Params = Sequence[Any] | Mapping[str, Any] | None

# -- text ---------------------------------------------------------------------------------

# string literal | quoted identifier | line comment | block comment | $param | word | number | other
_TOKEN = re.compile(
    r"""(?P<str>'(?:[^']|'')*'?)
      | (?P<qid>"(?:[^"]|"")*"?)
      | (?P<comment>--[^\n]*|/\*.*?(?:\*/|$))
      | (?P<param>\$[A-Za-z0-9_]+)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
      | (?P<ws>\s+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_LITERAL_KINDS = ("str", "qid", "comment")


def tokens(query: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` for each token; kinds: str, qid, comment, param, word, num, ws, other.

    An unterminated literal or comment runs to the end of the text (the engine then
    reports the syntax error); joining the texts gives back ``query`` exactly.
    """
    for m in _TOKEN.finditer(query):
        kind = m.lastgroup
        assert kind is not None
        yield kind, m.group()


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


# -- parameters ---------------------------------------------------------------------------


def number_placeholders(query: str) -> str:
    """Rewrite positional ``?`` placeholders as ``$1``, ``$2``, ... for DataFusion.

    JDBC, ODBC and most ADBC users write ``?``; DataFusion binds only ``$n``. Question marks
    inside string literals, quoted identifiers and comments are left alone.
    """
    if "?" not in query:
        return query
    out: list[str] = []
    count = 0
    for kind, text in tokens(query):
        if kind == "other" and text == "?":
            count += 1
            out.append(f"${count}")
        else:
            out.append(text)
    return "".join(out)


def datafusion_params(query: str, params: Params) -> tuple[str, dict[str, Any]]:
    """The query and the keyword arguments that bind ``params`` in DataFusion.

    Values go to the engine as they are (Arrow scalars keep their types: int8, uint64,
    timestamp[ns], ...); a sequence binds ``?`` / ``$1`` by position, a mapping ``$name``.
    """
    if params is None:
        return query, {}
    if isinstance(params, Mapping):
        return query, {"param_values": dict(params)}
    values = {str(i + 1): v for i, v in enumerate(params)}
    return number_placeholders(query), {"param_values": values}


def bind_literals(
    query: str, params: Sequence[Any] | Mapping[str, Any], literal: Callable[[Any], str]
) -> str:
    """Replace ``?`` / ``$1`` (sequence) or ``$name`` (mapping) placeholders with literals.

    For engines without bound parameters (Daft): ``literal`` renders each value as SQL
    text in the engine's dialect; values are never spliced in as they come.
    """
    named = isinstance(params, Mapping)
    values: Any = dict(params) if named else list(params)
    out: list[str] = []
    position = 0
    for kind, text in tokens(query):
        if kind == "other" and text == "?" and not named:
            if position >= len(values):
                raise InvalidInput(f"the query has more placeholders than the {len(values)} params")
            out.append(literal(values[position]))
            position += 1
        elif kind == "param":
            key = text[1:]
            if named:
                if key not in values:
                    raise InvalidInput(f"no value for parameter {text}")
                out.append(literal(values[key]))
            else:
                if not key.isdigit() or not 1 <= int(key) <= len(values):
                    raise InvalidInput(f"no value for parameter {text} ({len(values)} params)")
                out.append(literal(values[int(key) - 1]))
        else:
            out.append(text)
    return "".join(out)


# -- limits every engine shares -----------------------------------------------------------

# DataFusion plans an expression recursively, one level per operator of a chain such as
# ``1 + 1 + ...`` or ``a = 1 OR a = 2 OR ...`` (the parser's nesting limit does not see
# chains): around 10,000 operators overflow the stack and kill the process (measured in
# worker threads with datafusion 55). Queries over this many are refused before planning.
MAX_OPERATORS = 2000
_OPERATORS = re.compile(r"(?i)\b(?:AND|OR|LIKE|ILIKE|IS|NOT)\b|\|\||<>|!=|<=|>=|[-+*/%=<>&|^]")


def check_operators(query: str) -> None:
    """Refuse a query with more than ``MAX_OPERATORS`` operators outside its literals."""
    if len(query) < MAX_OPERATORS:
        return  # too short to hold that many
    code = " ".join(text for kind, text in tokens(query) if kind not in _LITERAL_KINDS)
    count = len(_OPERATORS.findall(code))
    if count > MAX_OPERATORS:
        raise InvalidInput(
            f"the query has {count} operators; at most {MAX_OPERATORS} are accepted "
            "(longer chains overflow the planner): for long lists of values use IN (...)"
        )


# -- read-only ----------------------------------------------------------------------------

READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
_REFUSED = re.compile(r"(DDL|DML|Statement) not supported: (\w+)")
_NOT_FOUND = re.compile(r"table '(?:[^'.]+\.)*([^'.]+)' not found")


def only_select(got: str) -> ReadOnlyQuery:
    """The refusal of a statement that is not a query (``got``: what it is)."""
    return ReadOnlyQuery(
        f"only SELECT queries are allowed: arrowlog is read-only through SQL (got {got})"
    )


def engine_error(e: Exception) -> ArrowlogError:
    """Turn a DataFusion error into ours, keeping the engine's message."""
    message = str(e).strip()
    if m := _REFUSED.search(message):
        return ReadOnlyQuery(
            f"{m.group(2)} is not allowed: arrowlog is read-only through SQL "
            f"({m.group(1)} statements are refused)"
        )
    if m := _NOT_FOUND.search(message):
        return StreamNotFound(f"stream {m.group(1)!r} not found ({message})")
    return InvalidInput(message)


def check_duckdb_statement(con: Any, query: str) -> None:
    """One statement, a SELECT, as DuckDB's parser reads ``query``."""
    import duckdb

    try:
        statements = con.extract_statements(query)
    except duckdb.Error as e:
        raise InvalidInput(str(e)) from e
    if len(statements) != 1:
        raise InvalidInput("send exactly one SQL statement")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise only_select(statements[0].type.name)


def lock_duckdb(con: Any, allowed: Sequence[str]) -> None:
    """Only ``allowed`` files stay readable; every other file, URL and extension does not,
    and the query cannot change that."""
    con.execute(f"SET allowed_paths = [{', '.join(sql_string(f) for f in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


# Daft SQL functions that read or write files or URLs, or fetch models.
_FILE_FUNCTIONS = re.compile(
    r"read_\w+|write_\w+|url_download|url_upload|file|file_\w+|\w+_file|\w+_file_metadata"
    r"|tokenize_\w+|\w+config",
    re.IGNORECASE,
)
_CLAUSES = frozenset(
    [
        "select",
        "from",
        "join",
        "where",
        "group",
        "having",
        "order",
        "limit",
        "on",
        "using",
        "union",
        "except",
        "intersect",
        "window",
        "qualify",
        "offset",
    ]
)
# Statements other than queries (refused as writes or as outside the read-only surface).
_STATEMENTS = frozenset(
    [
        "insert",
        "update",
        "delete",
        "merge",
        "create",
        "drop",
        "alter",
        "truncate",
        "copy",
        "set",
        "use",
        "show",
        "describe",
        "explain",
        "attach",
        "detach",
        "grant",
        "revoke",
        "call",
        "load",
        "install",
        "pragma",
        "vacuum",
        "analyze",
    ]
)
# Words a "(" can follow without opening a function call's arguments.
_NOT_CALLS = frozenset(
    [
        "from",
        "join",
        "in",
        "exists",
        "as",
        "on",
        "where",
        "and",
        "or",
        "not",
        "select",
        "lateral",
        "using",
        "any",
        "all",
        "some",
        "union",
        "except",
        "intersect",
        "having",
        "by",
        "when",
        "then",
        "else",
        "over",
    ]
)


def significant(query: str) -> list[tuple[str, str]]:
    """The tokens of ``query`` other than whitespace and comments."""
    return [t for t in tokens(query) if t[0] not in ("ws", "comment")]


def check_select_only(query: str) -> None:
    """The lexical read-only check for an engine without statement options (Daft).

    One SELECT (or WITH) statement; no function that reads or writes files or URLs, and
    no string literal where a table goes (``FROM 'path'``).
    """
    toks = significant(query)
    while toks and toks[-1][1] == ";":
        toks.pop()
    if not toks:
        raise InvalidInput("the query is empty")
    if any(text == ";" for _, text in toks):
        raise InvalidInput("send exactly one SQL statement")
    lead = next((t for t in toks if t[1] != "("), ("other", ""))
    if lead[0] != "word" or lead[1].lower() not in ("select", "with"):
        if lead[1].lower() in _STATEMENTS:
            raise only_select(lead[1].upper())
        raise InvalidInput(f"expected a SELECT query, got {lead[1]!r} at its start")
    # Per parenthesis depth: the last clause keyword, and whether it is a function call's
    # argument list (where FROM is EXTRACT's or SUBSTRING's, not a table clause).
    frames: list[list[Any]] = [["", False]]
    for i, (kind, text) in enumerate(toks):
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        prev_kind, prev = toks[i - 1] if i else ("other", "")
        prev = prev.lower()
        if text == "(":
            frames.append(["", prev_kind == "word" and prev not in _NOT_CALLS])
        elif text == ")":
            if len(frames) > 1:
                frames.pop()
        elif kind == "word" and text.lower() in _CLAUSES:
            frames[-1][0] = text.lower()
        elif kind == "word" and nxt == "(" and _FILE_FUNCTIONS.fullmatch(text):
            raise ReadOnlyQuery(
                f"{text}() is not allowed: it reads or writes files or URLs, and arrowlog "
                "is read-only through SQL (query the stream tables)"
            )
        elif (
            kind == "str"
            and not frames[-1][1]
            and (prev in ("from", "join") or (prev == "," and frames[-1][0] == "from"))
        ):
            raise ReadOnlyQuery(
                f"reading {text} is not allowed: arrowlog is read-only through SQL and reads "
                "only its stream tables"
            )
