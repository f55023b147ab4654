"""POST /api/v1/graph-query/{db}: traversals and paths over the instance graph
(spice.domain.graph_query plans them, spice.stores.graph_query runs them on the
configured graph store). A query reads: viewer access."""
from __future__ import annotations

import time

from faust.web import Request, Response

from spice.domain.graph_query import PathsPlan, parse_query
from spice.stores.graph_query import run_paths, run_traversal
from spice.web.auth import Access
from spice.web.http import ApiView, json_body
from spice.web.reads import require_db


class GraphQueryView(ApiView):
    access = {"post": Access.READ}

    async def post(self, request: Request, db: str) -> Response:
        await require_db(self, db)
        body = await json_body(request)
        started = time.perf_counter()
        plan = parse_query(body, await self.runtime.graph.schema(db))
        if isinstance(plan, PathsPlan):
            answer = await run_paths(self.runtime.graph, db, plan)
        else:
            answer = await run_traversal(self.runtime.graph, db, plan)
        return self.json({"db": db, **answer,
                          "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})
