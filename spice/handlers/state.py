"""Load the state a decision needs from the graph store."""
from __future__ import annotations

from typing import Any

from spice.domain.decisions import DatabaseState, InstanceState, OntologyState
from spice.domain.errors import FieldError, ValidationFailed
from spice.domain.messages import CommandType
from spice.domain.schema import Schema
from spice.stores.graph import GraphStore


async def database_state(graph: GraphStore, name: str) -> DatabaseState:
    return DatabaseState(name, await graph.database_exists(name))


async def _schema_of(graph: GraphStore, db: str) -> tuple[bool, Schema]:
    combined = getattr(graph, "schema_if_exists", None)
    if combined is not None:  # one round trip instead of two
        schema = await combined(db)
        return schema is not None, schema or Schema({})
    exists = await graph.database_exists(db)
    return exists, (await graph.schema(db) if exists else Schema({}))


async def ontology_state(graph: GraphStore, db: str, command: CommandType) -> OntologyState:
    exists, schema = await _schema_of(graph, db)
    counts = await graph.instance_counts(db) if command is CommandType.DELETE_ONTOLOGY_CLASS else {}
    return OntologyState(db, exists, schema, counts)


async def instance_state(graph: GraphStore, db: str, data: dict[str, Any],
                         command: CommandType) -> InstanceState:
    exists, schema = await _schema_of(graph, db)
    current = None
    if exists and command is not CommandType.BULK_CREATE_INSTANCES:
        current = await graph.get_instance(db, str(data.get("class_id")), str(data.get("instance_id")))
    return InstanceState(db, exists, schema, current)


def _with_subclasses(schema: Schema, class_id: str) -> list[str]:
    found, frontier = [class_id], [class_id]
    while frontier:
        for sub in schema.subclasses(frontier.pop()):
            if sub not in found:
                found.append(sub)
                frontier.append(sub)
    return found


async def check_references(graph: GraphStore, db: str, schema: Schema, class_id: str,
                           data: dict[str, Any], path: str = "data",
                           pending: set[tuple[str, str]] | None = None) -> None:
    """Every relationship value must name an instance of the target class (or a subclass)."""
    problems = []
    for rel in schema.effective_relationships(class_id):
        value = data.get(rel.predicate)
        if value is None:
            continue
        wanted = value if isinstance(value, list) else [value]
        found: set[str] = set()
        for candidate in _with_subclasses(schema, rel.target):
            found |= await graph.existing_instances(db, candidate, wanted)
            found |= {i for c, i in (pending or set()) if c == candidate}
        for target in wanted:
            if target not in found:
                problems.append(FieldError(
                    f"{path}.{rel.predicate}", f"no instance '{target}' of class '{rel.target}'"))
    if problems:
        raise ValidationFailed(problems)
