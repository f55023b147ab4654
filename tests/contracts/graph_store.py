"""The GraphStore contract: the PostgreSQL and TerminusDB adapters pass these same tests."""
import asyncio
import uuid

from spice.domain.envelope import Envelope, now
from spice.domain.messages import AggregateType, EventType


def event(kind: EventType, data: dict, seq: int, aggregate: AggregateType) -> Envelope:
    event_id = str(uuid.uuid4())
    return Envelope(event_id=event_id, event_type=kind.value, aggregate_type=aggregate.value,
                    aggregate_id=f"a-{event_id}", occurred_at=now(), data=data,
                    metadata={"kind": "domain", "command_id": str(uuid.uuid4()),
                              "kafka_topic": "x"}, sequence_number=seq)


def db_name() -> str:
    return f"g{uuid.uuid4().hex[:12]}"


PERSON = {"id": "Person", "label": {"en": "Person", "ko": "사람"},
          "properties": [{"name": "name", "type": "string", "required": True},
                         {"name": "age", "type": "integer"}],
          "relationships": [{"predicate": "knows", "target": "Person", "cardinality": "n:m"}]}


class GraphStoreContract:
    async def _db(self, graph) -> str:
        name = db_name()
        await graph.apply(event(EventType.DATABASE_CREATED, {"name": name}, 1, AggregateType.DATABASE))
        return name

    async def test_databases(self, graph):
        name = await self._db(graph)
        assert await graph.database_exists(name)
        assert name in [d["name"] for d in await graph.list_databases()]
        await graph.apply(event(EventType.DATABASE_DELETED, {"name": name}, 2, AggregateType.DATABASE))
        assert not await graph.database_exists(name)

    async def test_classes_round_trip(self, graph):
        db = await self._db(graph)
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                {"db": db, "class_id": "Person", "class": PERSON}, 1,
                                AggregateType.ONTOLOGY_CLASS))
        assert (await graph.get_class(db, "Person"))["label"] == PERSON["label"]
        schema = await graph.schema(db)
        assert [p.name for p in schema.classes["Person"].properties] == ["name", "age"]
        updated = {**PERSON, "label": "P2"}
        await graph.apply(event(EventType.ONTOLOGY_CLASS_UPDATED,
                                {"db": db, "class_id": "Person", "class": updated}, 2,
                                AggregateType.ONTOLOGY_CLASS))
        assert (await graph.get_class(db, "Person"))["label"] == "P2"
        assert [c["id"] for c in await graph.list_classes(db)] == ["Person"]
        await graph.apply(event(EventType.ONTOLOGY_CLASS_DELETED,
                                {"db": db, "class_id": "Person"}, 3, AggregateType.ONTOLOGY_CLASS))
        assert await graph.get_class(db, "Person") is None

    async def test_instances_round_trip_and_paging(self, graph):
        db = await self._db(graph)
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                {"db": db, "class_id": "Person", "class": PERSON}, 1,
                                AggregateType.ONTOLOGY_CLASS))
        for i in range(5):
            await graph.apply(event(EventType.INSTANCE_CREATED, {
                "db": db, "class_id": "Person", "instance_id": f"p{i}",
                "data": {"name": f"n{i}", "age": i, "knows": ["p0"]}}, 1, AggregateType.INSTANCE))
        assert await graph.get_instance(db, "Person", "p3") == {"name": "n3", "age": 3, "knows": ["p0"]}
        assert await graph.instance_counts(db) == {"Person": 5}
        assert await graph.existing_instances(db, "Person", ["p1", "zz"]) == {"p1"}
        first = await graph.list_instances(db, "Person", limit=2)
        rest = await graph.list_instances(db, "Person", limit=10, after=first[-1]["instance_id"])
        assert [i["instance_id"] for i in first + rest] == [f"p{i}" for i in range(5)]
        await graph.apply(event(EventType.INSTANCE_UPDATED, {
            "db": db, "class_id": "Person", "instance_id": "p1", "data": {"name": "new"}}, 2,
            AggregateType.INSTANCE))
        assert await graph.get_instance(db, "Person", "p1") == {"name": "new"}
        await graph.apply(event(EventType.INSTANCE_DELETED, {
            "db": db, "class_id": "Person", "instance_id": "p1"}, 3, AggregateType.INSTANCE))
        assert await graph.get_instance(db, "Person", "p1") is None

    async def test_reapplying_an_event_changes_nothing(self, graph):
        db = await self._db(graph)
        created = event(EventType.ONTOLOGY_CLASS_CREATED,
                        {"db": db, "class_id": "Person", "class": PERSON}, 1, AggregateType.ONTOLOGY_CLASS)
        updated = event(EventType.ONTOLOGY_CLASS_UPDATED,
                        {"db": db, "class_id": "Person", "class": {**PERSON, "label": "v2"}}, 2,
                        AggregateType.ONTOLOGY_CLASS)
        for e in (created, updated, created, updated):
            await graph.apply(e)
        assert (await graph.get_class(db, "Person"))["label"] == "v2"

    async def test_values_come_back_as_written(self, graph):
        db = await self._db(graph)
        thing = {"id": "Thing", "label": "Thing", "properties": [
            {"name": "count", "type": "integer"}, {"name": "ratio", "type": "decimal"},
            {"name": "ok", "type": "boolean"}, {"name": "born", "type": "date"},
            {"name": "tags", "type": "array<string>"}, {"name": "price", "type": "money"},
            {"name": "name", "type": "string"}],
            "relationships": []}
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                {"db": db, "class_id": "Thing", "class": thing}, 1,
                                AggregateType.ONTOLOGY_CLASS))
        data = {"count": 3, "ratio": 2.5, "ok": False, "born": "2024-02-29",
                "tags": ["one", "two", "one"], "price": {"amount": 12.5, "currency": "EUR"},
                "name": "Ünïcode 名前 Foo/bar"}
        await graph.apply(event(EventType.INSTANCE_CREATED, {
            "db": db, "class_id": "Thing", "instance_id": "t:1", "data": data}, 1, AggregateType.INSTANCE))
        assert await graph.get_instance(db, "Thing", "t:1") == data
        listed = await graph.list_instances(db, "Thing")
        assert listed == [{"instance_id": "t:1", "class_id": "Thing", "data": data}]
        assert isinstance(listed[0]["data"]["count"], int)
        assert await graph.get_class(db, "Thing") == thing

    async def test_concurrent_replays_of_odd_ids_never_regress(self, graph):
        """Many writes at once (an adapter may read their current versions in one
        request): ids with spaces, slashes, percent signs and non-ASCII letters are
        matched exactly, and an older create replayed with them changes nothing."""
        db = await self._db(graph)
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                {"db": db, "class_id": "Person", "class": PERSON}, 1,
                                AggregateType.ONTOLOGY_CLASS))
        ids = [f"a b/ü%2F?#:{n}" for n in range(6)] + ["plain"]

        def write(kind: EventType, iid: str, name: str, seq: int) -> Envelope:
            return event(kind, {"db": db, "class_id": "Person", "instance_id": iid,
                                "data": {"name": name}}, seq, AggregateType.INSTANCE)

        await asyncio.gather(*[graph.apply(write(EventType.INSTANCE_CREATED, i, "v1", 1)) for i in ids])
        await asyncio.gather(*[graph.apply(write(EventType.INSTANCE_UPDATED, i, "v2", 2)) for i in ids])
        await asyncio.gather(*[graph.apply(write(EventType.INSTANCE_CREATED, i, "old", 1)) for i in ids])
        for iid in ids:
            assert await graph.get_instance(db, "Person", iid) == {"name": "v2"}, iid

    async def test_an_older_event_never_regresses_a_document(self, graph):
        db = await self._db(graph)
        await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                {"db": db, "class_id": "Person", "class": PERSON}, 1,
                                AggregateType.ONTOLOGY_CLASS))
        new = event(EventType.INSTANCE_UPDATED, {"db": db, "class_id": "Person", "instance_id": "p",
                                                 "data": {"name": "new"}}, 2, AggregateType.INSTANCE)
        old = event(EventType.INSTANCE_CREATED, {"db": db, "class_id": "Person", "instance_id": "p",
                                                 "data": {"name": "old"}}, 1, AggregateType.INSTANCE)
        await graph.apply(new)
        await graph.apply(old)
        assert await graph.get_instance(db, "Person", "p") == {"name": "new"}
        stale_delete = event(EventType.INSTANCE_DELETED, {"db": db, "class_id": "Person",
                                                          "instance_id": "p"}, 1, AggregateType.INSTANCE)
        await graph.apply(stale_delete)
        assert await graph.get_instance(db, "Person", "p") == {"name": "new"}
        older_class = event(EventType.ONTOLOGY_CLASS_UPDATED, {"db": db, "class_id": "Person",
                            "class": {**PERSON, "label": "old"}}, 0, AggregateType.ONTOLOGY_CLASS)
        await graph.apply(older_class)
        assert (await graph.get_class(db, "Person"))["label"] == PERSON["label"]

    async def test_relationships_reach_instances_of_subclasses(self, graph):
        db = await self._db(graph)
        employee = {"id": "Employee", "label": "Employee", "parents": ["Person"],
                    "properties": [], "relationships": []}
        team = {"id": "Team", "label": "Team", "properties": [], "relationships": [
            {"predicate": "members", "target": "Person", "cardinality": "n:m"},
            {"predicate": "lead", "target": "Person", "cardinality": "n:1"}]}
        for n, cls in enumerate((PERSON, employee, team), start=1):
            await graph.apply(event(EventType.ONTOLOGY_CLASS_CREATED,
                                    {"db": db, "class_id": cls["id"], "class": cls}, n,
                                    AggregateType.ONTOLOGY_CLASS))
        await graph.apply(event(EventType.INSTANCE_CREATED, {
            "db": db, "class_id": "Person", "instance_id": "p1", "data": {"name": "P"}}, 1,
            AggregateType.INSTANCE))
        await graph.apply(event(EventType.INSTANCE_CREATED, {
            "db": db, "class_id": "Employee", "instance_id": "e1", "data": {"name": "E"}}, 1,
            AggregateType.INSTANCE))
        data = {"members": ["e1", "p1", "e1"], "lead": "e1"}
        await graph.apply(event(EventType.INSTANCE_CREATED, {
            "db": db, "class_id": "Team", "instance_id": "t1", "data": data}, 1, AggregateType.INSTANCE))
        assert await graph.get_instance(db, "Team", "t1") == data
        assert await graph.instance_counts(db) == {"Employee": 1, "Person": 1, "Team": 1}
        assert await graph.get_instance(db, "Person", "e1") is None  # an Employee's own class
