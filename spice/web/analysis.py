"""Schema analysis routes: relationship paths, reachable classes, cycles, the network, and
dry-run validation of class writes (spice.domain.analysis, spice.domain.dry_run).

All are reads of the database's current schema (viewer access); the dry run stores
nothing, so it is a read too.
"""
from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from spice.domain import analysis, ids
from spice.domain.dry_run import dry_run
from spice.domain.errors import FieldError, ValidationFailed
from spice.domain.schema import Schema
from spice.web.auth import Access
from spice.web.http import ApiView, HttpError, json_body, query_number
from spice.web.reads import require_db


async def _schema(view: ApiView, db: str) -> Schema:
    await require_db(view, db)
    schema: Schema = await view.runtime.graph.schema(db)
    return schema


def _class(schema: Schema, request: Request, name: str, value: str | None = None) -> str:
    class_id = value if value is not None else request.query.get(name)
    if class_id is None:
        raise HttpError(400, f"'{name}' is required: a class id", field=name)
    ids.check_class_id(class_id)
    if class_id not in schema.classes:
        raise HttpError(404, f"class '{class_id}' does not exist", field=name)
    return class_id


def _steps(path: list[analysis.Edge]) -> dict[str, Any]:
    return {"length": len(path), "classes": [path[0].source, *(e.target for e in path)],
            "relationships": [e.to_dict() for e in path]}


class PathsView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        schema = await _schema(self, db)
        source = _class(schema, request, "from")
        target = _class(schema, request, "to")
        mode = request.query.get("mode", "shortest")
        if mode not in ("shortest", "all"):
            raise HttpError(400, "'mode' must be 'shortest' or 'all'", field="mode")
        depth = int(query_number(request, "max_depth", 5, 1, analysis.MAX_DEPTH))
        limit = int(query_number(request, "limit", 100, 1, analysis.MAX_PATHS))
        paths, truncated = analysis.find_paths(schema, source, target, mode=mode,  # type: ignore[arg-type]
                                               max_depth=depth, limit=limit)
        return self.json({"db": db, "from": source, "to": target, "mode": mode, "max_depth": depth,
                          "count": len(paths), "truncated": truncated,
                          "paths": [_steps(p) for p in paths]})


class ReachableView(ApiView):
    async def get(self, request: Request, db: str, class_id: str) -> Response:
        schema = await _schema(self, db)
        source = _class(schema, request, "class_id", class_id)
        depth = int(query_number(request, "max_depth", analysis.MAX_DEPTH, 1, analysis.MAX_DEPTH))
        found = analysis.reachable(schema, source, depth)
        ordered = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
        return self.json({"db": db, "from": source, "max_depth": depth, "count": len(found),
                          "reachable": [{"class_id": c, "depth": d, "path": _steps(p)}
                                        for c, (d, p) in ordered]})


class CyclesView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        schema = await _schema(self, db)
        length = int(query_number(request, "max_length", analysis.MAX_DEPTH, 1, analysis.MAX_DEPTH))
        limit = int(query_number(request, "limit", 100, 1, analysis.MAX_CYCLES))
        found, truncated = analysis.cycles(schema, length, limit)
        counts = {s: sum(c.severity == s for c in found) for s in ("error", "warning", "info")}
        return self.json({"db": db, "count": len(found), "truncated": truncated,
                          "by_severity": counts, "cycles": [c.to_dict() for c in found]})


class NetworkView(ApiView):
    async def get(self, request: Request, db: str) -> Response:
        schema = await _schema(self, db)
        hubs = int(query_number(request, "hubs", 10, 1, 100))
        return self.json({"db": db, **analysis.network(schema, hubs)})


class DryRunView(ApiView):
    """Body: {"class": {...}} or {"classes": [{...}, ...]}; the answer is 200 whether the
    classes are valid or not (`valid`, and each class's `errors`)."""

    access = {"post": Access.READ}

    async def post(self, request: Request, db: str) -> Response:
        schema = await _schema(self, db)
        body = await json_body(request, allowed={"class", "classes"})
        if ("class" in body) == ("classes" in body):
            raise ValidationFailed(FieldError("classes", "send either 'class' (one definition) "
                                              "or 'classes' (a list of definitions)"))
        bodies = body["classes"] if "classes" in body else [body["class"]]
        if not isinstance(bodies, list) or not bodies:
            raise ValidationFailed(FieldError("classes", "must be a non-empty list of class definitions"))
        result = dry_run(db, schema, bodies)
        prefix = "classes" if "classes" in body else None
        for item in result["results"]:
            where = f"{prefix}[{item['index']}]" if prefix else "class"
            for error in item["errors"]:
                error["field"] = _field(where, error["field"])
        return self.json(result)


def _field(where: str, field: str) -> str:
    """`class.properties[0].type` or `parents[1]` as the request names it."""
    if field == "class":
        field = ""
    elif field.startswith("class."):
        field = field[len("class."):]
    return f"{where}.{field}" if field and not field.startswith("[") else where + field
