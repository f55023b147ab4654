"""The topic contract's JSON Schemas (spice/domain/contract.py, docs/topics.md): public
like /openapi.json, since they describe formats, not data."""
from __future__ import annotations

import functools
from typing import Any

from faust.web import Request, Response

from spice.domain.contract import schemas
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError


@functools.lru_cache(maxsize=1)
def published() -> dict[str, dict[str, Any]]:
    return schemas()


class SchemaListView(ApiView):
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        return self.json({"schemas": {name: {"title": schema.get("title"),
                                             "description": schema.get("description"),
                                             "url": f"/api/v1/schemas/{name}"}
                                      for name, schema in published().items()}})


class SchemaView(ApiView):
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request, name: str) -> Response:
        schema = published().get(name)
        if schema is None:
            raise HttpError(404, f"no schema '{name[:100]}'; GET /api/v1/schemas lists them",
                            field="name")
        return self.json({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema})
