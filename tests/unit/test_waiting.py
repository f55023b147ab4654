"""wait=projected needs both steps, whichever came first."""
import pytest

from spice.web.waiting import projected_or_failed

pytestmark = pytest.mark.unit


def test_projected_before_completed_is_not_done_yet():
    assert not projected_or_failed({"status": "PROCESSING", "projected": True})
    assert not projected_or_failed({"status": "COMPLETED", "projected": False})
    assert projected_or_failed({"status": "COMPLETED", "projected": True})
    assert projected_or_failed({"status": "FAILED"})
