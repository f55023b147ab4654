"""Validate values against property definitions (types, constraints, nesting)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spice.domain.errors import ErrorCollector
from spice.domain.patterns import pattern_matches
from spice.domain.types import ARRAY, SCALAR_VALIDATORS

if TYPE_CHECKING:
    from spice.domain.ontology import Property


def validate_value(prop: Property, value: Any, path: str, errors: ErrorCollector) -> Any:
    array = ARRAY.match(prop.type)
    if array:
        if not isinstance(value, list):
            errors.add(path, f"must be an array of {array.group(1)}")
            return value
        _check_items(prop, value, path, errors)
        return [_validate_one(prop, array.group(1), item, f"{path}[{i}]", errors)
                for i, item in enumerate(value)]
    return _validate_one(prop, prop.type, value, path, errors)


def _validate_one(prop: Property, type_name: str, value: Any, path: str,
                  errors: ErrorCollector) -> Any:
    if type_name == "object":
        return validate_object(prop.properties or [], value, path, errors)
    before = len(errors.errors)
    stored = SCALAR_VALIDATORS[type_name](value, path, errors)
    if len(errors.errors) == before:
        _check_constraints(prop, value, stored, path, errors)
    return stored


def validate_object(properties: list[Property], value: Any, path: str,
                    errors: ErrorCollector) -> Any:
    if not isinstance(value, dict):
        errors.add(path, "must be an object")
        return value
    known = {p.name: p for p in properties}
    stored: dict[str, Any] = {}
    for key in value:
        if key not in known:
            errors.add(f"{path}.{key}" if path else key, "unknown property")
    for prop in properties:
        field = f"{path}.{prop.name}" if path else prop.name
        if value.get(prop.name) is None:
            if prop.default is not None:
                stored[prop.name] = prop.default
            elif prop.required:
                errors.add(field, "is required")
            continue
        stored[prop.name] = validate_value(prop, value[prop.name], field, errors)
    return stored


def _check_items(prop: Property, items: list[Any], path: str, errors: ErrorCollector) -> None:
    c = prop.constraints
    if c.min_items is not None and len(items) < c.min_items:
        errors.add(path, f"must have at least {c.min_items} items")
    if c.max_items is not None and len(items) > c.max_items:
        errors.add(path, f"must have at most {c.max_items} items")


def _check_constraints(prop: Property, value: Any, stored: Any, path: str,
                       errors: ErrorCollector) -> None:
    c = prop.constraints
    if c.enum is not None and value not in c.enum:
        errors.add(path, f"must be one of {c.enum}")
    if isinstance(value, str):
        if c.min_length is not None and len(value) < c.min_length:
            errors.add(path, f"must be at least {c.min_length} characters")
        if c.max_length is not None and len(value) > c.max_length:
            errors.add(path, f"must be at most {c.max_length} characters")
        if c.pattern is not None and not pattern_matches(c.pattern, value):
            errors.add(path, f"must match pattern {c.pattern}")
    number = _as_number(value if prop.type.endswith("integer") else stored)
    if number is not None:
        if c.minimum is not None and number < Decimal(str(c.minimum)):
            errors.add(path, f"must be at least {c.minimum}")
        if c.maximum is not None and number > Decimal(str(c.maximum)):
            errors.add(path, f"must be at most {c.maximum}")


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return None
    return None
