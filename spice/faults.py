"""Crash points for the reliability tests: SPICE_CRASH_AT=<point> makes the process
kill itself (SIGKILL, no clean-up) the first time it reaches that point.

Off unless the variable is set; the points name the gaps between effects that
a crash must never turn into a lost or doubled command.
"""
from __future__ import annotations

import os
import signal

POINTS = ("after_claim", "after_event_append", "after_graph_write", "before_mark_done",
          "publisher_after_send")


def crash_point(name: str) -> None:
    if os.environ.get("SPICE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
