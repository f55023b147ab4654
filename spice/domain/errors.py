"""Typed domain errors. Each names the field or id at fault; the web layer maps them to HTTP."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class DomainError(Exception):
    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class ValidationFailed(DomainError):
    code = "invalid"
    http_status = 422

    def __init__(self, errors: list[FieldError] | FieldError) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__("; ".join(str(e) for e in self.errors), field=self.errors[0].field)

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return body


class AlreadyExists(DomainError):
    code = "already_exists"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class SequenceMismatch(DomainError):
    code = "sequence_mismatch"
    http_status = 409


class ReferencedByOthers(DomainError):
    code = "referenced"
    http_status = 409


@dataclass
class ErrorCollector:
    """Collects every problem of one input, so a client fixes them in one round trip."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
