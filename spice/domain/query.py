"""Structured filters over instance data: parsed and type-checked against the schema.

A filter is a condition `{"property": p, "op": o, "value": v}` or a combination
`{"and": [...]}` / `{"or": [...]}` / `{"not": {...}}`. The property's type decides the
operators it takes and how its values compare:

- text (string, email, phone, url, enum): eq ne in nin contains starts_with, all
  case-insensitive;
- numbers (integer, decimal) and dates (date, datetime: instants, naive ones as UTC):
  eq ne gt gte lt lte in nin;
- money: eq ne gt gte lt lte against {"amount", "currency"}, true only in the same
  currency; `price.amount` and `price.currency` address the parts;
- boolean: eq ne; arrays: contains (an element equal to the value);
- relationships: eq ne in nin on the target instance id (the many side: contains);
- every property: exists (true or false).

`ne` and `nin` are the negation of `eq` and `in`: a document without the property
matches them. Values are checked with the property's own validator, so a date compares
as the date it names and a bad value is a 422 naming the field.

`matches` evaluates a filter on one document here; the stores compile the same filter to
their own query language (spice/stores/query_postgres.py, query_elasticsearch.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from spice.domain.errors import ErrorCollector, FieldError, ValidationFailed
from spice.domain.ontology import Constraints, Property, Relationship
from spice.domain.schema import Schema
from spice.domain.types import ARRAY, canonical_type
from spice.domain.values import validate_value

TEXT = frozenset({"string", "email", "phone", "url", "enum"})
ORDERED = frozenset({"integer", "decimal", "date", "datetime", "money"})
OPERATORS = {
    "text": ("eq", "ne", "in", "nin", "contains", "starts_with", "exists"),
    "integer": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"),
    "decimal": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"),
    "datetime": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"),
    "money": ("eq", "ne", "gt", "gte", "lt", "lte", "exists"),
    "boolean": ("eq", "ne", "exists"),
    "array": ("contains", "exists"),
    "link": ("eq", "ne", "in", "nin", "exists"),
    "links": ("contains", "exists"),
    "other": ("exists",),
}
ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops})
MAX_CONDITIONS = 50
MAX_IN_VALUES = 1000


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]  # ("price",) or ("price", "amount")
    op: str
    kind: str  # a key of OPERATORS
    value: Any  # normalised: lower-case text, Decimal, datetime, ...; a list for in/nin


@dataclass(frozen=True)
class Combination:
    op: str  # and | or | not
    parts: tuple[Where, ...]


Where = Condition | Combination


def parse_where(raw: Any, schema: Schema, classes: list[str], field: str) -> Where | None:
    """The filter, checked against the properties and relationships the classes share
    (a property one class lacks simply does not match there); None for no filter."""
    if raw is None:
        return None
    members = filterable_members(schema, classes)
    counter = [0]
    return _parse(raw, members, field, counter)


def filterable_members(schema: Schema, classes: list[str]) -> dict[str, Property | Relationship]:
    members: dict[str, Property | Relationship] = {}
    for class_id in classes:
        for prop in schema.effective_properties(class_id):
            members.setdefault(prop.name, prop)
        for rel in schema.effective_relationships(class_id):
            members.setdefault(rel.predicate, rel)
    return members


def _parse(raw: Any, members: dict[str, Property | Relationship], field: str,
           counter: list[int]) -> Where:
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise ValidationFailed(FieldError(field, f"at most {MAX_CONDITIONS} conditions per filter"))
    if not isinstance(raw, dict):
        raise ValidationFailed(FieldError(field, "must be an object: a condition or and/or/not"))
    for op in ("and", "or"):
        if op in raw:
            if set(raw) != {op} or not isinstance(raw[op], list) or not raw[op]:
                raise ValidationFailed(FieldError(f"{field}.{op}", "must be the only key, "
                                                  "with a non-empty list of filters"))
            return Combination(op, tuple(_parse(part, members, f"{field}.{op}[{i}]", counter)
                                         for i, part in enumerate(raw[op])))
    if "not" in raw:
        if set(raw) != {"not"}:
            raise ValidationFailed(FieldError(f"{field}.not", "must be the only key"))
        return Combination("not", (_parse(raw["not"], members, f"{field}.not", counter),))
    return _condition(raw, members, field)


def _condition(raw: dict[str, Any], members: dict[str, Property | Relationship],
               field: str) -> Condition:
    unknown = sorted(set(raw) - {"property", "op", "value"})
    if unknown:
        raise ValidationFailed(FieldError(f"{field}.{unknown[0]}", "unknown field; a condition has "
                                          "property, op and value (or use and/or/not)"))
    name = raw.get("property")
    if not isinstance(name, str) or not name:
        raise ValidationFailed(FieldError(f"{field}.property", "must be a property name"))
    head, _, part = name.partition(".")
    member = members.get(head)
    if member is None:
        known = ", ".join(sorted(members)[:20]) or "none"
        raise ValidationFailed(FieldError(f"{field}.property", f"unknown property '{name[:100]}' "
                                          f"(known: {known})"))
    kind, prop = member_kind(member, part, f"{field}.property")
    op = raw.get("op", "eq")
    if op not in OPERATORS[kind]:
        allowed = ", ".join(OPERATORS[kind])
        raise ValidationFailed(FieldError(f"{field}.op", f"'{str(op)[:20]}' does not apply to "
                                          f"'{name}' ({kind}); use one of: {allowed}"))
    value = _value(raw.get("value"), op, kind, prop, member, f"{field}.value")
    return Condition((head, part) if part else (head,), op, kind, value)


def member_kind(member: Property | Relationship, part: str, field: str) -> tuple[str, Property | None]:
    if isinstance(member, Relationship):
        if part:
            raise ValidationFailed(FieldError(field, f"'{member.predicate}' is a relationship: "
                                              "it has no parts"))
        return ("links" if member.many else "link"), None
    type_name = canonical_type(member.type)
    if part:
        if type_name != "money" or part not in ("amount", "currency"):
            raise ValidationFailed(FieldError(field, "only money properties have parts "
                                              "(.amount, .currency)"))
        if part == "amount":
            return "decimal", _plain(member.name, "decimal")
        return "text", _plain(member.name, "string")
    if ARRAY.match(type_name):
        return "array", member
    if type_name in TEXT:
        return "text", member
    if type_name in ("integer", "decimal", "date", "datetime", "money", "boolean"):
        return type_name, member
    return "other", member


def _value(raw: Any, op: str, kind: str, prop: Property | None, member: Any, field: str) -> Any:
    if op == "exists":
        if not isinstance(raw, bool):
            raise ValidationFailed(FieldError(field, "must be true or false for 'exists'"))
        return raw
    if op in ("in", "nin"):
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_IN_VALUES:
            raise ValidationFailed(FieldError(field, f"must be a list of 1 to {MAX_IN_VALUES} values"))
        return [_scalar(v, kind, prop, f"{field}[{i}]") for i, v in enumerate(raw)]
    if kind == "array":
        element = ARRAY.match(canonical_type(member.type))
        assert element is not None
        return _checked(_plain(member.name, element.group(1), member.properties), raw, field)
    if op in ("contains", "starts_with") and kind == "text":
        if not isinstance(raw, str) or not raw:
            raise ValidationFailed(FieldError(field, "must be a non-empty string"))
        return raw.lower()
    return _scalar(raw, kind, prop, field)


def _scalar(raw: Any, kind: str, prop: Property | None, field: str) -> Any:
    if kind in ("link", "links"):
        if not isinstance(raw, str) or not raw:
            raise ValidationFailed(FieldError(field, "must be an instance id"))
        return raw
    assert prop is not None
    stored = _checked(prop, raw, field)
    if kind == "text":
        return str(stored).lower()
    if kind in ("integer", "decimal"):
        return Decimal(str(stored))
    if kind == "money":
        return (Decimal(str(stored["amount"])), stored["currency"])
    if kind == "datetime":
        return instant(stored)
    return stored  # date (ISO text orders as the date), boolean


def _plain(name: str, type_name: str, properties: list[Property] | None = None) -> Property:
    """A property of the type without constraints (unvalidated: an enum's values and a
    maximum bound what may be stored, not what a filter may ask)."""
    return Property.model_construct(name=name, type=type_name, constraints=Constraints(),
                                    properties=properties, required=False, default=None)


def _checked(prop: Property, raw: Any, field: str) -> Any:
    plain = _plain(prop.name, prop.type, prop.properties)
    errors = ErrorCollector()
    stored = validate_value(plain, raw, field, errors)
    errors.raise_if_any()
    return stored


def instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- evaluation on one document (the reference the store compilers follow) --------

def matches(where: Where | None, data: dict[str, Any]) -> bool:
    if where is None:
        return True
    if isinstance(where, Combination):
        if where.op == "and":
            return all(matches(p, data) for p in where.parts)
        if where.op == "or":
            return any(matches(p, data) for p in where.parts)
        return not matches(where.parts[0], data)
    value: Any = data.get(where.path[0])
    if len(where.path) == 2:
        value = value.get(where.path[1]) if isinstance(value, dict) else None
    return _test(where, value)


def _test(c: Condition, value: Any) -> bool:
    if c.op == "exists":
        return (value is not None) == c.value
    if c.op in ("ne", "nin"):
        return not _test(Condition(c.path, "eq" if c.op == "ne" else "in", c.kind, c.value), value)
    if value is None:
        return False
    if c.kind in ("array", "links"):
        return isinstance(value, list) and c.value in value
    actual = _comparable(c.kind, value)
    if actual is None:
        return False
    if c.op == "eq":
        return bool(actual == c.value)
    if c.op == "in":
        return actual in c.value
    if c.op == "contains":
        return c.value in actual
    if c.op == "starts_with":
        return bool(actual.startswith(c.value))
    if c.kind == "money":
        if actual[1] != c.value[1]:
            return False
        actual, expected = actual[0], c.value[0]
    else:
        expected = c.value
    return bool({"gt": actual > expected, "gte": actual >= expected,
                 "lt": actual < expected, "lte": actual <= expected}[c.op])


def _comparable(kind: str, value: Any) -> Any:
    """The stored value in the form the condition's value was normalised to, or None when
    the document holds something else (written under an older definition)."""
    try:
        if kind == "text":
            return value.lower() if isinstance(value, str) else None
        if kind in ("integer", "decimal"):
            return None if isinstance(value, bool) else Decimal(str(value))
        if kind == "money":
            return (Decimal(str(value["amount"])), value["currency"])
        if kind == "datetime":
            return instant(value)
        if kind == "date":
            return date.fromisoformat(value).isoformat()
        if kind == "boolean":
            return value if isinstance(value, bool) else None
        return value
    except (InvalidOperation, ValueError, TypeError, KeyError, AttributeError):
        return None
