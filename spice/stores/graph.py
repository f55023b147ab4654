"""The GraphStore port: databases, class schemas and instances.

Adapters: `PostgresGraphStore` (default, graph_postgres.py) and
`TerminusGraphStore` (production, graph_terminus.py). Writes come as domain
events (`apply`), versioned by sequence number, so re-applying is a no-op.
"""
from __future__ import annotations

from typing import Any, Protocol

from spice.domain.envelope import Envelope
from spice.domain.graph_query import Direction, Route
from spice.domain.query import Where
from spice.domain.schema import Schema

NodeKey = tuple[str, str]  # (class id, instance id)
Node = tuple[str, str, dict[str, Any]]  # with the instance's data
Step = tuple[NodeKey, str, NodeKey, Node]  # (from, predicate, to, the node the step reached)


class GraphStore(Protocol):
    async def apply(self, event: Envelope) -> None:
        """Apply one domain event; applying it again changes nothing."""
        ...

    async def database_exists(self, db: str) -> bool: ...
    async def list_databases(self) -> list[dict[str, Any]]: ...
    async def schema(self, db: str) -> Schema: ...
    async def get_class(self, db: str, class_id: str) -> dict[str, Any] | None: ...
    async def list_classes(self, db: str) -> list[dict[str, Any]]: ...
    async def instance_counts(self, db: str) -> dict[str, int]: ...
    async def get_instance(self, db: str, class_id: str, instance_id: str) -> dict[str, Any] | None: ...
    async def existing_instances(self, db: str, class_id: str, ids: list[str]) -> set[str]: ...
    async def list_instances(self, db: str, class_id: str, limit: int = 100,
                             after: str | None = None) -> list[dict[str, Any]]: ...
    async def ping(self) -> None: ...
    async def class_version(self, db: str, class_id: str) -> tuple[dict[str, Any], int] | None:
        """The class and the sequence number of the event that wrote it (its ETag)."""
        ...

    async def instance_version(self, db: str, class_id: str, instance_id: str
                               ) -> tuple[dict[str, Any], int] | None:
        """The instance's data and the sequence number of the event that wrote it."""
        ...

    # Graph queries, one level at a time (spice/stores/graph_query.py); `timeout` in seconds.
    async def query_nodes(self, db: str, classes: list[str], ids: list[str] | None,
                          where: Where | None, limit: int, timeout: float) -> list[Node]:
        """Instances of the classes (only the ids, if given) matching the filter, ordered by
        (class, id), at most `limit`."""
        ...

    async def follow(self, db: str, frontier: list[Node], direction: Direction, routes: list[Route],
                     classes: list[str], where: Where | None, limit: int, timeout: float) -> list[Step]:
        """One hop from the frontier along the routes: every relationship value (forward)
        or every instance holding a frontier id (reverse) whose reached instance is of one
        of the classes and matches the filter, at most `limit` steps."""
        ...
