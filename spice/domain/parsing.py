"""Turn pydantic's errors into ours, so every message names the field at fault."""
from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from spice.domain.errors import FieldError, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def field_path(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for part in loc:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        else:
            parts.append(str(part))
    return ".".join(parts) or "body"


def parse(model: type[M], data: Any, prefix: str = "") -> M:
    if not isinstance(data, dict):
        raise ValidationFailed(FieldError(prefix or "body", "must be a JSON object"))
    try:
        return model.model_validate(data)
    except PydanticError as error:
        problems = []
        for item in error.errors():
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(FieldError(field_path(prefix, tuple(item["loc"])), message))
        raise ValidationFailed(problems) from None
