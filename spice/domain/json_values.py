"""What a JSON value may be, once, for every way in (HTTP bodies, command topics).

Whatever passes here can be encoded by the envelope (pydantic/orjson), decoded back
(pydantic's parser refuses nesting near 200), stored by PostgreSQL jsonb (no NUL in
text) and indexed by Elasticsearch (64-bit integers): accepted implies storable,
readable and applied. The walk is iterative, so a deep value costs no recursion.
"""
from __future__ import annotations

import json
import math
from typing import Any

from spice.domain.errors import FieldError, ValidationFailed

MAX_DEPTH = 32  # objects and arrays inside one another, the body itself being depth 1
MAX_STRING_LENGTH = 100_000  # characters of one string (a key: MAX_KEY_LENGTH)
MAX_KEY_LENGTH = 256
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what jsonb-to-bigint, orjson and Elasticsearch hold
INT_PROBLEM = "integers must lie between -2^63 and 2^63-1 (send larger numbers as strings)"
MAX_PATH_LENGTH = 200


def string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates such as \\ud800)"
    return None


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return INT_PROBLEM
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite (no NaN or Infinity)"
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            return f"strings must be at most {MAX_STRING_LENGTH} characters"
        return string_problem(value)
    return f"is not a JSON value ({type(value).__name__})"


def _join(path: str, key: str | int) -> str:
    if len(path) > MAX_PATH_LENGTH:
        return path  # deep enough to name the place; a longer path names nothing more
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def json_value_problem(value: Any, path: str = "") -> FieldError | None:
    """The first reason `value` (already parsed) is not an acceptable JSON value."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return FieldError(where or "body", f"nests deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return FieldError(where or "body", "object keys must be strings")
                    problem = string_problem(key) or (
                        f"keys must be at most {MAX_KEY_LENGTH} characters"
                        if len(key) > MAX_KEY_LENGTH else None)
                    if problem:
                        return FieldError(_join(where, repr(key)[1:-1][:40]), f"key {problem}")
                    stack.append((child, _join(where, key), depth + 1))
            else:
                stack.extend((child, _join(where, i), depth + 1) for i, child in enumerate(item))
            continue
        problem = _scalar_problem(item)
        if problem:
            return FieldError(where or "body", problem)
    return None


def check_json_value(value: Any, path: str = "") -> Any:
    problem = json_value_problem(value, path)
    if problem is not None:
        raise ValidationFailed(problem)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; numbers must be finite")


def parse_json(raw: bytes | str, field: str = "body") -> Any:
    """Parse and check; every refusal is a ValidationFailed naming `field` or a path in it.

    Integer literals are bounded before conversion (Python's is quadratic in digits);
    nesting past the interpreter's recursion limit is refused by the parser itself."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_int=_bounded_int)
    except RecursionError:
        raise ValidationFailed(FieldError(field, f"nests deeper than {MAX_DEPTH} levels")) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ValidationFailed(FieldError(field, f"malformed JSON: {error}")) from None
    return check_json_value(value, "" if field == "body" else field)


def _bounded_int(digits: str) -> int:
    # Longer literals than this are refused unconverted (naming the body, not a path:
    # the parser does not say where); shorter ones out of range get their path.
    if len(digits.lstrip("-")) > 100:
        raise ValidationFailed(FieldError("body", INT_PROBLEM))
    return int(digits)
