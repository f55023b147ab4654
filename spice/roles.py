"""Which modules a process registers on the app, by role (docs/roles.md).

Faust's autodiscovery imports them when the worker starts (`SpiceApp` passes
`modules_for` as its `autodiscover`): nothing is registered by importing spice.app,
and an API process never imports the workers' agents, tables or timers.
"""
from __future__ import annotations

# Agents, tables, the publisher and the timers: what applies commands.
WORKER_MODULES = (
    "spice.agents.commands",
    "spice.agents.publisher_task",
    "spice.agents.watchdog",
    "spice.tables.status",
)
# Every process: the HTTP API and the loop-lag meter.
COMMON_MODULES = (
    "spice.agents.loop_lag",
    "spice.web.routes",
)


def modules_for(role: str) -> list[str]:
    return [*(WORKER_MODULES if role == "worker" else ()), *COMMON_MODULES]
