"""Unstick a partition whose head message was lost inside the worker.

Our commit rule (spice/faust_fixes.py) never commits past an unacknowledged head
message. If Faust fetched that message and then dropped it without handing it to
an agent (seen after broker outages and rebalances), nothing will ever ack it: the
partition's committed offset stays put while later messages are processed, and a
restart would redeliver everything since. The sweeper re-sends the envelope, so the
command is not lost, but the commit stays stuck.

So, every CHECK_INTERVAL seconds: a partition whose committed offset is owed (later
offsets acked), whose head message nobody holds (not among the consumer's unacked,
in-flight messages) and that looked the same at the previous check, is sought back
to its committed offset. The messages after it come again too; the registry makes
those duplicates no-ops.
"""
from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

from spice.agents.forever import survived
from spice.app import app
from spice.observability import REWOUND
from spice.topics import COMMAND_TOPICS, EVENT_TOPICS

log = logging.getLogger(__name__)
CHECK_INTERVAL = 15.0
WATCHED = frozenset([*COMMAND_TOPICS, *EVENT_TOPICS])


def stuck_heads(consumer: Any, topics: frozenset[str] = WATCHED) -> dict[Any, int]:
    """Partitions (TP → committed offset) whose head message is owed and held by nobody."""
    held = {(m.tp, m.offset) for m in list(consumer._unacked_messages)}
    out = {}
    for tp, acked in list(consumer._acked.items()):
        if tp.topic not in topics or not acked:
            continue
        committed = consumer._committed_offset.get(tp)
        if committed is None or min(acked) <= committed or consumer._gap[tp].overlaps(committed):
            continue
        if (tp, committed) not in held:
            out[tp] = committed
    return out


def idle_with_work(consumer: Any, ends: dict[Any, int],
                   topics: frozenset[str] = WATCHED) -> dict[Any, tuple[Any, ...]]:
    """Partitions with messages past their committed offset and none of them held by
    the worker: TP → (committed, read offset, acked) to compare at the next check."""
    held = {m.tp for m in list(consumer._unacked_messages)}
    out = {}
    for tp, end in ends.items():
        committed = consumer._committed_offset.get(tp)
        if tp.topic not in topics or committed is None or end is None or end <= committed:
            continue
        if tp not in held:
            out[tp] = (committed, consumer._read_offset.get(tp), len(consumer._acked.get(tp, ())))
    return out


class Watchdog:
    def __init__(self) -> None:
        self._suspects: dict[Any, int] = {}
        self._idle: dict[Any, tuple[Any, ...]] = {}

    async def check(self, consumer: Any) -> list[Any]:
        """Seek back the partitions stuck at the same head for two checks in a row, and
        those with work waiting that the worker neither holds nor moved on since the
        last check (a partition Faust stopped fetching: after a rebalance, one paused
        while its stream buffer was full can stay paused)."""
        now = stuck_heads(consumer)
        rewind = {tp: now[tp] for tp, offset in now.items() if self._suspects.get(tp) == offset}
        self._suspects = {tp: offset for tp, offset in now.items() if tp not in rewind}
        assigned = consumer.assignment()
        watched = [tp for tp in assigned if tp.topic in WATCHED]
        if watched and hasattr(consumer, "highwaters"):
            idle = idle_with_work(consumer, dict(await consumer.highwaters(*watched)))
            for tp, state in idle.items():
                if self._idle.get(tp) == state:
                    rewind.setdefault(tp, state[0])
            self._idle = {tp: state for tp, state in idle.items() if tp not in rewind}
        # Faust's own TP type: highwaters() keys are aiokafka's TopicPartition, equal as
        # tuples, but Faust asserts the type of what it resumes (that assertion crashed
        # a worker after a Kafka outage).
        rewind = {TP(tp.topic, tp.partition): offset for tp, offset in rewind.items()}
        for tp, offset in rewind.items():
            if tp not in assigned:
                continue
            log.warning("%s[%s]: message %s is owed and nothing is processing it; "
                        "fetching again from there", tp.topic, tp.partition, offset)
            await consumer.seek(tp, offset)
            consumer.resume_partitions([tp])
            consumer._buffered_partitions.discard(tp)
            REWOUND.inc(tp.topic)
        return list(rewind)


watchdog = Watchdog()


async def check_safely(consumer: Any) -> None:
    # An exception in a Faust timer stops the whole worker: the watchdog is a safety
    # net and must never be what brings it down.
    try:
        await watchdog.check(consumer)
    except Exception as error:  # noqa: BLE001
        survived("partition watchdog", error)


@app.timer(CHECK_INTERVAL)
async def unstick_partitions() -> None:
    await check_safely(app.consumer)
