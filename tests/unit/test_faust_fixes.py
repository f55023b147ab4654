"""The commit-offset fix for faust-streaming #606: never commit past an unacked head."""
import asyncio
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from spice import faust_fixes

pytestmark = pytest.mark.unit
TP = ("t", 0)


def consumer(committed, acked, gaps=()):
    faust_fixes.apply()
    c = SimpleNamespace()
    c._acked = defaultdict(list, {TP: sorted(acked)})
    c._acked_index = defaultdict(set, {TP: set(acked)})
    c._gap = defaultdict(IntervalTree)
    for begin, end in gaps:
        c._gap[TP].addi(begin, end)
    c._committed_offset = defaultdict(lambda: None, {TP: committed})
    return SimpleNamespace(_new_offset=lambda tp: Consumer._new_offset(c, tp))


def test_an_unacked_head_message_is_never_committed_past():
    # 2585 is still being processed; 2586..2589 are done (the issue's own example).
    assert consumer(2585, [2586, 2587, 2588, 2589])._new_offset(TP) is None


def test_contiguous_acks_from_the_head_are_committed():
    assert consumer(2585, [2585, 2586, 2587])._new_offset(TP) == 2588


def test_a_known_gap_at_the_head_is_still_skipped():
    # 2585..2586 are transaction markers or compacted away: Faust recorded the gap.
    assert consumer(2585, [2587, 2588], gaps=[(2585, 2587)])._new_offset(TP) == 2589


def test_need_recovery_answers_as_faust_does() -> None:
    """The cheaper check agrees with Faust's own on every kind of state: partitions done,
    behind, without a highwater, without an offset yet."""
    import random
    from collections import Counter
    from types import SimpleNamespace

    from faust.tables.recovery import Recovery
    from faust.types import TP

    from spice.faust_fixes import _need_recovery

    original = Recovery.active_remaining
    rng = random.Random(7)
    for _ in range(500):
        tps = [TP(f"t{n % 3}", n) for n in range(rng.randint(0, 8))]
        highwaters = {tp: rng.choice([None, 0, 5, 10]) for tp in tps}
        offsets: Counter = Counter()
        for tp in tps:
            choice = rng.choice(["missing", "none", 0, 5, 10, 12])
            if choice == "none":
                offsets[tp] = None  # type: ignore[assignment]
            elif choice != "missing":
                offsets[tp] = choice
        state = SimpleNamespace(active_highwaters=highwaters, active_offsets=offsets)
        expected = any(v > 0 for v in original(state).values())  # type: ignore[arg-type]
        assert _need_recovery(state) is expected


async def test_the_stream_iterator_yields_to_the_loop_once_every_n_events() -> None:
    import faust._cython.streams as compiled_streams

    faust_fixes.apply()
    sleep = compiled_streams.sleep
    assert isinstance(sleep, faust_fixes._YieldNowAndThen)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns
    for _ in range(sleep.every * 3):
        await sleep(0)
    yielded = turns - before
    counter.cancel()
    # Faust's own sleep(0) would have given the other task a turn per event.
    assert 2 <= yielded <= 4
    assert await sleep(0, "value") == "value"


# The source of each faust-streaming function spice/faust_fixes.py replaces, as the
# fixes were checked against faust-streaming 0.15.3 (pinned in pyproject.toml). An
# upgrade that changes one fails here: read the new code, re-check the fix, update.
CHECKED_AGAINST = {
    "Consumer._new_offset": "1d2c7ea89a7ad4f1a216c1d51936e569162cd66bd56f889e13fd29c910b58eb0",
    "Consumer._drain_messages": "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "Recovery.need_recovery": "fd1dc345b5d5e12113adc510d40bc3d6594b2a9fb13e93f0fa8b761f5dd98600",
    "Recovery._slurp_changelogs": "7825c7e50f766d5ab0fd246b63420ea0dfcd732d005f1057cc9da656ff5d3967",
    "MemoryStore.on_recovery_completed":
        "a00bef343e139602606996e88809e62731a9113691ae678095266a52e0e0b013",
    "Recovery.on_rebalance": "aa4d997a1795ceae3880f98311b46935d9ae1a183a699b9a283bb4306bc8641f",
    "KafkaProducer._settings_extra": "a4c7bc41b63822236e4c9be1c49437d091f58c1b3a983eecabb7362a819aa8bd",
}


def test_the_patched_faust_internals_are_those_the_fixes_were_checked_against():
    import hashlib
    import inspect
    import re
    from pathlib import Path

    import faust

    pinned = re.search(r'"faust-streaming==([^"]+)"',
                       (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert pinned and faust.__version__ == pinned.group(1)
    found = {name: hashlib.sha256(inspect.getsource(function).encode()).hexdigest()
             for name, function in faust_fixes.PATCHED.items()}
    assert found == CHECKED_AGAINST


class _Table:
    def __init__(self, persisted: int | None = None) -> None:
        self.persisted = persisted

    def persisted_offset(self, tp):
        return self.persisted


def _recovery():
    from collections import Counter, defaultdict

    from faust.tables.recovery import Recovery
    faust_fixes.apply()
    recovery = SimpleNamespace(active_tps=set(), standby_tps=set(), active_offsets=Counter(),
                               standby_offsets=Counter(), actives_for_table=defaultdict(set),
                               standbys_for_table=defaultdict(set), tp_to_table={})
    for name in ("add_active", "add_standby", "_add"):
        setattr(recovery, name, getattr(Recovery, name).__get__(recovery))
    return recovery


async def _promote(monkeypatch, recovery, table, *tps):
    """Faust's rebalance making `tps` active here (as its add_active does), wrapped."""
    async def rebalance(self, assigned, revoked, newly_assigned, generation_id=0):
        for tp in tps:
            self.add_active(table, tp)

    monkeypatch.setattr(faust_fixes, "_on_rebalance", rebalance)
    await faust_fixes._own_writes_recovered(recovery, set(), set(), set())


async def test_a_promoted_standby_starts_its_recovery_where_the_standby_had_read_to(monkeypatch):
    from faust.types import TP
    table = _Table()
    recovery = _recovery()
    warm, cold = TP("c", 0), TP("c", 1)
    recovery.add_standby(table, warm)
    recovery.standby_offsets[warm] = 41_999  # read up to here as a standby
    await _promote(monkeypatch, recovery, table, warm, cold)
    assert recovery.active_offsets[warm] == 41_999
    assert recovery.active_offsets[cold] is None  # never a standby here: from the start
    assert recovery.actives_for_table[table] == {warm, cold}


async def test_a_persisted_offset_is_not_replaced_by_the_standbys(monkeypatch):
    from faust.types import TP
    tp = TP("c", 0)
    recovery = _recovery()
    recovery.standby_offsets[tp] = 10
    await _promote(monkeypatch, recovery, _Table(500), tp)
    assert recovery.active_offsets[tp] == 500


async def test_the_memory_store_keeps_standby_keys_and_drops_the_rest_after_recovery():
    from faust.stores.memory import Store
    from faust.types import TP
    faust_fixes.apply()
    store = SimpleNamespace(data={b"a": 1, b"s": 2, b"gone": 3, b"written": 4},
                            _key_partition={b"a": 0, b"s": 1, b"gone": 2})
    await Store.on_recovery_completed(store, {TP("c", 0)}, {TP("c", 1)})
    assert store.data == {b"a": 1, b"s": 2, b"written": 4}
    assert store._key_partition == {b"a": 0, b"s": 1}


async def test_partitions_owned_before_a_rebalance_start_after_what_is_in_memory(monkeypatch):
    from collections import Counter

    from faust.types import TP

    from spice.tables import changelog
    kept, handed, moved, new = TP("c", 0), TP("c", 1), TP("c", 2), TP("c", 3)

    async def rebalance(self, assigned, revoked, newly_assigned, generation_id=0):
        self.active_tps, self.standby_tps = {kept, new}, {handed}
        self.active_offsets = Counter({kept: 40, new: None})
        self.standby_offsets = Counter({handed: None})

    monkeypatch.setattr(faust_fixes, "_on_rebalance", rebalance)
    monkeypatch.setattr(changelog, "WRITTEN", {("c", 0): 50, ("c", 2): 60, ("c", 3): 70})
    recovery = SimpleNamespace(active_tps={kept, handed, moved},
                               active_offsets=Counter({kept: 40, handed: 30, moved: 20}))
    await faust_fixes._own_writes_recovered(recovery, set(), set(), set())
    assert recovery.active_offsets == {kept: 50, new: None}
    # handed to another worker and kept here as standby: read up to 30, nothing written since
    assert recovery.standby_offsets == {handed: 30}
    # `new` was written here in an earlier ownership, and someone else owned it since.
    assert changelog.WRITTEN == {}


def test_a_hole_is_fetched_again_once_and_a_hole_that_comes_back_is_a_gap(monkeypatch):
    from faust.types import TP
    now = [100.0]
    monkeypatch.setattr(faust_fixes.time, "monotonic", lambda: now[0])
    tp, refetch = TP("instance_commands", 1), faust_fixes._Refetch()
    assert refetch.hole(tp, 4848, 4865)  # seek back to 4848
    assert refetch.hole(tp, 4848, 4866)  # the rest of the stale fetch: skipped
    refetch.arrived(tp)  # 4848 came again: delivery goes on
    assert refetch.hole(tp, 4900, 4902)  # a later hole: fetched again too
    now[0] += faust_fixes.REFETCH_SECONDS + 0.1
    assert not refetch.hole(tp, 4900, 4902)  # the same hole after the refetch: a real gap


def test_a_fetch_past_undelivered_messages_is_sought_back_without_a_later_message(monkeypatch):
    from faust.types import TP
    now = [100.0]
    monkeypatch.setattr(faust_fixes.time, "monotonic", lambda: now[0])
    dropped, caught_up, fresh = (TP("instance_commands", 2), TP("instance_commands", 3),
                                 TP("instance_events", 0))
    read = {dropped: 9452, caught_up: 9300, fresh: None}
    positions = {dropped: 9577, caught_up: 9301, fresh: 12}
    # only the partition whose fetch went more than one past the last delivered offset
    assert faust_fixes._passed_over(positions, read) == {dropped: (9452, 9577)}
    refetch = faust_fixes._Refetch()
    assert refetch.stalled(dropped, 9452, 9577)  # seek back
    assert not refetch.stalled(dropped, 9452, 9577)  # the seek is under way: not again
    now[0] += faust_fixes.REFETCH_SECONDS + 0.1
    assert not refetch.stalled(dropped, 9452, 9577)  # the same hole after the refetch: a gap
    assert refetch.stalled(dropped, 9600, 9700)  # a later one is fetched again


def test_fetch_positions_are_read_for_held_unpaused_command_and_event_partitions():
    from faust.types import TP
    held, paused, other = TP("instance_commands", 0), TP("instance_events", 1), TP("x", 0)
    states = {held: SimpleNamespace(has_valid_position=True, position=7, paused=False),
              paused: SimpleNamespace(has_valid_position=True, position=9, paused=True),
              other: SimpleNamespace(has_valid_position=True, position=3, paused=False)}
    assignment = SimpleNamespace(state_value=states.get)
    aiokafka = SimpleNamespace(_subscription=SimpleNamespace(
        subscription=SimpleNamespace(assignment=assignment)))
    consumer = SimpleNamespace(_thread=SimpleNamespace(_ensure_consumer=lambda: aiokafka))
    unassigned = TP("instance_commands", 5)
    assert faust_fixes._fetch_positions(consumer, [held, paused, other, unassigned]) == {held: 7}
    assert faust_fixes._fetch_positions(SimpleNamespace(), [held]) == {}  # not started


async def test_recovery_wait_for_returns_a_queued_record_without_waiting():
    queue: asyncio.Queue = asyncio.Queue()
    queue.put_nowait("record")
    loop = asyncio.get_running_loop()
    tasks_before = len(asyncio.all_tasks(loop))
    assert await faust_fixes._RecoveryAsyncio().wait_for(queue.get(), timeout=5.0) == "record"
    assert len(asyncio.all_tasks(loop)) == tasks_before  # no task was made for it


async def test_recovery_wait_for_waits_for_a_record_and_times_out_as_asyncio_does():
    stand_in = faust_fixes._RecoveryAsyncio()
    queue: asyncio.Queue = asyncio.Queue()
    asyncio.get_running_loop().call_later(0.05, queue.put_nowait, "late")
    assert await stand_in.wait_for(queue.get(), timeout=5.0) == "late"
    with pytest.raises(stand_in.TimeoutError):
        await stand_in.wait_for(queue.get(), timeout=0.05)
    queue.put_nowait("next")
    assert queue.get_nowait() == "next"  # the get that timed out took nothing
