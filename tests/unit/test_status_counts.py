"""The status table's counts by state and command type follow each document, in
whatever order its steps arrive (they come from several producers)."""
from collections import Counter
from itertools import permutations

import pytest

from spice.tables.status import count_deltas, counted_as, merge

pytestmark = pytest.mark.unit

STEPS = [
    {"status": "PENDING", "command_type": "CREATE_INSTANCE", "db": "shop"},  # the API's
    {"status": "PROCESSING", "progress": 0.0},  # the worker's: no command type
    {"status": "COMPLETED", "progress": 100.0},
    {"status": "PROJECTED", "projected": True},
]


def counts_after(order: list[dict]) -> dict[bytes, int]:
    totals: Counter[bytes] = Counter()
    doc = None
    for at, step in enumerate(order):
        change = {"command_id": "c1", "timestamp": 1000.0 + at, **step}
        after = merge(doc, change)
        totals.update(count_deltas(3, counted_as(doc), counted_as(after)))
        doc = after
    return {key: n for key, n in totals.items() if n}


def test_every_order_ends_counted_once_as_completed_of_its_type():
    for order in permutations(STEPS):
        assert counts_after(list(order)) == {b"3|COMPLETED|CREATE_INSTANCE": 1}, \
            [step["status"] for step in order]


def test_a_step_before_the_typed_one_moves_out_of_unknown():
    was, now = ("PROCESSING", "UNKNOWN"), ("PROCESSING", "CREATE_INSTANCE")
    assert count_deltas(0, was, now) == Counter({b"0|PROCESSING|UNKNOWN": -1,
                                                 b"0|PROCESSING|CREATE_INSTANCE": 1})
    assert count_deltas(0, now, now) == Counter()
    assert count_deltas(0, (None, "UNKNOWN"), (None, "UNKNOWN")) == Counter()  # only PROJECTED
