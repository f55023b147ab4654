"""wait=projected needs both steps, whichever came first."""
import pytest

from spice.web.waiting import projected_or_failed

pytestmark = pytest.mark.unit


def test_projected_before_completed_is_not_done_yet():
    assert not projected_or_failed({"status": "PROCESSING", "projected": True})
    assert not projected_or_failed({"status": "COMPLETED", "projected": False})
    assert projected_or_failed({"status": "COMPLETED", "projected": True})
    assert projected_or_failed({"status": "FAILED"})


def test_a_sync_timeout_counts_from_the_request_arrival():
    import time

    from spice.web.waiting import LAST_LOOK_SECONDS, remaining

    now = time.monotonic()
    assert 4.9 < remaining(5.0, now - 0.05) <= 4.95  # storing took 50 ms: 4.95 s are left
    assert remaining(5.0, now - 7.0) == LAST_LOOK_SECONDS  # storing alone took longer
