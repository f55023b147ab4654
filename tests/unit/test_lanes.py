import asyncio

from spice.agents.lanes import KeyedLanes


async def test_same_key_in_order_other_keys_in_parallel():
    lanes = KeyedLanes(max_in_flight=8)
    log: list[tuple[str, int]] = []
    running = {"max": 0, "now": 0}

    def work(key: str, i: int, delay: float):
        async def run():
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
            await asyncio.sleep(delay)
            log.append((key, i))
            running["now"] -= 1
        return run

    for i in range(5):
        await lanes.submit("a", work("a", i, 0.01 * (5 - i)))
        await lanes.submit(f"b{i}", work(f"b{i}", i, 0.01))
    await lanes.drain()
    assert [i for k, i in log if k == "a"] == [0, 1, 2, 3, 4]
    assert running["max"] > 1


async def test_back_pressure_limits_in_flight():
    lanes = KeyedLanes(max_in_flight=2)
    gate = asyncio.Event()
    for i in range(2):
        await lanes.submit(str(i), gate.wait)
    blocked = asyncio.create_task(lanes.submit("x", gate.wait))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    gate.set()
    await blocked
    await lanes.drain()


async def test_acks_go_out_in_offset_order_per_partition():
    from types import SimpleNamespace

    from spice.agents.lanes import InOrderAcks

    acked = []

    async def ack(event):
        acked.append((event.message.partition, event.message.offset))

    acks = InOrderAcks(ack)

    def event(partition, offset):
        return SimpleNamespace(message=SimpleNamespace(topic="t", partition=partition, offset=offset))

    entries = {(p, o): acks.started(event(p, o)) for p in (0, 1) for o in range(3)}
    await acks.finished(entries[(0, 2)])
    await acks.finished(entries[(0, 1)])
    await acks.finished(entries[(1, 0)])
    assert acked == [(1, 0)]  # partition 0 waits for its head, offset 0
    await acks.finished(entries[(0, 0)])
    assert acked == [(1, 0), (0, 0), (0, 1), (0, 2)]
    assert acks.held == 2
