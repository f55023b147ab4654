"""The id rules of databases, classes, instances and property names."""
from __future__ import annotations

import re

from spice.domain.errors import FieldError, ValidationFailed

# Checked with fullmatch: with match, `$` also matches before a trailing newline, and
# "shop\n" was a valid database name (hypothesis found "0\n" as an instance id).
DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
CLASS_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_:-]*$")
INSTANCE_ID = re.compile(r"^[A-Za-z0-9_:-]+$")
PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_DATABASES = frozenset({"_system", "_meta"})


def database_name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be a string"
    if name in RESERVED_DATABASES:
        return f"'{name}' is reserved"
    if not 3 <= len(name) <= 50:
        return "must be 3 to 50 characters"
    if not DATABASE_NAME.fullmatch(name):
        return "must start with a lowercase letter and use only a-z, 0-9, '_' and '-'"
    if name[-1] in "_-":
        return "must not end with '_' or '-'"
    return None


def class_id_problem(class_id: object) -> str | None:
    if not isinstance(class_id, str):
        return "must be a string"
    if not 1 <= len(class_id) <= 100:
        return "must be 1 to 100 characters"
    if not CLASS_ID.fullmatch(class_id):
        return "must start with a letter and use only letters, digits, '_', ':' and '-'"
    return None


def instance_id_problem(instance_id: object) -> str | None:
    if not isinstance(instance_id, str):
        return "must be a string"
    if not 1 <= len(instance_id) <= 255:
        return "must be 1 to 255 characters"
    if not INSTANCE_ID.fullmatch(instance_id):
        return "must use only letters, digits, '_', ':' and '-'"
    return None


def property_name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be a string"
    if not 1 <= len(name) <= 100 or not PROPERTY_NAME.fullmatch(name):
        return "must be 1 to 100 characters: a letter or '_', then letters, digits or '_'"
    return None


def require(problem: str | None, field: str) -> None:
    if problem:
        raise ValidationFailed(FieldError(field, problem))


def check_database_name(name: object, field: str = "db") -> str:
    require(database_name_problem(name), field)
    return name  # type: ignore[return-value]


def check_class_id(class_id: object, field: str = "class_id") -> str:
    require(class_id_problem(class_id), field)
    return class_id  # type: ignore[return-value]


def check_instance_id(instance_id: object, field: str = "instance_id") -> str:
    require(instance_id_problem(instance_id), field)
    return instance_id  # type: ignore[return-value]
