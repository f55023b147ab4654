"""Filters (spice.domain.query) as PostgreSQL conditions over a jsonb column.

Every value is a bound parameter; property names are parameters too (`data -> $n`).
Each condition is two-valued (`coalesce(..., false)`), so `not` and the negated
operators agree with `spice.domain.query.matches`: a document holding something of
another type (written under an older definition) compares as absent, never as an error.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from spice.domain.query import Combination, Condition, Where

NUMBER_TEXT = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
OFFSET_TEXT = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
COMPARE = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class Params:
    """Bound parameters of one statement, numbered after those already used."""

    def __init__(self, start: int) -> None:
        self.values: list[Any] = []
        self.start = start

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${self.start + len(self.values)}{cast}"


def compile_where(where: Where | None, column: str, params: Params) -> str:
    if where is None:
        return "true"
    if isinstance(where, Combination):
        parts = [compile_where(p, column, params) for p in where.parts]
        if where.op == "not":
            return f"(NOT {parts[0]})"
        return "(" + f" {where.op.upper()} ".join(parts) + ")"
    return f"coalesce({_condition(where, column, params)}, false)"


def value_at(column: str, path: tuple[str, ...], params: Params) -> str:
    """The jsonb value at a property path (names bound as parameters)."""
    value = f"({column} -> {params(path[0], '::text')})"
    if len(path) == 2:
        value = f"({value} -> {params(path[1], '::text')})"
    return value


def typed(kind: str, value: str) -> list[str]:
    """The SQL expressions a value of the kind compares and sorts by (NULL where the
    document holds something else): money is (currency, amount)."""
    text = f"({value} #>> '{{}}')"
    is_string = f"jsonb_typeof({value}) = 'string'"
    if kind == "text":
        return [f'(CASE WHEN {is_string} THEN lower({text}) END) COLLATE "C"']
    if kind in ("integer", "decimal"):
        return [_number(value)]
    if kind == "date":
        return [f'(CASE WHEN {is_string} AND {text} ~ \'{DATE_TEXT}\' THEN {text} END) COLLATE "C"']
    if kind == "datetime":
        return [f"(CASE WHEN {is_string} AND {text} ~ '{DATETIME_TEXT}' THEN "
                f"(CASE WHEN {text} ~ '{OFFSET_TEXT}' THEN {text}::timestamptz "
                f"ELSE {text}::timestamp AT TIME ZONE 'UTC' END) END)"]
    if kind == "money":
        currency = f"({value} -> 'currency')"
        return [f'(CASE WHEN jsonb_typeof({currency}) = \'string\' THEN {currency} #>> \'{{}}\' END) '
                'COLLATE "C"', _number(f"({value} -> 'amount')")]
    if kind == "boolean":
        return [f"(CASE WHEN jsonb_typeof({value}) = 'boolean' THEN {text}::boolean END)"]
    raise ValueError(f"no typed expression for {kind}")


def order_by(keys: list[tuple[tuple[str, ...], str, bool]], column: str, params: Params) -> list[str]:
    """ORDER BY terms for (path, kind, descending) keys; absent values last either way."""
    terms = []
    for path, kind, descending in keys:
        direction = "DESC" if descending else "ASC"
        terms += [f"{expression} {direction} NULLS LAST"
                  for expression in typed(kind, value_at(column, path, params))]
    return terms


def _condition(c: Condition, column: str, params: Params) -> str:
    if c.op in ("ne", "nin"):
        positive = Condition(c.path, "eq" if c.op == "ne" else "in", c.kind, c.value)
        return f"NOT coalesce({_condition(positive, column, params)}, false)"
    value = value_at(column, c.path, params)
    if c.op == "exists":
        present = f"(jsonb_typeof({value}) IS NOT NULL AND jsonb_typeof({value}) <> 'null')"
        return present if c.value else f"NOT {present}"
    if c.kind in ("array", "links"):
        return (f"(jsonb_typeof({value}) = 'array' AND "
                f"{value} @> jsonb_build_array({params(json.dumps(c.value), '::jsonb')}))")
    if c.kind == "money":
        currency, amount = typed("money", value)
        return (f"({currency} = {params(c.value[1], '::text')} AND "
                f"{amount} {COMPARE[c.op]} {params(c.value[0], '::numeric')})")
    if c.kind == "boolean":
        return f"({value} = {params(json.dumps(c.value), '::jsonb')})"
    if c.kind == "link":  # an instance id: exact
        return _compare(f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END)",
                        c, params, "::text")
    [expression] = typed(c.kind, value)
    if c.op == "contains":
        return f"(strpos({expression}, {params(c.value, '::text')}) > 0)"
    if c.op == "starts_with":
        bound = params(c.value, "::text")
        return f"(left({expression}, length({bound})) = {bound})"
    cast = {"text": "::text", "integer": "::numeric", "decimal": "::numeric", "date": "::text",
            "datetime": "::timestamptz"}[c.kind]
    return _compare(expression, c, params, cast)


def _number(value: str) -> str:
    text = f"({value} #>> '{{}}')"
    return (f"(CASE WHEN jsonb_typeof({value}) = 'number' OR (jsonb_typeof({value}) = 'string' "
            f"AND {text} ~ '{NUMBER_TEXT}') THEN {text}::numeric END)")


def _compare(expression: str, c: Condition, params: Params, cast: str) -> str:
    if c.op == "in":
        return f"({expression} = ANY({params([_bound(v) for v in c.value], cast + '[]')}))"
    return f"({expression} {COMPARE[c.op]} {params(_bound(c.value), cast)})"


def _bound(value: Any) -> Any:
    return value if isinstance(value, str | Decimal | datetime) else str(value)
