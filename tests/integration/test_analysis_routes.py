"""The schema analysis routes and the dry run, through HTTP on the real worker: answers
agree with the domain functions over the stored schema, and a dry run stores nothing."""
import pytest

from spice.client import SpiceClient
from spice.domain import analysis
from spice.domain.messages import class_aggregate
from tests.integration.test_api_end_to_end import V1, create_db, unique_db

pytestmark = pytest.mark.integration

CLASSES = [
    {"id": "Agent", "relationships": [{"predicate": "knows", "target": "Agent"}]},
    {"id": "Org"},
    {"id": "Person", "parents": ["Agent"],
     "relationships": [{"predicate": "employer", "target": "Org", "required": True}]},
    {"id": "Note"},
    {"id": "Org", "relationships": [{"predicate": "owner", "target": "Person", "required": True}]},
]


async def ontology(http, worker):
    db = unique_db()
    await create_db(http, worker, db)
    client = SpiceClient(worker.url, session=http)
    seen = set()
    for cls in CLASSES:  # Org twice: Person and Org refer to each other
        if cls["id"] in seen:
            await client.replace_class(db, cls["id"], cls, timeout=20)
        else:
            await client.create_class(db, cls, timeout=20)
        seen.add(cls["id"])
    return db


async def get(http, url, status=200):
    async with http.get(url) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def test_analysis_routes_answer_what_the_domain_computes(worker, runtime, http):
    db = await ontology(http, worker)
    base = f"{worker.url}{V1}/analysis/{db}"
    schema = await runtime.graph.schema(db)

    body = await get(http, f"{base}/paths?from=Person&to=Agent&mode=all&max_depth=3")
    expected, _ = analysis.find_paths(schema, "Person", "Agent", mode="all", max_depth=3)
    assert [p["classes"] for p in body["paths"]] == [[e[0].source, *(step.target for step in e)]
                                                     for e in expected]
    assert body["paths"][0]["classes"] == ["Person", "Agent"]  # knows, inherited from Agent
    assert body["paths"][0]["relationships"][0]["inherited_from"] == "Agent"
    shortest = await get(http, f"{base}/paths?from=Person&to=Agent")
    assert {p["length"] for p in shortest["paths"]} == {1}

    body = await get(http, f"{base}/reachable/Org")
    assert [(r["class_id"], r["depth"]) for r in body["reachable"]] == [("Person", 1), ("Agent", 2)]

    body = await get(http, f"{base}/cycles")
    kinds = {(c["kind"], tuple(c["classes"]), c["severity"]) for c in body["cycles"]}
    assert ("self", ("Agent", "Agent"), "info") in kinds
    assert ("direct", ("Org", "Person", "Org"), "error") in kinds  # both required
    assert body["count"] == len(analysis.cycles(schema)[0])

    body = await get(http, f"{base}/network?hubs=2")
    assert body["isolated"] == ["Note"] and body["classes"] == 4
    assert body["hubs"][0]["class_id"] in ("Agent", "Person", "Org") and len(body["hubs"]) == 2


async def test_bad_analysis_parameters_name_the_field(worker, http):
    db = await ontology(http, worker)
    base = f"{worker.url}{V1}/analysis/{db}"
    for url, status, field in [(f"{base}/paths?from=Person", 400, "to"),
                               (f"{base}/paths?from=Person&to=Nope", 404, "to"),
                               (f"{base}/paths?from=Person&to=Org&mode=some", 400, "mode"),
                               (f"{base}/paths?from=Person&to=Org&max_depth=99", 400, "max_depth"),
                               (f"{base}/reachable/Nope", 404, "class_id"),
                               (f"{V1}/analysis/nosuchdb1/cycles", 404, "db")]:
        url = url if url.startswith("http") else worker.url + url
        body = await get(http, url, status)
        assert body["detail"]["field"] == field, (url, body)


async def test_a_dry_run_answers_like_the_commands_and_stores_nothing(worker, runtime, http):
    db = await ontology(http, worker)
    before = await runtime.graph.list_classes(db)
    last = await runtime.event_store.last_sequence(class_aggregate(db, "Person"))
    proposal = {"classes": [
        {"id": "Team", "relationships": [{"predicate": "members", "target": "Person",
                                          "cardinality": "1:n"}]},
        {"id": "Person", "parents": ["Agent"],
         "relationships": [{"predicate": "employer", "target": "Org", "required": True},
                           {"predicate": "team", "target": "Team"}]},
        {"id": "Broken", "parents": ["Missing"]}]}
    async with http.post(f"{worker.url}{V1}/analysis/{db}/dry-run", json=proposal) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["valid"] is False
    team, person, broken = body["results"]
    assert team["operation"] == "create" and team["valid"]
    assert person["operation"] == "update" and person["change"]["relationships"]["added"] == ["team"]
    assert broken["errors"] == [{"field": "classes[2].parents[0]",
                                 "message": "class 'Missing' does not exist"}]
    assert any(c["classes"] == ["Person", "Team", "Person"] for c in body["cycles_introduced"])
    # Nothing stored: the graph and the event store are as they were.
    assert await runtime.graph.list_classes(db) == before
    assert await runtime.event_store.last_sequence(class_aggregate(db, "Person")) == last
    assert await runtime.event_store.last_sequence(class_aggregate(db, "Team")) == 0
    async with http.post(f"{worker.url}{V1}/analysis/{db}/dry-run", json={"classes": []}) as r:
        assert r.status == 422 and (await r.json())["detail"]["field"] == "classes"
