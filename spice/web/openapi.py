"""The OpenAPI 3.1 document: every route of spice/web/routes.py with its parameters
(types and bounds), request body and answers (each status a route really gives, with
its schema, from the pydantic models in spice/web/bodies.py and spice/domain), its
security, a stable operation id and a tag."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from spice import __version__
from spice.domain import ids
from spice.domain.ontology import Database, OntologyClass
from spice.web import bodies as B

JSON = "application/json"


@dataclass(frozen=True)
class Op:
    id: str
    tag: str
    ok: int = 200
    answer: type[BaseModel] | None = None  # None: a JSON object described in the summary
    body: type[BaseModel] | dict[str, Any] | None = None
    query: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404, 429, 503)
    public: bool = False
    content: str = JSON


def _int(low: int, high: int, default: int | None = None, text: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return {"schema": schema, "description": text}


POINT = ("a version (sequence number; for a schema, a chain position) or an ISO 8601 time "
         "such as 2026-12-05T10:00:00Z")
PARAMS: dict[str, dict[str, Any]] = {
    "timeout": {"schema": {"type": "number", "minimum": 0.1, "maximum": 600, "default": 30},
                "description": "seconds to wait for the outcome, counted from the request's "
                               "arrival (408 after; if storing the command alone took longer, "
                               "as soon as it is stored)"},
    "poll_interval": {"schema": {"type": "number", "minimum": 0.05, "maximum": 60, "default": 0.5},
                      "description": "seconds between status reads when push is unavailable"},
    "wait": {"schema": {"type": "string", "enum": ["applied", "projected"], "default": "applied"},
             "description": "applied: in the graph; projected: also searchable"},
    "expected_seq": {"schema": {"type": "integer", "minimum": 0},
                     "description": "write only if the aggregate is at this sequence number"},
    "limit": _int(1, 1000, text="page size (each route states its own maximum)"),
    "after": {"schema": {"type": "string"}, "description": "the last id of the previous page"},
    "cursor": {"schema": {"type": "string"}, "description": "the cursor of the previous page"},
    "q": {"schema": {"type": "string", "maxLength": 1000}, "description": "text to search for"},
    "class_id": {"schema": {"type": "string", "pattern": ids.CLASS_ID.pattern},
                 "description": "only instances of this class"},
    "as_of": {"schema": {"type": "string"}, "description": f"the state then: {POINT}"},
    "from": {"schema": {"type": "string"}, "description": POINT},
    "to": {"schema": {"type": "string"}, "description": f"{POINT} (default: the latest)"},
    "order": {"schema": {"type": "string", "enum": ["desc", "asc"], "default": "desc"},
              "description": "newest or oldest first"},
    "kind": {"schema": {"type": "string", "enum": ["command", "event"]},
             "description": "only commands, or only events"},
    "actor": {"schema": {"type": "string", "maxLength": 600}, "description": "e.g. key:ci, jwt:ann"},
    "command_type": {"schema": {"type": "string"}, "description": "e.g. UPDATE_INSTANCE"},
    "aggregate": {"schema": {"type": "string", "maxLength": 600},
                  "description": "an aggregate id, e.g. shop:Person/p1"},
    "outcome": {"schema": {"type": "string", "enum": ["requested", "succeeded", "failed"]},
                "description": "requested (commands), succeeded or failed (events)"},
    "since": {"schema": {"type": "string", "format": "date-time"}, "description": "recorded at or after"},
    "until": {"schema": {"type": "string", "format": "date-time"}, "description": "recorded at or before"},
    "db": {"schema": {"type": "string", "pattern": ids.DATABASE_NAME.pattern},
           "description": "only this database"},
    "mode": {"schema": {"type": "string", "enum": ["shortest", "all"], "default": "shortest"},
             "description": "the shortest paths, or all simple paths"},
    "max_depth": _int(1, 10, text="longest path, in relationships"),
    "max_length": _int(1, 10, text="longest cycle, in relationships"),
    "hubs": _int(1, 100, 10, "how many of the most connected classes"),
    "lang": {"schema": {"type": "string"}, "description": "the language of labels (else Accept-Language)"},
    "class": {"schema": {"type": "string"}, "description": "a class by label or id"},
    "async": {"schema": {"type": "boolean"}, "description": "answer 202 at once instead of waiting"},
}
HEADERS: dict[str, dict[str, Any]] = {
    "Idempotency-Key": {"schema": {"type": "string", "maxLength": 200},
                        "description": "the same key again answers with the first command"},
    "If-Match": {"schema": {"type": "string"},
                 "description": "the ETag a read returned: write only over that version"},
    "Accept-Language": {"schema": {"type": "string"}, "description": "labels in this language"},
}
# Names in a path, as spice/domain/ids.py checks them; a name that breaks a rule the
# pattern cannot say (a reserved database, a trailing '-') is answered 422, so every
# operation with one of these in its path declares 422 (operation()).
PATH = {"db": {"pattern": ids.DATABASE_NAME.pattern, "minLength": 3, "maxLength": 50},
        "class_id": {"pattern": ids.CLASS_ID.pattern, "minLength": 1, "maxLength": 100},
        "instance_id": {"pattern": ids.INSTANCE_ID.pattern, "minLength": 1, "maxLength": 255}}
ERRORS = {400: "A parameter or the body is malformed (the field is named)",
          401: "No valid credentials", 403: "The credentials may not do this",
          404: "Not found (or a database the caller may not read)",
          405: "Method not allowed", 408: "No outcome within the timeout (follow the command id)",
          409: "Conflict: exists already, still referenced, or another sequence number",
          413: "Too large", 422: "Validation failed (every field named)",
          426: "A WebSocket: send an Upgrade request",
          429: "Rate limited (Retry-After)", 503: "A dependency is unavailable (Retry-After)"}
WRITE = (400, 401, 403, 409, 413, 422, 429, 503)
SYNC = (400, 401, 403, 404, 408, 409, 413, 422, 429, 503)
SYNC_Q = ("timeout", "poll_interval", "wait", "expected_seq")
WRITE_H = ("Idempotency-Key", "If-Match")
QUERY_BODY = {"type": "object", "description": "docs/queries.md"}


def async_write(op_id: str, tag: str, body: Any = None) -> Op:
    return Op(op_id, tag, 202, B.Accepted, body, ("expected_seq",), WRITE_H, WRITE)


def sync_write(op_id: str, tag: str, body: Any = None) -> Op:
    return Op(op_id, tag, 200, B.Completed, body, SYNC_Q, WRITE_H, SYNC)


def with_404(op: Op) -> Op:
    """An asynchronous write that checks existence before it stores the command (a
    revert to a version that does not exist)."""
    return dataclasses.replace(op, errors=tuple(sorted({*op.errors, 404})))


HISTORY_Q = ("limit", "order", "cursor", "kind")
AUDIT_Q = ("limit", "order", "cursor", "kind", "actor", "command_type", "aggregate", "outcome",
           "since", "until")
V = "/api/v1"
OPS: dict[tuple[str, str], Op] = {
    ("/livez", "get"): Op("getLiveness", "operations", public=True, errors=()),
    ("/readyz", "get"): Op("getReadiness", "operations", public=True, errors=(503,)),
    ("/health", "get"): Op("getHealth", "operations", public=True, errors=(503,)),
    (f"{V}/health", "get"): Op("getHealthV1", "operations", public=True, errors=(503,)),
    ("/openapi.json", "get"): Op("getOpenApi", "operations", public=True, errors=()),
    ("/metrics", "get"): Op("getMetrics", "operations", content="text/plain", errors=(401, 403)),
    (f"{V}/schemas", "get"): Op("listSchemas", "contract", public=True, errors=()),
    (f"{V}/schemas/{{name}}", "get"): Op("getSchema", "contract", public=True, errors=(404,)),
    ("/docs", "get"): Op("getApiConsole", "operations", public=True, content="text/html", errors=()),
    ("/docs/assets/{name}", "get"): Op("getApiConsoleAsset", "operations", public=True,
                                       content="application/octet-stream", errors=(404,)),
    ("/dashboard", "get"): Op("getDashboard", "operations", public=True, content="text/html", errors=()),
    (f"{V}/dashboard/data", "get"): Op("getDashboardData", "operations", errors=(401, 403, 503)),
    (f"{V}/dashboard/local", "get"): Op("getDashboardLocal", "operations", errors=(401, 403)),
    (f"{V}/status/commands", "get"): Op("getCommandCounts", "commands", errors=(401, 403, 503)),
    (f"{V}/database/create", "post"): async_write("createDatabase", "databases", Database),
    (f"{V}/database/list", "get"): Op("listDatabases", "databases", errors=(401, 429, 503)),
    (f"{V}/database/exists/{{db}}", "get"): Op("databaseExists", "databases"),
    (f"{V}/database/{{db}}", "delete"): async_write("deleteDatabase", "databases"),
    (f"{V}/ontology/{{db}}/async/create", "post"): async_write("createClass", "ontology", OntologyClass),
    (f"{V}/ontology/{{db}}/async/{{class_id}}", "put"): async_write("replaceClass", "ontology",
                                                                     OntologyClass),
    (f"{V}/ontology/{{db}}/async/{{class_id}}", "delete"): async_write("deleteClass", "ontology"),
    (f"{V}/ontology/{{db}}/sync/create", "post"): sync_write("createClassAndWait", "ontology", OntologyClass),
    (f"{V}/ontology/{{db}}/sync/{{class_id}}", "put"): sync_write("replaceClassAndWait", "ontology",
                                                                   OntologyClass),
    (f"{V}/ontology/{{db}}/sync/{{class_id}}", "delete"): sync_write("deleteClassAndWait", "ontology"),
    (f"{V}/ontology/{{db}}/async/{{class_id}}/revert", "post"): with_404(async_write(
        "revertClass", "history", B.Revert)),
    (f"{V}/ontology/{{db}}/sync/{{class_id}}/revert", "post"): sync_write("revertClassAndWait", "history",
                                                                          B.Revert),
    (f"{V}/ontology/{{db}}/create", "post"): Op("legacyCreateClass", "ontology", 201, None, OntologyClass,
                                                errors=SYNC),
    (f"{V}/ontology/{{db}}", "get"): Op("listClasses", "ontology", query=("as_of",)),
    (f"{V}/ontology/{{db}}/{{class_id}}", "get"): Op("getClass", "ontology", query=("as_of",)),
    (f"{V}/ontology/{{db}}/async/command/{{command_id}}/status", "get"): Op(
        "getClassCommandStatus", "commands", answer=B.CommandStatus),
    (f"{V}/ontology/{{db}}/sync/command/{{command_id}}/wait", "get"): Op(
        "waitForClassCommand", "commands", answer=B.Completed, query=("timeout", "poll_interval", "wait"),
        errors=SYNC),
    (f"{V}/instances/{{db}}/async/{{class_id}}/create", "post"): async_write(
        "createInstance", "instances", B.InstanceCreate),
    (f"{V}/instances/{{db}}/async/{{class_id}}/bulk-create", "post"): async_write(
        "bulkCreateInstances", "instances", B.BulkCreate),
    (f"{V}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/update", "post"): async_write(
        "updateInstance", "instances", B.InstanceUpdate),
    (f"{V}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/delete", "post"): async_write(
        "deleteInstance", "instances"),
    (f"{V}/instances/{{db}}/sync/{{class_id}}/create", "post"): sync_write(
        "createInstanceAndWait", "instances", B.InstanceCreate),
    (f"{V}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/revert", "post"): with_404(async_write(
        "revertInstance", "history", B.Revert)),
    (f"{V}/instances/{{db}}/sync/{{class_id}}/{{instance_id}}/revert", "post"): sync_write(
        "revertInstanceAndWait", "history", B.Revert),
    (f"{V}/instances/{{db}}/{{class_id}}", "get"): Op("listInstances", "instances", query=("limit", "after")),
    (f"{V}/instances/{{db}}/{{class_id}}/{{instance_id}}", "get"): Op("getInstance", "instances",
                                                                      query=("as_of",)),
    (f"{V}/history/{{db}}", "get"): Op("getDatabaseHistory", "history", answer=B.HistoryPage, query=AUDIT_Q),
    (f"{V}/history/{{db}}/schema/diff", "get"): Op("diffSchema", "history", answer=B.JsonPatch,
                                                   query=("from", "to")),
    (f"{V}/history/{{db}}/classes/{{class_id}}", "get"): Op("getClassHistory", "history",
                                                            answer=B.HistoryPage, query=HISTORY_Q),
    (f"{V}/history/{{db}}/classes/{{class_id}}/diff", "get"): Op("diffClass", "history", answer=B.JsonPatch,
                                                                 query=("from", "to")),
    (f"{V}/history/{{db}}/instances/{{class_id}}/{{instance_id}}", "get"): Op(
        "getInstanceHistory", "history", answer=B.HistoryPage, query=HISTORY_Q),
    (f"{V}/history/{{db}}/instances/{{class_id}}/{{instance_id}}/diff", "get"): Op(
        "diffInstance", "history", answer=B.JsonPatch, query=("from", "to")),
    (f"{V}/audit", "get"): Op("getAuditLogOfEveryDatabase", "audit", answer=B.HistoryPage,
                              query=(*AUDIT_Q, "db")),
    (f"{V}/audit/{{db}}", "get"): Op("getAuditLog", "audit", answer=B.HistoryPage, query=AUDIT_Q),
    (f"{V}/audit/{{db}}/chain", "get"): Op("getAuditChainHead", "audit"),
    (f"{V}/analysis/{{db}}/paths", "get"): Op("findClassPaths", "analysis",
                                              query=("from", "to", "mode", "max_depth", "limit")),
    (f"{V}/analysis/{{db}}/reachable/{{class_id}}", "get"): Op("findReachableClasses", "analysis",
                                                               query=("max_depth",)),
    (f"{V}/analysis/{{db}}/cycles", "get"): Op("findCycles", "analysis", query=("max_length", "limit")),
    (f"{V}/analysis/{{db}}/network", "get"): Op("describeNetwork", "analysis", query=("hubs",)),
    (f"{V}/analysis/{{db}}/dry-run", "post"): Op("dryRunClassWrites", "analysis", body=QUERY_BODY,
                                                 errors=(400, 401, 403, 404, 422, 429, 503)),
    (f"{V}/graph-query/{{db}}", "post"): Op("queryGraph", "queries", body=QUERY_BODY,
                                            errors=(400, 401, 403, 404, 422, 429, 503)),
    (f"{V}/query/{{db}}", "post"): Op("queryInstances", "queries", body=QUERY_BODY,
                                      errors=(400, 401, 403, 404, 422, 429, 503)),
    (f"{V}/search/{{db}}/classes", "get"): Op("searchClasses", "queries", query=("q", "limit")),
    (f"{V}/search/{{db}}", "get"): Op("searchInstances", "queries",
                                      query=("q", "class_id", "limit", "cursor")),
    (f"{V}/commands/{{command_id}}/status", "get"): Op("getCommandStatus", "commands",
                                                       answer=B.CommandStatus),
    (f"{V}/commands/{{command_id}}/wait", "get"): Op("waitForCommand", "commands", answer=B.Completed,
                                                     query=("timeout", "poll_interval", "wait"), errors=SYNC),
    (f"{V}/ws/commands/{{command_id}}", "get"): Op("followCommand", "commands", 101, errors=(400, 401, 426)),
    (f"{V}/ws/commands", "get"): Op("followDatabaseCommands", "commands", 101, query=("db",),
                                    errors=(400, 401, 426)),
    (f"{V}/bff/{{db}}/labels", "get"): Op("getLabels", "bff", query=("lang",), headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/classes", "get"): Op("listClassesByLabel", "bff", query=("lang",),
                                           headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/classes", "post"): Op("createClassByLabels", "bff", 201, body=QUERY_BODY,
                                            query=("lang", "async", "timeout", "wait"),
                                            headers=("Accept-Language", "Idempotency-Key"), errors=SYNC),
    (f"{V}/bff/{{db}}/classes/{{class_ref}}", "get"): Op("getClassByLabel", "bff", query=("lang",),
                                                         headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/classes/{{class_ref}}", "put"): Op(
        "replaceClassByLabels", "bff", body=QUERY_BODY, query=("lang", "async", "timeout", "wait"),
        headers=("Accept-Language", "Idempotency-Key"), errors=SYNC),
    (f"{V}/bff/{{db}}/classes/{{class_ref}}", "delete"): Op(
        "deleteClassByLabel", "bff", query=("lang", "async", "timeout", "wait"),
        headers=("Accept-Language", "Idempotency-Key"), errors=SYNC),
    (f"{V}/bff/{{db}}/instances/{{class_ref}}", "get"): Op(
        "listInstancesByLabel", "bff", query=("lang", "limit", "after"), headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/instances/{{class_ref}}", "post"): Op(
        "createInstanceByLabels", "bff", 201, body=QUERY_BODY, query=("lang", "async", "timeout", "wait"),
        headers=("Accept-Language", "Idempotency-Key"), errors=SYNC),
    (f"{V}/bff/{{db}}/instances/{{class_ref}}/{{instance_id}}", "get"): Op(
        "getInstanceByLabels", "bff", query=("lang",), headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/search", "get"): Op("searchByLabels", "bff",
                                          query=("q", "class", "lang", "limit", "cursor"),
                                          headers=("Accept-Language",)),
    (f"{V}/bff/{{db}}/query", "post"): Op("queryByLabels", "bff", body=QUERY_BODY, query=("lang",),
                                          headers=("Accept-Language",),
                                          errors=(400, 401, 403, 404, 422, 429, 503)),
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """A $ref to the model's schema, which (with the models it uses) joins the components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, inner in schema.pop("$defs", {}).items():
        components.setdefault(name, inner)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _media(schema: Any, components: dict[str, Any], content: str = JSON) -> dict[str, Any]:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        schema = _schema(schema, components)
    return {content: {"schema": schema if schema is not None else {"type": "object"}}}


def operation(path: str, method: str, summary: str, op: Op, components: dict[str, Any]) -> dict[str, Any]:
    names = re.findall(r"{(\w+)}", path)
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string", **PATH.get(name, {})}} for name in names]
    params += [{"name": name, "in": "query", "required": name == "from" and "/diff" in path,
                **PARAMS[name]} for name in op.query]
    params += [{"name": name, "in": "header", "required": False, **HEADERS[name]} for name in op.headers]
    ok_schema: Any = op.answer
    if op.content != JSON:
        ok_schema = {"type": "string"}
    responses: dict[str, Any] = {str(op.ok): {"description": "OK" if op.ok != 202 else "Accepted",
                                              "content": _media(ok_schema, components, op.content)}}
    if op.ok == 202:
        responses["202"]["description"] = "Stored: the command will be applied (follow its id)"
    if op.ok == 101:  # a WebSocket: JSON status documents, one per message (spice/web/push.py)
        responses["101"] = {"description": "Switching to WebSocket: status documents as JSON "
                                           "text messages; close 4404 when not visible"}
    named = set(names) | {name for name in op.query if name in PATH}
    errors = sorted({*op.errors, *((422,) if named & set(PATH) else ())})
    for status in errors:
        responses[str(status)] = {"description": ERRORS[status],
                                  "content": _media(B.Error, components)}
    out: dict[str, Any] = {"operationId": op.id, "summary": summary, "tags": [op.tag],
                           "parameters": params, "responses": responses}
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": _media(op.body, components)}
    if op.public:
        out["security"] = []
    return out


def document(routes: list[tuple[str, Any, dict[str, str]]]) -> dict[str, Any]:
    """The OpenAPI document of these routes; a route without an entry in OPS is an error
    (a test builds the document)."""
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for path, _, methods in routes:
        for method, summary in methods.items():
            op = OPS.get((path, method))
            if op is None:
                raise KeyError(f"no OpenAPI operation for {method.upper()} {path} (spice/web/openapi.py)")
            paths.setdefault(path, {})[method] = operation(path, method, summary, op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spice Harvester on Faust", "version": __version__,
                 "description": "Commands, events, queries and history of an ontology platform. "
                                "Send an API key as X-API-Key (or a JWT as a bearer token)."},
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "tags": [{"name": t} for t in sorted({op.tag for op in OPS.values()})],
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items())), "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
