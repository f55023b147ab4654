"""The structured-query contract: every SearchIndex answers as a filter and sort written
here, over generated documents holding values of every type (hypothesis), page by page.

Synchronous tests running each example in its own event loop with a store made for it
(`make_search`), as in tests/contracts/graph_query.py.
"""
import asyncio
import functools
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spice.domain.envelope import Envelope, now
from spice.domain.messages import AggregateType, EventType
from spice.domain.ontology import OntologyClass
from spice.domain.schema import Schema
from spice.domain.structured import parse_structured

ITEM = {"id": "Item", "properties": [
    {"name": "name", "type": "string"}, {"name": "qty", "type": "integer"},
    {"name": "ratio", "type": "decimal"}, {"name": "born", "type": "date"},
    {"name": "seen", "type": "datetime"}, {"name": "cost", "type": "money"},
    {"name": "tags", "type": "array<string>"}, {"name": "ok", "type": "boolean"}],
    "relationships": [{"predicate": "owner", "target": "Item"},
                      {"predicate": "friends", "target": "Item", "cardinality": "n:m"}]}
SCHEMA = Schema({"Item": OntologyClass.model_validate(ITEM)})
IDS = [f"i{n:02d}" for n in range(40)]
NAMES = ["Ann", "ann", "ANNA", "Bob", "bobby", "Zed", "a*b?", "x"]
RATIOS = ["1.5", "10", "-2.25", "3.333", "0", "1.50"]
DATES = ["1969-07-20", "1999-12-31", "2000-01-01", "2024-02-29"]
INSTANTS = ["2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00+00:00", "2024-01-01T09:30:00",
            "2023-06-01T00:00:00-05:00", "2024-01-01T08:00:01+00:00"]
COSTS = [{"amount": a, "currency": c} for a in ("5", "10.00", "10.5", "99.99") for c in ("EUR", "USD")]

VALUES = {
    "name": st.sampled_from(NAMES), "qty": st.integers(-5, 20), "ratio": st.sampled_from(RATIOS),
    "born": st.sampled_from(DATES), "seen": st.sampled_from(INSTANTS), "cost": st.sampled_from(COSTS),
    "tags": st.lists(st.sampled_from(["a", "b", "C"]), max_size=3), "ok": st.booleans(),
    "owner": st.sampled_from(IDS[:5]), "friends": st.lists(st.sampled_from(IDS[:5]), max_size=3),
}
documents = st.lists(st.fixed_dictionaries({}, optional=VALUES), min_size=0, max_size=len(IDS))

CONDITIONS = {
    "name": (["eq", "ne", "in", "nin", "contains", "starts_with", "exists"], st.sampled_from(NAMES)),
    "qty": (["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"], st.integers(-5, 20)),
    "ratio": (["eq", "gt", "gte", "lt", "lte", "in", "exists"], st.sampled_from(RATIOS)),
    "born": (["eq", "ne", "gt", "lte", "in", "exists"], st.sampled_from(DATES)),
    "seen": (["eq", "gt", "gte", "lt", "exists"], st.sampled_from(INSTANTS)),
    "cost": (["eq", "gt", "lte", "exists"], st.sampled_from(COSTS)),
    "cost.amount": (["gt", "lte"], st.sampled_from(["5", "10", "10.5"])),
    "cost.currency": (["eq", "in"], st.sampled_from(["eur", "USD"])),
    "tags": (["contains", "exists"], st.sampled_from(["a", "C", "z"])),
    "ok": (["eq", "ne", "exists"], st.booleans()),
    "owner": (["eq", "ne", "in", "exists"], st.sampled_from(IDS[:5])),
    "friends": (["contains", "exists"], st.sampled_from(IDS[:5])),
}
SORTABLE = ["name", "qty", "ratio", "born", "seen", "cost", "ok", "cost.amount"]


@st.composite
def conditions(draw):
    prop = draw(st.sampled_from(sorted(CONDITIONS)))
    ops, values = CONDITIONS[prop]
    op = draw(st.sampled_from(ops))
    if op == "exists":
        value = draw(st.booleans())
    elif op in ("in", "nin"):
        value = draw(st.lists(values, min_size=1, max_size=3))
    elif op in ("contains", "starts_with") and prop == "name":
        value = draw(st.sampled_from(["a", "An", "b", "*", "?", "ob"]))
    else:
        value = draw(values)
    return {"property": prop, "op": op, "value": value}


wheres = st.recursive(conditions(), lambda inner: st.one_of(
    st.builds(lambda parts: {"and": parts}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda parts: {"or": parts}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda part: {"not": part}, inner)), max_leaves=4)
sorts = st.lists(st.builds(lambda p, d: {"property": p, "order": d}, st.sampled_from(SORTABLE),
                           st.sampled_from(["asc", "desc"])), max_size=2, unique_by=lambda k: k["property"])


# ---- the reference: filter and sort written here ----------------------------------

def instant(text):
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def value_of(doc, prop):
    head, _, part = prop.partition(".")
    value = doc.get(head)
    return value.get(part) if part and isinstance(value, dict) else value


def comparable(prop, value):
    if prop in ("name", "cost.currency"):
        return value.lower()
    if prop in ("qty", "ratio", "cost.amount"):
        return Decimal(str(value))
    if prop == "seen":
        return instant(value)
    if prop == "cost":
        return (value["currency"], Decimal(value["amount"]))
    return value


def holds(where, doc):
    if "and" in where:
        return all(holds(w, doc) for w in where["and"])
    if "or" in where:
        return any(holds(w, doc) for w in where["or"])
    if "not" in where:
        return not holds(where["not"], doc)
    prop, op, expected = where["property"], where["op"], where["value"]
    value = value_of(doc, prop)
    if op == "exists":
        return (value is not None) == expected
    if op in ("ne", "nin"):
        return not holds({"property": prop, "op": "eq" if op == "ne" else "in", "value": expected}, doc)
    if value is None:
        return False
    if prop in ("tags", "friends"):
        return expected in value
    actual = comparable(prop, value)
    if op == "in":
        return actual in [comparable(prop, v) for v in expected]
    if op == "contains":
        return expected.lower() in actual
    if op == "starts_with":
        return actual.startswith(expected.lower())
    wanted = comparable(prop, expected)
    if prop == "cost":
        if actual[0] != wanted[0]:
            return False
        actual, wanted = actual[1], wanted[1]
    return {"eq": actual == wanted, "gt": actual > wanted, "gte": actual >= wanted,
            "lt": actual < wanted, "lte": actual <= wanted}[op]


def ordered(docs, keys):
    def compare(a, b):
        for key in keys:
            x, y = value_of(a[1], key["property"]), value_of(b[1], key["property"])
            if x is None or y is None:
                if (x is None) != (y is None):
                    return 1 if x is None else -1  # absent last, whatever the order
                continue
            x, y = comparable(key["property"], x), comparable(key["property"], y)
            if x != y:
                result = -1 if x < y else 1
                return -result if key["order"] == "desc" else result
        return -1 if a[0] < b[0] else 1 if a[0] > b[0] else 0
    return [doc_id for doc_id, _ in sorted(docs, key=functools.cmp_to_key(compare))]


def created(db, instance_id, data):
    event_id = str(uuid.uuid4())
    return Envelope(event_id=event_id, event_type=EventType.INSTANCE_CREATED.value,
                    aggregate_type=AggregateType.INSTANCE.value, aggregate_id=f"a-{event_id}",
                    occurred_at=now(), data={"db": db, "class_id": "Item", "instance_id": instance_id,
                                             "data": data},
                    metadata={"kind": "domain", "command_id": event_id, "kafka_topic": "x"},
                    sequence_number=1)


EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


class StructuredQueryContract:
    @EXAMPLES
    @given(documents, st.lists(st.tuples(st.one_of(st.none(), wheres), sorts, st.integers(1, 15)),
                               min_size=1, max_size=5))
    def test_structured_queries_agree_with_the_reference(self, make_search, docs, queries):
        stored = {IDS[i]: doc for i, doc in enumerate(docs)}

        async def check():
            async with make_search() as search:
                db = f"q{uuid.uuid4().hex[:12]}"
                if stored:
                    await search.apply_many([created(db, i, d) for i, d in stored.items()])
                for where, sort, limit in queries:
                    body = {"class_id": "Item", "sort": sort, "limit": limit,
                            **({"where": where} if where is not None else {})}
                    expected = ordered([(f"Item/{i}", d) for i, d in stored.items()
                                        if where is None or holds(where, d)], sort)
                    got, cursor, total = [], None, None
                    while True:
                        page = await search.structured(db, parse_structured({**body, "cursor": cursor},
                                                                            SCHEMA))
                        got += [h["id"] for h in page["hits"]]
                        total = page["total"] if total is None else total
                        cursor = page["cursor"]
                        if cursor is None:
                            break
                    assert got == expected, body
                    assert total == len(expected), body
        asyncio.run(check())

    def test_fields_project_each_hit(self, make_search):
        async def check():
            async with make_search() as search:
                db = f"q{uuid.uuid4().hex[:12]}"
                await search.apply_many([created(db, "i1", {"name": "Ann", "qty": 3, "ok": True})])
                page = await search.structured(db, parse_structured(
                    {"class_id": "Item", "fields": ["qty", "tags"]}, SCHEMA))
                assert page["hits"] == [{"id": "Item/i1", "class_id": "Item", "instance_id": "i1",
                                         "document": {"qty": 3}}]
        asyncio.run(check())
