"""Scenario 4: another producer at topic level sends duplicates, replays and garbage
(wrong schema, invalid UTF-8, a huge payload); garbage goes to the DLQ, the agents
keep running, and the books balance."""
import json

from aiokafka import AIOKafkaProducer

from spice import dlq
from spice.domain.messages import CommandType, instance_aggregate, new_command
from spice.kafka_client import kafka_options
from tests.reliability.books import balance, wait_terminal
from tests.reliability.test_crash_points import make_class

DUPLICATES = 3
INSTANCE_COMMANDS_TOPIC = "instance_commands"


async def test_duplicates_replays_and_garbage_at_topic_level(worker, runtime, http, local_stack):
    db = await make_class(http, worker)
    depth_before = {t: len(await dlq.read(local_stack, (t,), limit=10_000))
                    for t in ("instance_commands_dlq",)}
    commands, accepted = [], {}
    for n in range(200):
        data = {"name": f"item {n}", "n": n}
        command = new_command(CommandType.CREATE_INSTANCE, instance_aggregate(db, "Item", f"i{n}"),
                              {"db": db, "class_id": "Item", "instance_id": f"i{n}", "data": data})
        commands.append(command)
        accepted[command.command_id] = (f"i{n}", data)
    garbage = [b'{"event_id": "not-an-envelope"}', b"\xff\xfe\x00 not utf-8 \xc3\x28",
               b"[" + b"1," * 450_000 + b"1]"]  # ~900 KB: under the broker's message limit
    producer = AIOKafkaProducer(**kafka_options(local_stack),
                                max_request_size=2 << 20)
    await producer.start()
    try:
        for value in garbage:
            await producer.send_and_wait(INSTANCE_COMMANDS_TOPIC, value, key=b"garbage")
        for _ in range(DUPLICATES):  # each command three times, interleaved
            for command in commands:
                await producer.send(INSTANCE_COMMANDS_TOPIC, command.to_json(),
                                    key=command.aggregate_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    recovery = await wait_terminal(runtime, list(accepted), timeout=180)
    # A replay after everything is done changes nothing either.
    producer = AIOKafkaProducer(**kafka_options(local_stack))
    await producer.start()
    try:
        for command in commands[:50]:
            await producer.send(INSTANCE_COMMANDS_TOPIC, command.to_json(),
                                key=command.aggregate_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    books = await balance(runtime, "topic-level duplicates x3, replay, garbage", db, "Item",
                          accepted, recovery)
    books.assert_balanced()
    letters = await dlq.read(local_stack, ("instance_commands_dlq",), limit=10_000)
    new = letters[depth_before["instance_commands_dlq"]:]
    assert len(new) == len(garbage), [json.dumps(x.summary())[:200] for x in new]
    async with http.get(f"{worker.url}/health") as r:
        assert r.status == 200  # the agents kept running
