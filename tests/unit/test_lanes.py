import asyncio

from spice.agents.lanes import Batches, KeyedLanes


async def test_a_lone_item_goes_at_once_and_later_ones_wait_for_the_batch_before():
    ran: list[list[int]] = []
    gate = asyncio.Event()

    async def run(batch: list[int]) -> None:
        ran.append(batch)
        if len(ran) == 1:
            await gate.wait()

    batches: Batches[int] = Batches(run, max_batch=3, max_pending=100)
    await batches.put(0)
    await asyncio.sleep(0.01)
    assert ran == [[0]]  # no linger for a lone item
    for i in range(1, 8):
        await batches.put(i)
    await asyncio.sleep(0.01)
    assert ran == [[0]]  # one batch at a time
    gate.set()
    await batches.drain()
    assert ran == [[0], [1, 2, 3], [4, 5, 6], [7]]  # in order, at most max_batch each


async def test_put_waits_while_max_pending_items_are_queued():
    gate = asyncio.Event()

    async def run(batch: list[int]) -> None:
        await gate.wait()

    batches: Batches[int] = Batches(run, max_batch=2, max_pending=2)
    await batches.put(0)
    await asyncio.sleep(0.01)  # batch [0] is running
    await batches.put(1)
    await batches.put(2)
    blocked = asyncio.create_task(batches.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    gate.set()
    await blocked
    await batches.drain()


async def test_a_failing_batch_does_not_stop_the_next():
    ran: list[list[int]] = []

    async def run(batch: list[int]) -> None:
        ran.append(batch)
        if batch == [0]:
            raise RuntimeError("boom")

    batches: Batches[int] = Batches(run, max_batch=10)
    await batches.put(0)
    await asyncio.sleep(0.01)
    await batches.put(1)
    await batches.drain()
    assert ran == [[0], [1]]


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
    assert lanes.busy("a") and not lanes.busy("c")
    await lanes.drain()
    assert not lanes.busy("a")
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
