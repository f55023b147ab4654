"""The SIGUSR2 memory report: the top allocation sites when tracemalloc traces, and how
to turn it on when it does not."""
import tracemalloc

from spice.memory_report import top_allocations


def test_without_tracing_it_says_how_to_turn_it_on():
    assert not tracemalloc.is_tracing()
    assert "PYTHONTRACEMALLOC" in top_allocations()[0]


def test_with_tracing_it_names_the_largest_site_first():
    tracemalloc.start()
    try:
        hoard = [bytearray(1024) for _ in range(2000)]  # about 2 MiB from one line
        lines = top_allocations(3)
    finally:
        tracemalloc.stop()
    assert len(hoard) == 2000
    assert lines[0].startswith("traced ")
    assert "test_memory_report.py" in lines[1], lines
    assert 2 <= len(lines) <= 4
