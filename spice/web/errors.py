"""The error every view may raise: a status, a message and the field at fault."""
from __future__ import annotations

from typing import Any


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"message": self.message, **self.extra}
        if self.field:
            detail["field"] = self.field
        return {"detail": detail}
