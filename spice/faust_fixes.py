"""A fix for a faust-streaming bug that loses messages; applied when spice.app loads.

faust-streaming issue #606 (open; PR #707 proposes a fix): `Consumer._new_offset`
treats one unacked offset at the head of a partition as a compaction gap and
commits past it. Our agents finish messages out of order, and Faust may also drop
fetched-but-undelivered messages at a rebalance; either way the committed offset can
jump over a message that was never processed, and it is then never delivered again.
The reliability suite and the projection benchmark both caught it (an event acked
by nobody, committed past).

The fix: when the lowest acked offset is above the committed one and no known gap
(compaction, transaction markers: Faust records those as it fetches) covers the
committed offset, the head message is still owed: commit nothing yet.
"""
from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer

_original = Consumer._new_offset


def _new_offset(self: Any, tp: Any) -> int | None:
    acked = self._acked[tp]
    committed = self._committed_offset[tp]
    if acked and committed is not None and min(acked) > committed \
            and not self._gap[tp].overlaps(committed):
        return None
    result: int | None = _original(self, tp)
    return result


def apply() -> None:
    if Consumer._new_offset is not _new_offset:
        Consumer._new_offset = _new_offset  # type: ignore[method-assign]
