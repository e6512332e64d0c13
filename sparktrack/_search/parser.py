"""Tokenizer and recursive-descent parser for search filters and ``order_by`` items.

Grammar (keywords are case-insensitive; precedence NOT > AND > OR)::

    filter     := or_expr END
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" or_expr ")" | comparison
    comparison := operand ( COMPARATOR value
                          | ("LIKE" | "ILIKE") value
                          | "IS" ["NOT"] "NULL"
                          | ["NOT"] "IN" "(" string ("," string)* ")" )
    operand    := ("MIN" | "MAX" | "LATEST") "(" identifier ")" | identifier
    identifier := [prefix "."] key        prefix: metrics, params, tags, attributes and aliases
    order_item := operand ["ASC" | "DESC"] END

A key is a run of word characters and dots (``metrics.loss.val``) or one quoted part:
backticks, double or single quotes (``metrics.`my metric` ``, ``tags."mlflow.runName"``),
inside which a doubled quote character stands for one (``tags.'it''s'`` is the key it's).
String literals take single or double quotes; inside them a doubled quote or a backslash
escapes the quote, ``\\\\`` is one backslash, and any other backslash is kept as written so
that LIKE patterns can escape their wildcards (``'a\\_b'`` matches the literal "a_b").

``entity="experiment"`` applies the same grammar to experiments: the only prefixes are
``attribute.`` (``attributes.``, ``attr.``) and ``tags.`` (``tag.``), the attributes are
``name``, ``experiment_id``, ``creation_time`` and ``last_update_time``, there are no
functions, and an identifier may be quoted whole (``"name" = 'x'``), as MLflow allows there.

Both grammars hold filters to the bounds of :mod:`sparktrack._search.limits` (length, clauses,
nesting, LIKE patterns, valid Unicode), so that every engine answers the filters they accept;
error messages quote at most 200 characters of the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparktrack import _tags
from sparktrack.errors import InvalidFilterError
from sparktrack._search.limits import (
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_LIKE_PATTERN_LENGTH,
    MAX_LIKE_WILDCARDS,
    shorten,
)
from sparktrack._search.nodes import (
    EXPERIMENT_NUMERIC_ATTRIBUTES,
    EXPERIMENT_STRING_ATTRIBUTES,
    MODEL_NUMERIC_ATTRIBUTES,
    MODEL_STRING_ATTRIBUTES,
    VERSION_NUMERIC_ATTRIBUTES,
    VERSION_STRING_ATTRIBUTES,
    NUMERIC_ATTRIBUTES,
    STRING_ATTRIBUTES,
    And,
    Comparison,
    Entity,
    Identifier,
    Node,
    Not,
    Or,
    OrderKey,
    valid_comparators,
)
from sparktrack._search.tokens import _Failure, _part, _Token, _tokenize

__all__ = ["check_like_pattern", "parse_filter", "parse_order_by"]

_PREFIXES = {
    alias: kind
    for kind, aliases in {
        "metric": ("metric", "metrics"),
        "param": ("param", "params", "parameter", "parameters"),
        "tag": ("tag", "tags"),
        "attribute": ("attribute", "attributes", "attr", "run"),
    }.items()
    for alias in aliases
}
# MLflow's spellings of attributes (SearchUtils.translate_key_alias).
_ATTRIBUTE_ALIASES = {"created": "start_time", "Created": "start_time"} | dict.fromkeys(
    ("run name", "Run name", "Run Name"), "run_name"
)
# The run's name is also its `mlflow.runName` tag; both spellings read the run_name column.
_RUN_NAME_TAG = _tags.RUN_NAME
_FUNCTIONS = {"MIN": "min", "MAX": "max", "LATEST": "latest"}
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "ASC", "DESC"})
_EXAMPLE = "a clause such as metrics.acc > 0.9, params.model = 'lr' or status = 'FINISHED'"


@dataclass(frozen=True)
class _Vocabulary:
    """What one entity's filters may name: prefixes, attributes and how errors explain them."""

    entity: str
    prefixes: dict[str, str]
    prefix_help: str
    attribute_aliases: dict[str, str]
    numeric: frozenset[str]
    strings: frozenset[str]
    example: str
    other_keys_hint: str  # how to name a metric/param/tag instead of an unknown attribute


_RUNS = _Vocabulary(
    entity="run",
    prefixes=_PREFIXES,
    prefix_help="valid prefixes are metrics (metric), params (param, parameter, parameters), "
    "tags (tag) and attributes (attribute, attr, run)",
    attribute_aliases=_ATTRIBUTE_ALIASES,
    numeric=NUMERIC_ATTRIBUTES,
    strings=STRING_ATTRIBUTES,
    example=_EXAMPLE,
    other_keys_hint="for a metric, param or tag write metrics.{key}, params.{key} or tags.{key}",
)
# MLflow's experiment grammar names attributes `attribute.` and tags `tag.`/`tags.`;
# `attributes.` and `attr.` are accepted as well, as they are for runs.
_EXPERIMENTS = _Vocabulary(
    entity="experiment",
    prefixes={alias: kind for alias, kind in _PREFIXES.items()
              if kind in ("attribute", "tag") and alias != "run"},
    prefix_help="an experiment filter compares attributes (attribute, attributes, attr) and "
    "tags (tag, tags); metrics and params belong to runs (search them with search_runs)",
    attribute_aliases={},
    numeric=EXPERIMENT_NUMERIC_ATTRIBUTES,
    strings=EXPERIMENT_STRING_ATTRIBUTES,
    example="a clause such as name = 'churn', tags.team = 'ml' or "
    "creation_time > 1700000000000",
    other_keys_hint="for a tag write tags.{key}",
)
_REGISTRY_PREFIXES = _EXPERIMENTS.prefixes
_MODELS = _Vocabulary(
    entity="registered_model",
    prefixes=_REGISTRY_PREFIXES,
    prefix_help="a registered model filter compares name, the timestamps and tags (tag, tags)",
    attribute_aliases={"timestamp": "last_updated_timestamp"},  # MLflow's order_by name
    numeric=MODEL_NUMERIC_ATTRIBUTES,
    strings=MODEL_STRING_ATTRIBUTES,
    example="a clause such as name = 'churn', name LIKE 'churn%' or tags.team = 'ml'",
    other_keys_hint="for a tag write tags.{key}",
)
_VERSIONS = _Vocabulary(
    entity="model_version",
    prefixes=_REGISTRY_PREFIXES,
    prefix_help="a model version filter compares attributes and tags (tag, tags)",
    attribute_aliases={"version": "version_number", "stage": "current_stage",
                       "aliases": "alias", "source": "source_path"},
    numeric=VERSION_NUMERIC_ATTRIBUTES,
    strings=VERSION_STRING_ATTRIBUTES,
    example="a clause such as name = 'churn', version_number > 2, alias = 'champion' or "
    "current_stage = 'Production'",
    other_keys_hint="for a tag write tags.{key}",
)
_VOCABULARIES = {"run": _RUNS, "experiment": _EXPERIMENTS, "registered_model": _MODELS,
                 "model_version": _VERSIONS}


def _vocabulary(entity: str) -> _Vocabulary:
    try:
        return _VOCABULARIES[entity]
    except (KeyError, TypeError):
        raise ValueError(
            f"entity must be 'run' or 'experiment' (or the registry's 'registered_model' or "
            f"'model_version'), got {entity!r}"
        ) from None


def _resolve(tok: _Token, vocab: _Vocabulary = _RUNS) -> Identifier:
    """Turn a name token into an Identifier, applying MLflow's prefix and key aliases."""
    parts = tok.value
    if len(parts) == 1:
        kind, key = "attribute", parts[0][0]
    else:
        prefix, quote = parts[0]
        rest = parts[1:]
        if quote not in ("", "`"):
            raise _Failure("only backticks may quote a prefix", tok.start, tok.end)
        if len(rest) > 1 and any(q for _, q in rest):
            raise _Failure(
                "quote the whole key, e.g. tags.`mlflow.runName`", tok.start, tok.end
            )
        key = ".".join(t for t, _ in rest)
        kind = vocab.prefixes.get(prefix.lower())
        if kind is None:
            dataset = prefix.lower() in ("dataset", "datasets") and vocab is _RUNS
            hint = " (dataset search is not supported)" if dataset else ""
            raise _Failure(
                f"unknown prefix '{_part(prefix)}'{hint}; {vocab.prefix_help}",
                tok.start,
                tok.end,
            )
    if not key:
        raise _Failure("empty key", tok.start, tok.end)
    if kind != "attribute":
        return Identifier(kind, key)
    key = vocab.attribute_aliases.get(key, key)
    if key not in vocab.numeric and key not in vocab.strings:
        valid = ", ".join(sorted(vocab.numeric | vocab.strings))
        hint = "; " + vocab.other_keys_hint.format(key=_part(key)) if len(parts) == 1 else ""
        if vocab is _EXPERIMENTS and key == "lifecycle_stage":
            hint = "; choose active or deleted experiments with view_type instead"
        raise _Failure(
            f"unknown attribute '{_part(key)}'; valid attributes are {valid}{hint}",
            tok.start,
            tok.end,
        )
    if vocab is _VERSIONS and key == "alias":
        return Identifier("alias", "alias")
    return Identifier("attribute", key)


def _canonical(ident: Identifier, vocab: _Vocabulary = _RUNS) -> Identifier:
    if vocab is _RUNS and ident.kind == "tag" and ident.key == _RUN_NAME_TAG:
        return Identifier("attribute", "run_name")
    return ident


class _Parser:
    def __init__(self, text: str, vocab: _Vocabulary = _RUNS) -> None:
        self.text = text
        self.vocab = vocab
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.clauses = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    @staticmethod
    def keyword(tok: _Token) -> str | None:
        if tok.kind == "name" and len(tok.value) == 1 and not tok.value[0][1]:
            word = tok.value[0][0].upper()
            if word in _KEYWORDS:
                return word
        return None

    def at(self, *words: str) -> bool:
        return self.keyword(self.peek()) in words

    @staticmethod
    def describe(tok: _Token) -> str:
        if tok.kind == "end":
            return "the end of the filter"
        text = _part(tok.text)
        return f"the string {text}" if tok.kind == "string" else f"'{text}'"

    # -- filter grammar ------------------------------------------------------------------
    def parse_filter(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == ")":
                raise _Failure("')' without a matching '('", tok.start, tok.end)
            raise _Failure(
                f"unexpected {self.describe(tok)}; join clauses with AND or OR",
                tok.start,
                len(self.text),
            )
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.at("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.at("AND"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        tok = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Failure(
                f"filter nests deeper than {MAX_DEPTH} levels of parentheses and NOT; "
                "flatten it (a AND (b AND c) is a AND b AND c)",
                tok.start,
                tok.end,
            )
        try:
            if self.at("NOT"):
                self.advance()
                return Not(self.not_expr())
            if tok.kind == "(":
                self.advance()
                node = self.or_expr()
                close = self.advance()
                if close.kind != ")":
                    raise _Failure(
                        f"expected ')' to close the '(' at position {tok.start}, "
                        f"got {self.describe(close)}",
                        tok.start,
                        close.end,
                    )
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def operand(self) -> Identifier:
        tok = self.advance()
        vocab = self.vocab
        if tok.kind == "string" and vocab is _EXPERIMENTS:
            # MLflow's experiment grammar strips quotes from an identifier: "name" = 'x'.
            tok = _Token("name", tok.text, tok.start, tok.end, ((tok.value, tok.text[0]),))
        if tok.kind != "name" or self.keyword(tok):
            raise _Failure(
                f"expected {vocab.example}, got {self.describe(tok)}", tok.start, tok.end
            )
        if self.peek().kind == "(" and len(tok.value) == 1 and not tok.value[0][1]:
            if vocab is _EXPERIMENTS:
                raise _Failure(
                    f"'{_part(tok.text)}(' is not valid in an experiment filter: functions "
                    "such as MAX() apply to run metrics; compare name, experiment_id, "
                    "creation_time, last_update_time or tags.<key>",
                    tok.start,
                    self.peek().end,
                )
            if vocab is not _RUNS:
                raise _Failure(
                    f"'{_part(tok.text)}(' is not valid in a {vocab.entity.replace('_', ' ')} "
                    "filter: functions such as MAX() apply to run metrics; compare "
                    f"{', '.join(sorted(vocab.numeric | vocab.strings))} or tags.<key>",
                    tok.start,
                    self.peek().end,
                )
            name = tok.value[0][0].upper()
            if name not in _FUNCTIONS:
                raise _Failure(
                    f"unknown function '{_part(tok.text)}'; valid functions are MIN, MAX and "
                    "LATEST of a metric, e.g. MAX(metrics.acc)",
                    tok.start,
                    self.peek().end,
                )
            self.advance()
            inner = self.advance()
            if inner.kind != "name" or self.keyword(inner):
                raise _Failure(
                    f"{name}() takes a metric, e.g. {name}(metrics.acc)", tok.start, inner.end
                )
            ident = _resolve(inner)
            close = self.advance()
            if close.kind != ")":
                raise _Failure(
                    f"expected ')' after {name}({_part(inner.text)}", tok.start, close.end
                )
            if ident.kind != "metric":
                raise _Failure(
                    f"{name}() applies to metrics only, e.g. {name}(metrics.acc)",
                    tok.start,
                    close.end,
                )
            return Identifier("metric", ident.key, _FUNCTIONS[name])
        return _resolve(tok, vocab)

    def comparison(self) -> Comparison:
        first = self.i
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            tok = self.peek()
            raise _Failure(
                f"a filter may hold at most {MAX_CLAUSES:,} clauses; split the search into "
                "several searches (or list the values of one attribute with IN (...))",
                tok.start,
                self._clause_end(first),
            )
        try:
            return self._comparison()
        except _Failure as failure:
            # Quote the whole clause, not just the tokens read before the fault.
            end = self._clause_end(first)
            if failure.start >= self.tokens[first].start and failure.end < end:
                failure.start, failure.end = self.tokens[first].start, end
            raise

    def _clause_end(self, first: int) -> int:
        depth, end = 0, self.tokens[first].end
        for tok in self.tokens[first:]:
            depth += {"(": 1, ")": -1}.get(tok.kind, 0)
            joins = depth == 0 and self.keyword(tok) in ("AND", "OR")
            if tok.kind == "end" or depth < 0 or joins:
                break
            end = tok.end
        return end

    def _comparison(self) -> Comparison:
        start = self.peek().start
        ident = self.operand()
        op, end = self.comparator(ident, start)
        valid = valid_comparators(ident, self.vocab.entity)
        if op not in valid:
            what = self.type_name(ident)
            raise _Failure(
                f"{op} is not valid for {what}; valid comparators for {what} are "
                f"{', '.join(valid)}",
                start,
                end,
            )
        if op in ("IS NULL", "IS NOT NULL"):
            value = None
        elif op in ("IN", "NOT IN"):
            value, end = self.in_list(start)
        else:
            value, end = self.value(ident, op, start)
        return Comparison(_canonical(ident, self.vocab), op, value)

    def type_name(self, ident: Identifier) -> str:
        if self.vocab is _EXPERIMENTS and ident == Identifier("attribute", "experiment_id"):
            return "experiment_id"  # the only string attribute without LIKE
        return ident.type_name

    def comparator(self, ident: Identifier, start: int) -> tuple[str, int]:
        tok = self.advance()
        word = self.keyword(tok)
        if word == "IS":
            negate = self.at("NOT")
            if negate:
                self.advance()
            null = self.advance()
            if self.keyword(null) != "NULL":
                raise _Failure("expected IS NULL or IS NOT NULL", start, null.end)
            return ("IS NOT NULL" if negate else "IS NULL"), null.end
        if word == "NOT":
            nxt = self.advance()
            if self.keyword(nxt) != "IN":
                raise _Failure(
                    "NOT after an identifier must be followed by IN; to negate a clause, put "
                    f"NOT in front of it, e.g. NOT ({_name(ident)} LIKE 'a%')",
                    start,
                    nxt.end,
                )
            return "NOT IN", nxt.end
        if word in ("IN", "LIKE", "ILIKE"):
            return word, tok.end
        if tok.kind == "op" and tok.text in ("==", "<>"):
            fix = "=" if tok.text == "==" else "!="
            raise _Failure(f"use {fix} instead of {tok.text}", start, tok.end)
        if tok.kind == "op":
            return tok.text, tok.end
        valid = ", ".join(valid_comparators(ident, self.vocab.entity))
        raise _Failure(
            f"expected a comparator after {_name(ident)}, got {self.describe(tok)}; valid "
            f"comparators for {self.type_name(ident)} are {valid}",
            start,
            tok.end,
        )

    def value(self, ident: Identifier, op: str, start: int) -> tuple[object, int]:
        tok = self.advance()
        numeric = ident.kind == "metric" or (
            ident.kind == "attribute" and ident.key in self.vocab.numeric
        )
        if numeric and self.vocab is _EXPERIMENTS:
            # MLflow 3.17 refuses a fractional time for experiments ("creation_time > 1.5").
            if tok.kind != "number" or not re.fullmatch(r"[+-]?\d+", tok.text):
                raise _Failure(
                    f"{ident.key} compares with whole milliseconds since the epoch, got "
                    f"{self.describe(tok)}; write e.g. {ident.key} {op} 1700000000000",
                    start,
                    tok.end,
                )
            return _whole_number(tok.text), tok.end
        if numeric:
            if tok.kind != "number":
                raise _Failure(
                    f"{ident.type_name} compare with numbers"
                    + (" (milliseconds since the epoch)" if ident.kind == "attribute" else "")
                    + f", got {self.describe(tok)}; write e.g. {_name(ident)} {op} 0.5",
                    start,
                    tok.end,
                )
            if ident.kind == "attribute" and re.fullmatch(r"[+-]?\d+", tok.text):
                return _whole_number(tok.text), tok.end
            return float(tok.text), tok.end
        if tok.kind == "string":
            value = tok.value
        elif ident.kind in ("param", "tag") and tok.kind in ("number", "bare"):
            value = tok.text  # Databricks: params.alpha = 0.5 compares with the string '0.5'
        elif ident.kind in ("param", "tag") and tok.kind == "name" and not self.keyword(tok):
            if len(tok.value) != 1 or tok.value[0][1]:
                raise _Failure(
                    f"unquoted value {_part(tok.text)} is ambiguous; quote it: "
                    f"'{_part(tok.text)}'",
                    start,
                    tok.end,
                )
            value = tok.text
        else:
            hint = (
                " (NULL is a keyword: use IS NULL to find runs without the key, or 'null' "
                "for the string)"
                if self.keyword(tok) == "NULL"
                else ""
            )
            raise _Failure(
                f"expected a quoted string after {op}, got {self.describe(tok)}{hint}; "
                f"write e.g. {_name(ident)} {op} 'value'",
                start,
                tok.end,
            )
        if op in ("LIKE", "ILIKE"):
            _check_like_pattern(value, start, tok.end)
        return value, tok.end

    def in_list(self, start: int) -> tuple[tuple[str, ...], int]:
        tok = self.advance()
        if tok.kind != "(":
            raise _Failure(
                f"IN takes a parenthesised list of quoted strings, e.g. IN ('a', 'b'); "
                f"got {self.describe(tok)}",
                start,
                tok.end,
            )
        values = []
        while True:
            item = self.advance()
            if item.kind == ")" and not values:
                raise _Failure("IN list is empty; give at least one quoted string", start, item.end)
            if item.kind != "string":
                raise _Failure(
                    f"IN list items must be quoted strings, got {self.describe(item)}",
                    start,
                    item.end,
                )
            values.append(item.value)
            sep = self.advance()
            if sep.kind == ")":
                return tuple(values), sep.end
            if sep.kind != ",":
                raise _Failure(
                    f"expected ',' or ')' in IN list, got {self.describe(sep)}", start, sep.end
                )

    # -- order_by grammar ----------------------------------------------------------------
    def parse_order_item(self) -> OrderKey:
        start = self.peek()
        ident = _canonical(self.operand(), self.vocab)
        if self.vocab is _EXPERIMENTS and ident.kind != "attribute":
            raise _Failure(
                f"experiments cannot be ordered by {_name(ident)}; order by name, experiment_id, "
                "creation_time or last_update_time",
                start.start,
                self.tokens[self.i - 1].end,
            )
        if self.vocab is not _RUNS and ident.kind != "attribute":
            orderable = sorted((self.vocab.numeric | self.vocab.strings) - {"alias"})
            raise _Failure(
                f"{self.vocab.entity.replace('_', ' ')}s cannot be ordered by {_name(ident)}; "
                f"order by {', '.join(orderable)}",
                start.start,
                self.tokens[self.i - 1].end,
            )
        ascending = True
        if self.at("ASC", "DESC"):
            ascending = self.advance().text.upper() == "ASC"
        tok = self.peek()
        if tok.kind != "end":
            raise _Failure(
                f"expected ASC, DESC or the end after the identifier, got {self.describe(tok)}",
                tok.start,
                len(self.text),
            )
        return OrderKey(ident, ascending)


def _whole_number(text: str) -> int | float:
    """A whole-number literal as an int if an int64 column can take it, else as a float
    (which compares correctly with int64 columns; int() of thousands of digits would fail)."""
    if len(text.lstrip("+-")) <= 19:
        whole = int(text)
        if -(2**63) <= whole < 2**63:
            return whole
    return float(text)


def _like_pattern_problem(pattern: str, *, escapes: bool = True) -> str | None:
    """Why ``pattern`` cannot be a LIKE pattern, or None if it can (``escapes=False``: a
    backslash is an ordinary character)."""
    if len(pattern) > MAX_LIKE_PATTERN_LENGTH:
        return (
            f"a LIKE pattern may be at most {MAX_LIKE_PATTERN_LENGTH:,} characters long, this "
            f"one is {len(pattern):,}; match a shorter part of the value"
        )
    wildcards, i = 0, 0
    while i < len(pattern):
        if pattern[i] == "\\" and escapes:
            # Spark and Arrow both read a backslash in a LIKE pattern as an escape; Spark
            # rejects an escape of anything but %, _ or \, so reject it here for both engines.
            if i + 1 >= len(pattern) or pattern[i + 1] not in "%_\\":
                return (
                    "in a LIKE pattern a backslash must be followed by %, _ or another "
                    "backslash (\\% and \\_ match literal % and _)"
                )
            i += 1
        elif pattern[i] in "%_":
            wildcards += 1
        i += 1
    if wildcards > MAX_LIKE_WILDCARDS:
        # Every wildcard is a node of the regex Arrow and Java compile (recursively in Java).
        return (
            f"a LIKE pattern may hold at most {MAX_LIKE_WILDCARDS} wildcards (% and _), this "
            f"one holds {wildcards:,}; use fewer (a run of % matches what one % matches)"
        )
    return None


def _check_like_pattern(pattern: str, start: int, end: int) -> None:
    problem = _like_pattern_problem(pattern)
    if problem is not None:
        raise _Failure(problem, start, end)


def check_like_pattern(pattern: str, *, what: str, escapes: bool = True) -> None:
    """Raise InvalidFilterError unless ``pattern`` is a LIKE pattern every engine can run.

    For patterns that do not come from a filter string (``search_experiments(name_like=)``);
    ``what`` names the argument in the message; ``escapes=False`` checks a pattern whose
    backslashes are ordinary characters (they will be doubled before it is matched).
    """
    failure = _text_failure(pattern, what)
    problem = failure.reason if failure else _like_pattern_problem(pattern, escapes=escapes)
    if problem is not None:
        raise InvalidFilterError(f'Invalid {what} "{shorten(pattern)}": {problem}')


def _name(ident: Identifier) -> str:
    """How a message names an identifier (its key may be long)."""
    return _part(str(ident))


def _text_failure(text: str, what: str) -> _Failure | None:
    """What keeps ``text`` from being parsed at all: its length or a lone surrogate."""
    if len(text) > MAX_FILTER_LENGTH:
        return _Failure(
            f"a {what} may be at most {MAX_FILTER_LENGTH:,} characters long, this one is "
            f"{len(text):,}; split the search into several searches",
            0,
            len(text),
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone UTF-16 surrogate (e.g. "\ud800"): no engine can carry it (Arrow and Py4J
        # send UTF-8), and no value can hold it, since stored strings are valid UTF-8.
        char = text[error.start].encode("utf-8", "backslashreplace").decode("ascii")
        return _Failure(
            f"{char} is a lone surrogate, not a character: a {what} must be valid Unicode "
            "(a surrogate pair in a str literal, or text decoded with errors='surrogateescape', "
            "leaves one)",
            error.start,
            error.start + 1,
        )
    return None


def _error(kind: str, text: str, failure: _Failure, *, where: str = "") -> InvalidFilterError:
    clause = shorten(text[failure.start : failure.end].strip() or text.strip())
    return InvalidFilterError(
        f'Invalid {kind} clause "{clause}"{where} at position {failure.start}: {failure.reason}'
    )


def parse_filter(filter_string: str | None, *, entity: Entity = "run") -> Node | None:
    """Parse a search filter into an expression tree.

    For runs, accepts everything MLflow's ``search_runs`` accepts, plus Databricks' ``MIN()``,
    ``MAX()``, ``LATEST()`` and unquoted param/tag values, plus ``OR``, ``NOT`` and
    parentheses. For experiments, accepts MLflow's ``search_experiments`` grammar (attributes
    ``name``, ``experiment_id``, ``creation_time``, ``last_update_time`` and ``tags.<key>``)
    with the same ``OR``, ``NOT`` and parentheses. Filters are held to the bounds of
    :mod:`sparktrack._search.limits` (length, clauses, nesting, LIKE patterns).

    Args:
        filter_string: The filter, e.g. ``"metrics.acc > 0.9 AND params.model = 'lr'"``.
        entity: ``"run"`` (default) or ``"experiment"``: which grammar applies.

    Returns:
        The tree, or None when the filter is None, empty or blank (every run matches).

    Raises:
        InvalidFilterError: The filter is not valid or exceeds a bound; the message quotes
            (at most 200 characters of) the clause at fault, its position and what would be
            valid there.
    """
    vocab = _vocabulary(entity)
    if filter_string is None:
        return None
    if not isinstance(filter_string, str):
        raise InvalidFilterError(f"filter must be a string, got {type(filter_string).__name__}")
    failure = _text_failure(filter_string, "filter")
    if failure is not None:
        raise _error("filter", filter_string, failure)
    if not filter_string.strip():
        return None
    try:
        return _Parser(filter_string, vocab).parse_filter()
    except _Failure as failure:
        raise _error("filter", filter_string, failure) from None


def parse_order_by(order_by: list[str] | None, *, entity: Entity = "run") -> list[OrderKey]:
    """Parse ``order_by`` items (``"<identifier> [ASC|DESC]"``) into sort keys.

    For runs, identifiers are attributes, ``metrics.x`` (latest value), ``MIN(metrics.x)``,
    ``MAX(metrics.x)``, ``params.x`` and ``tags.x``, with the same aliases and quoting as
    filters; for experiments (``entity="experiment"``) they are ``name``, ``experiment_id``,
    ``creation_time`` and ``last_update_time``. None or an empty list gives no keys (the
    default order applies).

    Raises:
        InvalidFilterError: An item cannot be parsed or names a field twice; the message
            quotes the item (at most 200 characters of it) and its index.
    """
    vocab = _vocabulary(entity)
    if order_by is None:
        return []
    if isinstance(order_by, str):
        quoted = shorten(order_by)
        raise InvalidFilterError(
            f'order_by must be a list of strings, got the string "{quoted}"; write ["{quoted}"]'
        )
    keys: list[OrderKey] = []
    seen: dict[Identifier, int] = {}
    for index, item in enumerate(order_by):
        where = f" (order_by[{index}])"
        if not isinstance(item, str) or not item.strip():
            raise InvalidFilterError(
                f"Invalid order_by clause {shorten(repr(item))}{where}: expected a string such "
                "as 'metrics.acc DESC'"
            )
        try:
            failure = _text_failure(item, "order_by item")
            if failure is not None:
                raise failure
            key = _Parser(item, vocab).parse_order_item()
        except _Failure as failure:
            raise _error("order_by", item, failure, where=where) from None
        if key.identifier in seen:
            raise InvalidFilterError(
                f'Invalid order_by clause "{shorten(item)}"{where}: {_name(key.identifier)} is '
                f"already ordered on by order_by[{seen[key.identifier]}]; name each field once"
            )
        seen[key.identifier] = index
        keys.append(key)
    return keys
