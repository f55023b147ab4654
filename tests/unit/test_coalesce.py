"""The Coalescer: concurrent calls share one batch; same keys never do; a failing batch
is retried item by item so only the guilty caller sees its error."""
import asyncio

import pytest

from spice.stores.coalesce import Coalescer

pytestmark = pytest.mark.unit


def doubling(seen):
    async def many(items):
        seen.append(list(items))
        if any(i < 0 for i in items):
            raise ValueError("negative in batch")
        return [i * 2 for i in items]

    async def one(item):
        if item < 0:
            raise ValueError(f"negative {item}")
        return item * 2

    return many, one


async def test_concurrent_calls_share_one_batch_and_get_their_own_answers():
    seen = []
    c = Coalescer(*doubling(seen), key=lambda i: i)
    assert await asyncio.gather(*[c(i) for i in range(10)]) == [i * 2 for i in range(10)]
    assert seen == [list(range(10))] and c.batches == 1


async def test_the_same_key_waits_for_the_next_batch():
    seen = []
    c = Coalescer(*doubling(seen), key=lambda i: i % 3)
    await asyncio.gather(*[c(i) for i in range(6)])
    assert seen == [[0, 1, 2], [3, 4, 5]]


async def test_a_failing_batch_is_retried_alone_and_only_the_culprit_fails():
    seen = []
    c = Coalescer(*doubling(seen), key=lambda i: i)
    results = await asyncio.gather(c(1), c(-5), c(3), return_exceptions=True)
    assert results[0] == 2 and results[2] == 6
    assert isinstance(results[1], ValueError) and "negative -5" in str(results[1])


async def test_batches_are_bounded():
    seen = []
    c = Coalescer(*doubling(seen), key=lambda i: i, max_batch=4)
    await asyncio.gather(*[c(i) for i in range(10)])
    assert [len(b) for b in seen] == [4, 4, 2]


async def test_shared_reads_send_one_item_per_key_and_answer_every_caller():
    seen = []
    c = Coalescer(*doubling(seen), key=lambda i: i, share=True)
    assert await asyncio.gather(c(4), c(4), c(5), c(4)) == [8, 8, 10, 8]
    assert seen == [[4, 5]]
