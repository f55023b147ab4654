"""Generated hostile JSON (hypothesis) at every write route and at the command topics,
while another database writes well-formed commands (issue #23).

Checked: no 5xx; every well-formed write of the other database completes; every
hostile command that was accepted (2xx) reaches a terminal status and is readable
from the event store; the publisher and sweeper still work afterwards."""
import asyncio
import json
import time
import uuid

from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from spice.domain.messages import CommandType, instance_aggregate, new_command
from spice.kafka_client import kafka_options
from tests.integration.test_api_end_to_end import create_db, unique_db
from tests.integration.test_hostile_input import make_class, settled

V1 = "/api/v1"
EXAMPLES = 60

nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "nul\x00inside", "\u202e", "a" * 120_000,
                     "(a+)+$", "' OR 1=1 --", "<script>alert(1)</script>", "\uffff"]))
nasty_number = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63, -(2**63) - 1, 10**40]))
leaf = st.one_of(st.none(), st.booleans(), nasty_number, nasty_text)
values = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)), max_leaves=12)
deep = st.integers(min_value=20, max_value=400).map(lambda n: "[" * n + "1" + "]" * n)


def body_of(value) -> bytes:
    """JSON as a hostile client may send it: NaN and lone surrogates included."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def shapes(db: str):
    """(method, path, body) of every write route with a hostile value in it."""
    item = f"{V1}/instances/{db}/async/Item"
    return st.one_of(
        st.builds(lambda v: ("post", f"{item}/create", {"instance_id": "h1", "data": {"name": v}}), values),
        st.builds(lambda v: ("post", f"{item}/create", {"instance_id": v, "data": {}}), values),
        st.builds(lambda v: ("post", f"{item}/h1/update", {"data": {"name": v}}), values),
        st.builds(lambda v: ("post", f"{item}/bulk-create", {"items": [{"instance_id": "b", "data": v}]}),
                  values),
        st.builds(lambda v: ("post", f"{V1}/ontology/{db}/async/create",
                             {"id": "H", "properties": [{"name": "p", "type": "string", "default": v}]}),
                  values),
        st.builds(lambda v: ("post", f"{V1}/ontology/{db}/async/create", {"id": "H", "label": v}), values),
        st.builds(lambda v: ("put", f"{V1}/ontology/{db}/async/Item", {"id": "Item", "description": v}),
                  values),
        st.builds(lambda v: ("post", f"{V1}/database/create", {"name": v}), values),
        st.builds(lambda v: ("post", f"{V1}/bff/{db}/instances/Item", {"data": {"name": v}}), values),
        st.builds(lambda v: ("post", f"{item}/create", {"instance_id": "h2", "data": {"name": v}}),
                  values),
    ).map(lambda shape: (shape[0], shape[1], body_of(shape[2])))


def draw(strategy, n: int) -> list:
    """n examples from hypothesis's generator (no shrinking: the servers are shared)."""
    drawn = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        drawn.append(example)

    collect()
    return drawn


async def test_hostile_json_everywhere_costs_another_tenant_nothing(
        worker, http, runtime, local_stack):
    attacker, victim = unique_db(), unique_db()
    await make_class(http, worker, attacker)
    await make_class(http, worker, victim)
    requests = draw(shapes(attacker), EXAMPLES) + [
        ("post", f"{V1}/instances/{attacker}/async/Item/create",
         b'{"instance_id": "d", "data": {"name": ' + d.encode() + b"}}")
        for d in draw(deep, 10)]
    accepted: list[str] = []
    answers: list[tuple[int, str, str]] = []

    async def hostile():
        for method, path, body in requests:
            async with http.request(method, worker.url + path, data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                text = await r.text()
                answers.append((r.status, path, text[:300]))
                if r.status == 202:
                    accepted.append(json.loads(text)["command_id"])

    async def well_formed():
        ids = []
        for i in range(60):
            async with http.post(f"{worker.url}{V1}/instances/{victim}/async/Item/create",
                                 json={"instance_id": f"v{i}", "data": {"name": f"v{i}"}}) as r:
                assert r.status == 202, await r.text()
                ids.append((await r.json())["command_id"])
        return ids

    async def at_topic_level():
        producer = AIOKafkaProducer(**kafka_options(local_stack))
        await producer.start()
        try:
            for n, value in enumerate(draw(values, 20)):
                command = new_command(
                    CommandType.CREATE_INSTANCE, instance_aggregate(attacker, "Item", f"k{n}"),
                    {"db": attacker, "class_id": "Item", "instance_id": f"k{n}", "data": {"name": "x"}})
                raw = command.to_json().replace(b'"data":{"name":"x"}',
                                                b'"data":{"name":' + body_of(value) + b"}")
                await producer.send_and_wait("instance_commands", raw,
                                             key=command.aggregate_id.encode())
        finally:
            await producer.stop()

    _, victims, _ = await asyncio.gather(hostile(), well_formed(), at_topic_level())
    assert not [a for a in answers if a[0] >= 500], [a for a in answers if a[0] >= 500][:5]
    for command_id in victims:
        assert (await settled(http, worker, command_id))["status"] == "COMPLETED"
    for command_id in accepted:
        await settled(http, worker, command_id, timeout=60)
        assert await runtime.event_store.get(command_id) is not None
    # The publisher still publishes: a new command completes.
    started = time.monotonic()
    async with http.post(f"{worker.url}{V1}/instances/{victim}/async/Item/create",
                         json={"instance_id": f"after-{uuid.uuid4().hex[:6]}",
                               "data": {"name": "after"}}) as r:
        command_id = (await r.json())["command_id"]
    assert (await settled(http, worker, command_id))["status"] == "COMPLETED"
    assert time.monotonic() - started < 20
    async with http.get(f"{worker.url}/metrics") as r:
        metrics = await r.text()
    assert "spice_background_errors_total" not in metrics or all(
        float(line.split()[-1]) == 0 for line in metrics.splitlines()
        if line.startswith("spice_background_errors_total{"))
    await create_db(http, worker, unique_db())  # and the worker still serves every route
