"""Filters and sort keys (spice.domain.query, spice.domain.structured) on Elasticsearch.

Every instance document carries typed copies of its top-level values (`typed_fields`),
each in a subtree of one type, so instances of different classes never fight over a
field's mapping:

- `typed.s.<p>`: strings, lower-cased (keyword): text compares case-insensitively;
- `typed.n.<p>`: numbers, and strings that are decimals (the domain stores decimals
  and money amounts as text) as doubles;
- `typed.d.<p>`: strings that are ISO dates or date-times (date: millisecond instants);
- `typed.b.<p>`: booleans;
- `present`: the names of the values that are not null, for `exists`.

A money value's parts go in as `<p>:amount` and `<p>:currency` (a colon: property names
cannot hold one). Arrays and relationship values compare exactly on the flattened copy
(`body.<p>`). Limits of this mapping: numbers compare as doubles (about 15 significant
digits), instants to the millisecond, and strings longer than 2,048 characters are not
in `typed.s` (they match no text condition here).
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from spice.domain.query import Combination, Condition, Where
from spice.domain.structured import SortKey

TEXT_LIMIT = 2048
DYNAMIC_TEMPLATES = [
    {"typed_text": {"path_match": "typed.s.*", "mapping": {"type": "keyword", "ignore_above": TEXT_LIMIT}}},
    {"typed_numbers": {"path_match": "typed.n.*", "mapping": {"type": "double"}}},
    {"typed_instants": {"path_match": "typed.d.*", "mapping": {"type": "date"}}},
    {"typed_booleans": {"path_match": "typed.b.*", "mapping": {"type": "boolean"}}},
]
TYPED_MAPPINGS = {"typed": {"type": "object", "dynamic": True}, "present": {"type": "keyword"}}
RANGE = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}


def typed_fields(body: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    typed: dict[str, dict[str, Any]] = {"s": {}, "n": {}, "d": {}, "b": {}}
    present: list[str] = []
    for key, value in body.items():
        if value is None:
            continue
        present.append(key)
        if isinstance(value, dict):
            for part, inner in value.items():
                if inner is not None and not isinstance(inner, dict | list):
                    present.append(f"{key}.{part}")
                    _leaf(typed, f"{key}:{part}", inner)
        else:
            _leaf(typed, key, value)
    return {kind: values for kind, values in typed.items() if values}, present


def _leaf(typed: dict[str, dict[str, Any]], name: str, value: Any) -> None:
    if isinstance(value, bool):
        typed["b"][name] = value
    elif isinstance(value, int | float):
        if math.isfinite(float(value)):
            typed["n"][name] = float(value)
    elif isinstance(value, str):
        if len(value) <= TEXT_LIMIT:
            typed["s"][name] = value.lower()
        number = _decimal(value)
        if number is not None:
            typed["n"][name] = number
        elif _instant(value):
            typed["d"][name] = value


def _decimal(text: str) -> float | None:
    if not text or len(text) > 64 or not (text[0].isdigit() or text[0] == "-"):
        return None
    try:
        number = float(Decimal(text))
    except ArithmeticError:
        return None
    return number if math.isfinite(number) else None


def _instant(text: str) -> bool:
    if len(text) < 10 or text[4:5] != "-":
        return False
    try:
        if len(text) == 10:
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _field(kind: str, path: tuple[str, ...]) -> str:
    name = ":".join(path)
    if kind == "text":
        return f"typed.s.{name}"
    if kind in ("integer", "decimal"):
        return f"typed.n.{name}"
    if kind in ("date", "datetime"):
        return f"typed.d.{name}"
    if kind == "boolean":
        return f"typed.b.{name}"
    return "body." + ".".join(path)  # link, links, array: exact, on the flattened copy


def _es_value(kind: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if kind in ("link", "links", "array"):
        return value if isinstance(value, str) else json.dumps(value)
    return value


def compile_where(where: Where) -> dict[str, Any]:
    if isinstance(where, Combination):
        parts = [compile_where(p) for p in where.parts]
        if where.op == "and":
            return {"bool": {"filter": parts}}
        if where.op == "or":
            return {"bool": {"should": parts, "minimum_should_match": 1}}
        return {"bool": {"must_not": parts}}
    return _condition(where)


def _condition(c: Condition) -> dict[str, Any]:
    if c.op == "exists":
        clause = {"term": {"present": ".".join(c.path)}}
        return clause if c.value else {"bool": {"must_not": [clause]}}
    if c.op in ("ne", "nin"):
        return {"bool": {"must_not": [_condition(
            Condition(c.path, "eq" if c.op == "ne" else "in", c.kind, c.value))]}}
    if c.kind == "money":
        amount, currency = c.value
        head = c.path[0]
        return {"bool": {"filter": [
            {"term": {f"typed.s.{head}:currency": currency.lower()}},
            _compare(f"typed.n.{head}:amount", c.op, float(amount))]}}
    field = _field(c.kind, c.path)
    if c.op == "in":
        return {"terms": {field: [_es_value(c.kind, v) for v in c.value]}}
    if c.op == "contains" and c.kind == "text":
        escaped = c.value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        return {"wildcard": {field: {"value": f"*{escaped}*"}}}
    if c.op == "starts_with":
        return {"prefix": {field: c.value}}
    if c.op == "contains":  # an element of an array or of a relationship's list
        return {"term": {field: _es_value(c.kind, c.value)}}
    return _compare(field, c.op, _es_value(c.kind, c.value))


def _compare(field: str, op: str, value: Any) -> dict[str, Any]:
    if op == "eq":
        return {"term": {field: value}}
    return {"range": {field: {RANGE[op]: value}}}


UNMAPPED = {"text": "keyword", "integer": "double", "decimal": "double", "date": "date",
            "datetime": "date", "boolean": "boolean"}


def sort_clause(keys: tuple[SortKey, ...]) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for key in keys:
        order = "desc" if key.descending else "asc"
        if key.kind == "money":
            head = key.path[0]
            fields = [(f"typed.s.{head}:currency", "keyword"), (f"typed.n.{head}:amount", "double")]
        else:
            fields = [(_field(key.kind, key.path), UNMAPPED[key.kind])]
        clauses += [{field: {"order": order, "missing": "_last", "unmapped_type": unmapped}}
                    for field, unmapped in fields]
    return [*clauses, {"doc_id": "asc"}]
