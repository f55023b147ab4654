"""The status table's expiry walks the table a slice per tick (spice/tables/status.py)."""
from __future__ import annotations

from typing import Any

import pytest

from spice.tables import status
from spice.tables.changelog import ChangelogWrites
from tests.unit.test_changelog_writes import FakeTable

pytestmark = pytest.mark.unit
NOW = 1_000_000.0


def doc(state: str | None, age: float) -> dict[str, Any]:
    return {"status": state, "updated_at": NOW - age, "_p": 3}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> FakeTable:
    fake = FakeTable("spice-command-status-changelog")
    monkeypatch.setattr(status, "command_status", fake)
    monkeypatch.setattr(status, "expiry", status._ExpiryPass())
    monkeypatch.setattr(status, "EXPIRY_SLICE", 1_000)
    return fake


def tick(cutoff: float) -> tuple[int, int]:
    """One expiry tick: (documents expired, changelog records written)."""
    writes = ChangelogWrites()
    expired = status.expire_finished(cutoff, writes, status.expiry.next_slice(), {3})
    return expired, len(writes)


def test_a_tick_looks_at_one_slice_and_a_pass_expires_every_stale_document(table: FakeTable) -> None:
    for n in range(2_500):
        # old finished, old with only PROJECTED steps, recent finished, old unfinished
        state, age = [("COMPLETED", 600), (None, 600), ("FAILED", 10), ("PROCESSING", 600)][n % 4]
        table.data[f"c{n}".encode()] = doc(state, age)
    ticks = [tick(NOW - 300) for _ in range(3)]
    assert all(expired <= status.EXPIRY_SLICE for expired, _ in ticks)
    assert sum(expired for expired, _ in ticks) == 1_250  # every COMPLETED and None, 600 s old
    assert [written for _, written in ticks] == [expired for expired, _ in ticks]  # tombstones
    assert len(table.data) == 1_250
    assert {d["status"] for d in table.data.values()} == {"FAILED", "PROCESSING"}


def test_a_key_that_arrives_during_a_pass_is_seen_by_the_next(table: FakeTable) -> None:
    for n in range(1_500):
        table.data[f"c{n}".encode()] = doc("COMPLETED", 10)
    assert tick(NOW - 300) == (0, 0)  # first slice of the first pass
    table.data[b"late"] = doc("COMPLETED", 600)
    assert tick(NOW - 300) == (0, 0)  # the rest of the pass: its keys were listed before
    # A new pass lists the table again; "late" is the last key, in its second slice.
    assert [tick(NOW - 300), tick(NOW - 300)] == [(0, 0), (1, 1)]
    assert b"late" not in table.data


def test_the_standby_copy_of_another_workers_partition_is_left_to_its_owner(table: FakeTable) -> None:
    table.data[b"mine"] = doc("COMPLETED", 600)
    table.data[b"theirs"] = {**doc("COMPLETED", 600), "_p": 4}  # a standby key
    assert tick(NOW - 300) == (1, 1)
    assert set(table.data) == {b"theirs"}
