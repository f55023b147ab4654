"""Query speed: graph queries, structured queries and schema analysis, with the plans
that explain them.

    python -m bench.queries [--instances N] [--runs N] [--no-elasticsearch]   (make bench-queries)

Setup (not measured): a graph of N instances (default 100,000) in 10 classes with three
relationship values each (2 `next` into the next class, 1 `peer` in the same class:
300,000 edges), written straight into the PostgreSQL graph tables; the same instances as
read-model documents in PostgreSQL and, unless --no-elasticsearch, Elasticsearch.
Measured, as medians and p99 over --runs queries each, through the code the routes run
(planning + store), on the local stack:
- a 3-hop traversal from one instance (next, next, peer);
- a 2-hop fan-out from 100 start instances with a filter on each hop;
- a structured query with two range filters and a sort over all N documents;
- the schema analysis functions on a 500-class ontology.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from typing import Any

import orjson

from bench.common import machine
from spice.domain import analysis
from spice.domain.graph_query import parse_query
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema
from spice.domain.structured import parse_structured
from spice.runtime import Runtime
from spice.settings import Settings
from spice.stores.graph_postgres import FORWARD_SQL, PostgresGraphStore
from spice.stores.graph_query import run_traversal
from spice.stores.search import PostgresSearchIndex

CLASSES = 10


def ontology(classes: int) -> list[dict[str, Any]]:
    return [{"id": f"C{i}", "properties": [{"name": "n", "type": "integer"},
                                           {"name": "score", "type": "decimal"},
                                           {"name": "name", "type": "string"}],
             "relationships": [{"predicate": "next", "target": f"C{(i + 1) % classes}",
                                "cardinality": "n:m"},
                               {"predicate": "peer", "target": f"C{i}", "cardinality": "n:m"}]}
            for i in range(classes)]


def instances(total: int, rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    per = total // CLASSES
    rows = []
    for c in range(CLASSES):
        for i in range(per):
            rows.append((f"C{c}", f"i{i}", {
                "n": rng.randrange(1000), "score": f"{rng.randrange(100000) / 100:.2f}",
                "name": f"name {rng.randrange(10000)}",
                "next": [f"i{rng.randrange(per)}", f"i{rng.randrange(per)}"],
                "peer": [f"i{rng.randrange(per)}"]}))
    return rows


async def load(runtime: Runtime, db: str, rows: list[tuple[str, str, dict[str, Any]]],
               search: Any | None) -> None:
    async with runtime.pool.acquire() as conn:
        await conn.execute("INSERT INTO graph_databases VALUES ($1, $2, 1)", db,
                           orjson.dumps({"name": db}).decode())
        for cls in ontology(CLASSES):
            await conn.execute("INSERT INTO graph_classes VALUES ($1, $2, $3, 1)", db, cls["id"],
                               orjson.dumps(cls).decode())
        for start in range(0, len(rows), 10_000):
            chunk = rows[start:start + 10_000]
            await conn.execute(
                "INSERT INTO graph_instances SELECT $1, c, i, d::jsonb, 1 FROM unnest($2::text[], "
                "$3::text[], $4::text[]) AS t(c, i, d)", db, [r[0] for r in chunk],
                [r[1] for r in chunk], [orjson.dumps(r[2]).decode() for r in chunk])
            docs = [{"db": db, "kind": "instance", "doc_id": f"{c}/{i}", "class_id": "Item",
                     "version": 1, "labels": d["name"], "body": d} for c, i, d in chunk]
            await conn.execute(PostgresSearchIndex(runtime.pool).upsert_sql(),
                               orjson.dumps(docs).decode())
        await conn.execute("ANALYZE graph_instances")
        await conn.execute("ANALYZE search_docs")
    if search is not None:
        from spice.stores.search_elasticsearch import alias_name, bulk_operations

        await search.ensure_alias(alias_name(db, "instance"))
        for start in range(0, len(rows), 5_000):
            folded = {(db, "instance", f"{c}/{i}"): (1, ("Item", d["name"], d), "Item")
                      for c, i, d in rows[start:start + 5_000]}
            await search.es.bulk(operations=bulk_operations(folded, search.index_of), refresh=False)
        await search.es.indices.refresh(index=alias_name(db, "instance"))


async def timed(call: Any, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def line(name: str, figures: tuple[float, float], target: str) -> None:
    print(f"{name:<58} p50 {figures[0]:7.2f} ms   p99 {figures[1]:7.2f} ms   (target {target})",
          flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--no-elasticsearch", action="store_true")
    args = parser.parse_args()
    print(machine(), flush=True)
    settings = Settings()
    runtime = await Runtime.open(settings)
    search = None
    if not args.no_elasticsearch:
        from spice.stores.search_elasticsearch import ElasticsearchSearchIndex

        search = ElasticsearchSearchIndex.from_settings(settings)
    db = f"bq{uuid.uuid4().hex[:10]}"
    rng = random.Random(7)
    rows = instances(args.instances, rng)
    started = time.perf_counter()
    await load(runtime, db, rows, search)
    print(f"setup: {len(rows):,} instances, {3 * len(rows):,} relationship values, "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    graph = PostgresGraphStore(runtime.pool)
    schema = Schema({c["id"]: OntologyClass.model_validate(c) for c in ontology(CLASSES)})
    per = args.instances // CLASSES
    try:
        async def three_hops() -> None:
            plan = parse_query({"start": {"class_id": "C0", "ids": [f"i{rng.randrange(per)}"]},
                                "hops": [{"predicate": "next"}, {"predicate": "next"},
                                         {"predicate": "peer"}]}, schema)
            await run_traversal(graph, db, plan)

        async def fan_out() -> None:
            plan = parse_query({"start": {"class_id": "C0",
                                          "ids": [f"i{rng.randrange(per)}" for _ in range(100)]},
                                "hops": [{"predicate": "next", "where": {"property": "n", "op": "gte",
                                                                        "value": 200}},
                                         {"predicate": "next", "where": {"property": "n", "op": "lt",
                                                                         "value": 800}}]}, schema)
            await run_traversal(graph, db, plan)

        async def reverse() -> None:
            plan = parse_query({"start": {"class_id": "C1", "ids": [f"i{rng.randrange(per)}"]},
                                "hops": [{"predicate": "next", "direction": "reverse"}]}, schema)
            await run_traversal(graph, db, plan)

        line("graph: 3-hop traversal from one instance", await timed(three_hops, args.runs),
             "p50 <= 30, p99 <= 150")
        line("graph: 2-hop fan-out from 100 instances, filtered", await timed(fan_out, args.runs),
             "p50 <= 100")
        line("graph: reverse hop into one instance (GIN index)", await timed(reverse, args.runs), "-")

        item = Schema({"Item": OntologyClass.model_validate(
            {"id": "Item", "properties": ontology(1)[0]["properties"]})})

        def structured() -> Any:
            low = rng.randrange(800)
            return parse_structured({"class_id": "Item", "where": {"and": [
                {"property": "n", "op": "gte", "value": low},
                {"property": "n", "op": "lt", "value": low + 100},
                {"property": "score", "op": "gt", "value": "500"}]},
                "sort": [{"property": "score", "order": "desc"}], "limit": 20}, item)

        pg_search = PostgresSearchIndex(runtime.pool)

        async def pg_query() -> None:
            await pg_search.structured(db, structured())

        line(f"structured: 2 range filters + sort over {args.instances:,} docs, PostgreSQL",
             await timed(pg_query, max(20, args.runs // 4)), "p50 <= 20")
        if search is not None:
            async def es_query() -> None:
                await search.structured(db, structured())

            line(f"structured: 2 range filters + sort over {args.instances:,} docs, Elasticsearch",
                 await timed(es_query, args.runs), "p50 <= 20")

        big = Schema({c["id"]: OntologyClass.model_validate(c) for c in wide_ontology(500, rng)})

        async def analyses() -> None:
            analysis.find_paths(big, "K0", "K250", mode="shortest", max_depth=10)
            analysis.reachable(big, "K0")
            analysis.cycles(big, limit=100)
            analysis.network(big)

        line("schema analysis (paths, reachable, cycles, network), 500 classes",
             await timed(analyses, max(20, args.runs // 4)), "p50 <= 50 (all four together)")
        await plans(runtime, db, per)
    finally:
        async with runtime.pool.acquire() as conn:
            for table in ("graph_instances", "graph_classes", "search_docs"):
                await conn.execute(f"DELETE FROM {table} WHERE db = $1", db)
            await conn.execute("DELETE FROM graph_databases WHERE name = $1", db)
        if search is not None:
            await search.drop_database(db)
            await search.close()
        await runtime.close()


def wide_ontology(classes: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{"id": f"K{i}", "relationships": [
        {"predicate": f"r{j}", "target": f"K{rng.randrange(classes)}"} for j in range(3)]}
        for i in range(classes)]


async def plans(runtime: Runtime, db: str, per: int) -> None:
    """The plans behind the figures: a forward hop, a reverse hop, the structured query."""
    forward = FORWARD_SQL.replace("{where}", "true")
    routes = (["next", "next"], ["C0", "C0"], ["C1", "C1"], [0, 0])
    statements = [
        ("forward hop (3 frontier instances)", forward,
         [db, ["C0"] * 3, ["i1", "i2", "i3"], *routes, ["C1"], 1001]),
        ("structured query", (
            "SELECT doc_id FROM search_docs WHERE db = $1 AND kind = 'instance' AND NOT deleted "
            "AND (body->>'n')::numeric >= 100 AND (body->>'n')::numeric < 200 "
            "ORDER BY (body->>'score')::numeric DESC LIMIT 20"), [db]),
    ]
    async with runtime.pool.acquire() as conn:
        for name, sql, params in statements:
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *params)
            print(f"-- plan: {name}")
            for row in rows:
                print("   " + row[0])


if __name__ == "__main__":
    asyncio.run(main())
