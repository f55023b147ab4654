"""Every route of the HTTP API in one table; the OpenAPI document is built from it."""
from __future__ import annotations

from typing import Any

from faust.web import Request, Response

from spice.app import app
from spice.web import (
    analysis,
    bff,
    console,
    dashboard,
    graph_query,
    history,
    push,
    reads,
    revert,
    schemas,
    search,
    writes,
)
from spice.web.auth import Access
from spice.web.http import ApiView
from spice.web.metrics import MetricsView
from spice.web.openapi import document as openapi_document
from spice.web.ops import HealthView, LiveView, ReadyView
from spice.web.status import CommandCountsView, CommandStatusView, CommandWaitView

V1 = "/api/v1"
B = f"{V1}/bff/{{db}}"
W = writes

DatabaseCreate = W.write_view("DatabaseCreate", access=Access.ADMIN, post=W.create_database)
DatabaseDelete = W.write_view("DatabaseDelete", access=Access.ADMIN, delete=W.delete_database)
OntologyAsyncCreate = W.write_view("OntologyAsyncCreate", post=W.create_class)
OntologyAsyncClass = W.write_view("OntologyAsyncClass", put=W.update_class, delete=W.delete_class)
OntologySyncCreate = W.write_view("OntologySyncCreate", sync=True, post=W.create_class)
OntologySyncClass = W.write_view("OntologySyncClass", sync=True, put=W.update_class,
                                 delete=W.delete_class)
InstanceCreate = W.write_view("InstanceCreate", post=W.create_instance)
InstanceUpdate = W.write_view("InstanceUpdate", post=W.update_instance)
InstanceDelete = W.write_view("InstanceDelete", post=W.delete_instance)
InstanceBulk = W.write_view("InstanceBulk", post=W.bulk_create)
InstanceSyncCreate = W.write_view("InstanceSyncCreate", sync=True, post=W.create_instance)

# (path, view, {method: summary})
ROUTES: list[tuple[str, type[ApiView], dict[str, str]]] = [
    ("/livez", LiveView, {"get": "Liveness: the process serves HTTP (no I/O)"}),
    ("/readyz", ReadyView, {"get": "Readiness: can accept and apply commands; 503 names what fails"}),
    ("/health", HealthView, {"get": "Health of every dependency; 503 only when unready"}),
    (f"{V1}/health", HealthView, {"get": "Health of every dependency; 503 only when unready"}),
    (f"{V1}/database/create", DatabaseCreate, {"post": "Create a database (async, 202)"}),
    (f"{V1}/database/list", reads.DatabaseListView, {"get": "List databases"}),
    (f"{V1}/database/exists/{{db}}", reads.DatabaseExistsView, {"get": "Does a database exist"}),
    (f"{V1}/database/{{db}}", DatabaseDelete, {"delete": "Delete a database (async, 202)"}),
    (f"{V1}/ontology/{{db}}/async/create", OntologyAsyncCreate, {"post": "Create a class (202)"}),
    (f"{V1}/ontology/{{db}}/async/command/{{command_id}}/status", CommandStatusView,
     {"get": "Status, progress and history of a command"}),
    (f"{V1}/ontology/{{db}}/async/{{class_id}}", OntologyAsyncClass,
     {"put": "Replace a class (202)", "delete": "Delete a class (202)"}),
    (f"{V1}/ontology/{{db}}/sync/create", OntologySyncCreate,
     {"post": "Create a class and wait (200, 408 on timeout)"}),
    (f"{V1}/ontology/{{db}}/sync/command/{{command_id}}/wait", CommandWaitView,
     {"get": "Wait for a command's outcome"}),
    (f"{V1}/ontology/{{db}}/sync/{{class_id}}", OntologySyncClass,
     {"put": "Replace a class and wait", "delete": "Delete a class and wait"}),
    (f"{V1}/ontology/{{db}}/async/{{class_id}}/revert", revert.ClassRevert,
     {"post": "Bring a class back to an earlier version (202): to_version"}),
    (f"{V1}/ontology/{{db}}/sync/{{class_id}}/revert", revert.ClassRevertSync,
     {"post": "Bring a class back to an earlier version and wait"}),
    (f"{V1}/ontology/{{db}}/create", reads.LegacyCreateClassView,
     {"post": "Legacy direct write to the graph store (no command, no status)"}),
    (f"{V1}/ontology/{{db}}", reads.ClassListView,
     {"get": "List classes; as_of (a chain position or a time): the schema then"}),
    (f"{V1}/ontology/{{db}}/{{class_id}}", reads.ClassView,
     {"get": "Get a class; as_of (a version or a time): the class then"}),
    (f"{V1}/instances/{{db}}/async/{{class_id}}/create", InstanceCreate,
     {"post": "Create an instance (202)"}),
    (f"{V1}/instances/{{db}}/async/{{class_id}}/bulk-create", InstanceBulk,
     {"post": "Create many instances (202); progress in the status"}),
    (f"{V1}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/update", InstanceUpdate,
     {"post": "Replace an instance's data (202)"}),
    (f"{V1}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/delete", InstanceDelete,
     {"post": "Delete an instance (202)"}),
    (f"{V1}/instances/{{db}}/sync/{{class_id}}/create", InstanceSyncCreate,
     {"post": "Create an instance and wait"}),
    (f"{V1}/instances/{{db}}/async/{{class_id}}/{{instance_id}}/revert", revert.InstanceRevert,
     {"post": "Bring an instance back to an earlier version (202): to_version"}),
    (f"{V1}/instances/{{db}}/sync/{{class_id}}/{{instance_id}}/revert", revert.InstanceRevertSync,
     {"post": "Bring an instance back to an earlier version and wait"}),
    (f"{V1}/instances/{{db}}/{{class_id}}", reads.InstanceListView, {"get": "List instances (paged)"}),
    (f"{V1}/instances/{{db}}/{{class_id}}/{{instance_id}}", reads.InstanceView,
     {"get": "Get an instance; as_of (a version or a time): the instance then"}),
    (f"{V1}/history/{{db}}", history.DatabaseHistoryView,
     {"get": "A database's history: every command and event, newest first (docs/history.md)"}),
    (f"{V1}/history/{{db}}/schema/diff", history.SchemaDiffView,
     {"get": "JSON Patch between two versions of the schema: from, to"}),
    (f"{V1}/history/{{db}}/classes/{{class_id}}", history.ClassHistoryView,
     {"get": "A class's history: commands, outcomes, events and what each changed"}),
    (f"{V1}/history/{{db}}/classes/{{class_id}}/diff", history.ClassDiffView,
     {"get": "JSON Patch between two versions of a class: from, to"}),
    (f"{V1}/history/{{db}}/instances/{{class_id}}/{{instance_id}}", history.InstanceHistoryView,
     {"get": "An instance's history: commands, outcomes, events and what each changed"}),
    (f"{V1}/history/{{db}}/instances/{{class_id}}/{{instance_id}}/diff", history.InstanceDiffView,
     {"get": "JSON Patch between two versions of an instance: from, to"}),
    (f"{V1}/audit", history.AuditAllView,
     {"get": "The audit log of every database ('*' admins): the filters below, db"}),
    (f"{V1}/audit/{{db}}", history.AuditView,
     {"get": "The audit log: actor, command_type, aggregate, outcome, kind, since, until"}),
    (f"{V1}/audit/{{db}}/chain", history.ChainHeadView,
     {"get": "The head of the database's audit hash chain"}),
    (f"{V1}/analysis/{{db}}/paths", analysis.PathsView,
     {"get": "Relationship paths between two classes: from, to, mode (shortest|all), max_depth, limit"}),
    (f"{V1}/analysis/{{db}}/reachable/{{class_id}}", analysis.ReachableView,
     {"get": "Classes reachable from a class through relationships, with depth and a path"}),
    (f"{V1}/analysis/{{db}}/cycles", analysis.CyclesView,
     {"get": "Relationship cycles (self, direct, indirect) with their severity"}),
    (f"{V1}/analysis/{{db}}/network", analysis.NetworkView,
     {"get": "The relationship network: degrees, hubs, isolated classes, components"}),
    (f"{V1}/analysis/{{db}}/dry-run", analysis.DryRunView,
     {"post": "Validate class writes without storing anything: errors, changes, new cycles"}),
    (f"{V1}/graph-query/{{db}}", graph_query.GraphQueryView,
     {"post": "Query the instance graph: start and hops (forward/reverse, filters), or paths"}),
    (f"{V1}/commands/{{command_id}}/status", CommandStatusView, {"get": "Status of any command"}),
    (f"{V1}/commands/{{command_id}}/wait", CommandWaitView, {"get": "Wait for any command"}),
    (f"{V1}/ws/commands/{{command_id}}", push.CommandPushView,
     {"get": "WebSocket: the command's status, then every change until it ends"}),
    (f"{V1}/ws/commands", push.DatabasePushView,
     {"get": "WebSocket: every status change of a database's commands (db=)"}),
    (f"{V1}/status/commands", CommandCountsView, {"get": "Counts by state and type, DLQ depth"}),
    ("/metrics", MetricsView, {"get": "Prometheus metrics: commands, publisher and consumer lag, DLQ"}),
    (f"{V1}/query/{{db}}", search.StructuredQueryView,
     {"post": "Structured query: class_id, where (typed operators, and/or/not), sort, fields, "
              "limit, cursor"}),
    (f"{V1}/search/{{db}}/classes", search.ClassSearchView, {"get": "Search classes by label"}),
    (f"{V1}/search/{{db}}", search.SearchView,
     {"get": "Search instances: q, class_id, property filters, limit, cursor"}),
    (f"{B}/labels", bff.LabelsView, {"get": "The label index: labels, languages, ids, ambiguities"}),
    (f"{B}/classes", bff.ClassesView,
     {"get": "Classes in the request's language", "post": "Create a class given by labels"}),
    (f"{B}/classes/{{class_ref}}", bff.ClassView,
     {"get": "A class by label or id", "put": "Replace a class given by labels",
      "delete": "Delete a class by label or id"}),
    (f"{B}/instances/{{class_ref}}", bff.InstancesView,
     {"get": "Instances of a class, with property labels",
      "post": "Create an instance whose data keys are property labels"}),
    (f"{B}/instances/{{class_ref}}/{{instance_id}}", bff.InstanceView,
     {"get": "An instance with property labels and related instances' labels"}),
    (f"{B}/search", bff.SearchView, {"get": "Search by text, class label and property labels"}),
    (f"{B}/query", bff.QueryView,
     {"post": "Structured query given by labels: class, where, sort, fields (docs/queries.md)"}),
    (f"{V1}/schemas", schemas.SchemaListView,
     {"get": "The topic contract's JSON Schemas: the envelope, each command's and event's data"}),
    (f"{V1}/schemas/{{name}}", schemas.SchemaView, {"get": "One JSON Schema (docs/topics.md)"}),
    ("/docs", console.ConsolePage, {"get": "The API console (Swagger UI over this document)"}),
    ("/docs/assets/{name}", console.ConsoleAsset, {"get": "The console's script, style and icon"}),
    ("/dashboard", dashboard.DashboardPage, {"get": "The operators' dashboard (HTML; polls the data below)"}),
    (f"{V1}/dashboard/data", dashboard.DashboardData,
     {"get": "Dashboard data merged over every worker, with lag and dead letters"}),
    (f"{V1}/dashboard/local", dashboard.DashboardLocal, {"get": "What this worker's tables and tasks know"}),
]

def openapi() -> dict[str, Any]:
    return openapi_document(ROUTES + [("/openapi.json", OpenApiView, {"get": "This document"})])


class OpenApiView(ApiView):
    access = {"get": Access.PUBLIC}

    async def get(self, request: Request) -> Response:
        return self.json(openapi())


for _path, _view, _ in ROUTES:
    app.page(_path, name=f"{_view.__name__}:{_path}")(_view)
app.page("/openapi.json")(OpenApiView)
