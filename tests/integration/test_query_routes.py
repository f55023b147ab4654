"""The query routes through HTTP on the real worker: graph queries, structured queries,
versions on reads and If-Match on writes, and their 4xx answers naming the field."""
from spice.client import SpiceClient
from tests.integration.test_api_end_to_end import V1, create_db, unique_db

PERSON = {"id": "Person", "properties": [{"name": "name", "type": "string"},
                                         {"name": "age", "type": "integer"},
                                         {"name": "born", "type": "date"}],
          "relationships": [{"predicate": "knows", "target": "Person", "cardinality": "n:m"},
                            {"predicate": "employer", "target": "Org"}]}
ORG = {"id": "Org", "properties": [{"name": "name", "type": "string"}]}
# In an order where every relationship's target exists when it is written.
PEOPLE = [("cy", {"name": "Cy", "age": 22, "knows": []}),
          ("bob", {"name": "Bob", "age": 45, "knows": ["cy"], "employer": "acme"}),
          ("ann", {"name": "Ann", "age": 31, "born": "1993-01-02", "knows": ["bob"], "employer": "acme"})]


async def post(http, url, body, status=200, headers=None):
    async with http.post(url, json=body, headers=headers or {}) as r:
        assert r.status == status, await r.text()
        return await r.json()


async def populated(http, worker):
    db = unique_db()
    await create_db(http, worker, db)
    client = SpiceClient(worker.url, session=http)
    for cls in (ORG, PERSON):
        await client.create_class(db, cls, timeout=20)
    await client.create_instance(db, "Org", "acme", {"name": "Acme"}, wait=True)
    for instance_id, data in PEOPLE:
        await client.create_instance(db, "Person", instance_id, data, wait=True, projected=True)
    return db


async def test_graph_queries_and_structured_queries_over_http(worker, http):
    db = await populated(http, worker)
    answer = await post(http, f"{worker.url}{V1}/graph-query/{db}", {
        "start": {"class_id": "Person", "ids": ["ann"]},
        "hops": [{"predicate": "knows"}, {"predicate": "knows", "where": {"property": "age",
                                                                           "op": "lt", "value": 30}}],
        "include_documents": True})
    assert {(n["instance_id"], n["depth"]) for n in answer["nodes"]} == {("ann", 0), ("bob", 1), ("cy", 2)}
    assert next(n for n in answer["nodes"] if n["instance_id"] == "cy")["data"]["name"] == "Cy"
    assert answer["truncated"] is False and len(answer["edges"]) == 2
    reverse = await post(http, f"{worker.url}{V1}/graph-query/{db}", {
        "start": {"class_id": "Org", "ids": ["acme"]},
        "hops": [{"predicate": "employer", "direction": "reverse"}]})
    assert sorted(n["instance_id"] for n in reverse["nodes"]) == ["acme", "ann", "bob"]
    paths = await post(http, f"{worker.url}{V1}/graph-query/{db}", {"paths": {
        "from": {"class_id": "Person", "instance_id": "ann"},
        "to": {"class_id": "Person", "instance_id": "cy"}}})
    assert paths["length"] == 2 and paths["count"] == 1

    page = await post(http, f"{worker.url}{V1}/query/{db}", {
        "class_id": "Person", "where": {"and": [{"property": "age", "op": "gte", "value": 25},
                                                {"property": "name", "op": "starts_with", "value": "a"}]},
        "sort": [{"property": "age", "order": "desc"}], "fields": ["name"]})
    assert page["total"] == 1 and page["hits"][0]["document"] == {"name": "Ann"}
    ordered = await post(http, f"{worker.url}{V1}/query/{db}", {"class_id": "Person", "sort": ["-age"],
                                                                 "limit": 2})
    assert [h["instance_id"] for h in ordered["hits"]] == ["bob", "ann"] and ordered["cursor"]
    rest = await post(http, f"{worker.url}{V1}/query/{db}", {"class_id": "Person", "sort": ["-age"],
                                                              "limit": 2, "cursor": ordered["cursor"]})
    assert [h["instance_id"] for h in rest["hits"]] == ["cy"] and rest["cursor"] is None


async def test_bad_queries_are_422_naming_the_field(worker, http):
    db = await populated(http, worker)
    cases = [
        ("graph-query", {"start": {"class_id": "Person"}, "hops": [{"predicate": "knows"}] * 7}, "hops"),
        ("graph-query", {"start": {"class_id": "Person"}, "hops": [{"predicate": "likes"}]},
         "hops[0].predicate"),
        ("graph-query", {"start": {"class_id": "Person", "where": {"property": "salary", "value": 1}}},
         "start.where.property"),
        ("query", {"class_id": "Person", "where": {"property": "age", "op": "starts_with",
                                                   "value": "3"}}, "where.op"),
        ("query", {"class_id": "Person", "where": {"property": "born", "op": "gt", "value": 3}},
         "where.value"),
        ("query", {"class_id": "Person", "sort": [{"property": "knows"}]}, "sort[0].property"),
        ("query", {"class_id": "Nope"}, "class_id"),
        ("query", {"class_id": "Person", "cursor": "garbage"}, "cursor"),
    ]
    for route, body, field in cases:
        answer = await post(http, f"{worker.url}{V1}/{route}/{db}", body, status=422)
        assert answer["detail"]["field"] == field, (body, answer)


async def test_reads_carry_their_version_and_writes_take_if_match(worker, http):
    db = await populated(http, worker)
    async with http.get(f"{worker.url}{V1}/instances/{db}/Person/cy") as r:
        body = await r.json()
        assert r.headers["ETag"] == f'"{body["version"]}"'
    etag = r.headers["ETag"]
    url = f"{worker.url}{V1}/instances/{db}/async/Person/cy/update"
    stale = await post(http, url, {"data": {"name": "Cy"}}, status=409, headers={"If-Match": '"999"'})
    assert stale["detail"]["code"] == "sequence_mismatch"
    fresh = await post(http, url, {"data": {"name": "Cyd"}}, status=202, headers={"If-Match": etag})
    async with http.get(f"{worker.url}{V1}/commands/{fresh['command_id']}/wait?timeout=20") as r:
        assert r.status == 200, await r.text()
    await post(http, url, {"data": {"name": "x"}}, status=400, headers={"If-Match": "*"})
    # A class read-modify-write: the body read carries its version back.
    async with http.get(f"{worker.url}{V1}/ontology/{db}/Org") as r:
        org = await r.json()
        assert r.headers["ETag"] == f'"{org["version"]}"'
    async with http.put(f"{worker.url}{V1}/ontology/{db}/sync/Org?timeout=20",
                        json={**org, "label": "Organisation"}) as r:
        assert r.status == 200, await r.text()
    async with http.put(f"{worker.url}{V1}/ontology/{db}/sync/Org?timeout=20",
                        json={**org, "label": "Again"}) as r:
        assert r.status == 409, await r.text()  # the version read is no longer current


async def test_the_bff_query_takes_labels(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    await post(http, f"{worker.url}{V1}/bff/{db}/classes", status=201, body={
        "label": {"en": "Person", "ko": "사람"},
        "properties": [{"label": {"en": "name", "ko": "이름"}, "type": "string"},
                       {"label": {"en": "age", "ko": "나이"}, "type": "integer"}]})
    for name, age in (("Ann", 31), ("Bob", 45), ("Cy", 22)):
        await post(http, f"{worker.url}{V1}/bff/{db}/instances/사람", {"data": {"이름": name, "나이": age}},
                   status=201)
    answer = await post(http, f"{worker.url}{V1}/bff/{db}/query", {
        "class": "사람", "where": {"property": "나이", "op": "gt", "value": 25},
        "sort": ["-나이"], "fields": ["이름"]}, headers={"Accept-Language": "ko"})
    assert answer["total"] == 2
    names = [[p["value"] for p in h["properties"] if p["label"] == "이름"] for h in answer["hits"]]
    assert names == [["Bob"], ["Ann"]]
    bad = await post(http, f"{worker.url}{V1}/bff/{db}/query",
                     {"class": "사람", "where": {"property": "키", "op": "gt", "value": 1}}, status=422)
    assert bad["detail"]["field"] == "where.property"
