"""Search over the read model: instances by text, class and property values; classes."""
from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from spice.domain import ids
from spice.domain.errors import ValidationFailed
from spice.domain.json_values import check_json_value, parse_json
from spice.domain.structured import parse_structured
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, json_body, query_number
from spice.web.reads import require_db

RESERVED = {"q", "class_id", "limit", "cursor"}


def property_filters(request: Request, reserved: set[str] = RESERVED) -> dict[str, Any]:
    """Every other query parameter is a property filter; values are JSON where they parse
    (`age=3`, `active=true`), text otherwise (`name=Ann`)."""
    filters: dict[str, Any] = {}
    for name, raw in request.query.items():
        if name in reserved:
            continue
        check_json_value(name, "filter name")
        try:
            value = parse_json(raw, name)
        except ValidationFailed as error:
            if not error.errors[0].message.startswith("malformed JSON"):
                raise
            value = check_json_value(raw, name)
        if isinstance(value, dict | list):
            raise HttpError(400, f"filter '{name[:100]}' must be a string, number, true, false "
                            "or null", field=name[:100])
        filters[name] = value
    return filters


class SearchView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        class_id = request.query.get("class_id")
        if class_id is not None:
            ids.check_class_id(class_id)
        limit = int(query_number(request, "limit", 20, 1, 200))
        try:
            result = await self.runtime.search.search(
                db, request.query.get("q", ""), class_id=class_id,
                filters=property_filters(request), limit=limit, cursor=request.query.get("cursor"))
        except ValueError as error:
            raise HttpError(400, str(error), field="cursor") from None
        return self.json({"db": db, **result})


class ClassSearchView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        ids.check_database_name(db)
        limit = int(query_number(request, "limit", 50, 1, 200))
        result = await self.runtime.search.search_classes(db, request.query.get("q", ""), limit)
        return self.json({"db": db, **result})


class StructuredQueryView(ApiView):
    """POST /api/v1/query/{db}: class, where, sort, fields, limit, cursor
    (spice.domain.structured), answered by the read model."""

    access = {"post": Access.READ}

    async def post(self, request: Request, db: str) -> Response:
        await require_db(self, db)
        query = parse_structured(await json_body(request), await self.runtime.graph.schema(db))
        try:
            result = await self.runtime.search.structured(db, query)
        except ValueError as error:
            raise HttpError(422, str(error), field="cursor") from None
        return self.json({"db": db, "class_id": query.classes[0], **result})
