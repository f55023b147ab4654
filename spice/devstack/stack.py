"""`spice stack up|down|status`: the local stack, idempotent, stopping only what it started."""
from __future__ import annotations

from collections.abc import Callable

from spice.devstack.base import Server, say
from spice.devstack.elasticsearch import ElasticsearchServer
from spice.devstack.kafka import kafka
from spice.devstack.postgres import PostgresServer
from spice.devstack.process import ManagedProcess
from spice.devstack.redis import RedisServer
from spice.devstack.seaweedfs import SeaweedServer
from spice.devstack.terminusdb import TerminusServer
from spice.settings import Settings, get_settings

SERVERS: tuple[Callable[[Settings], Server], ...] = (PostgresServer, RedisServer, SeaweedServer, kafka)
EXTRAS: dict[str, type[Server]] = {"terminusdb": TerminusServer, "elasticsearch": ElasticsearchServer}


def servers(settings: Settings | None = None, extras: list[str] | None = None) -> list[Server]:
    """The default four, then the extras asked for (SPICE_STACK_EXTRAS, the backends
    configured, and `extras`)."""
    settings = settings or get_settings()
    chosen = sorted({*settings.stack_extras, *(extras or [])})
    unknown = set(chosen) - set(EXTRAS)
    if unknown:
        raise ValueError(f"unknown server(s) {sorted(unknown)}; known: {', '.join(EXTRAS)}")
    return [cls(settings) for cls in SERVERS] + [EXTRAS[name](settings) for name in chosen]


def up(settings: Settings | None = None, extras: list[str] | None = None) -> None:
    for server in servers(settings, extras):
        say(f"{server.name}: {server.up()}")


def down(settings: Settings | None = None) -> None:
    """Stops every server of the stack that runs, extras included, and the nodes of any
    Kafka cluster started from this run directory under other settings."""
    settings = settings or get_settings()
    running = servers(settings, list(EXTRAS))
    for server in reversed(running):
        say(f"{server.name}: {server.down()}")
    pids = settings.spice_run_dir / "pids"
    for pid_file in sorted(pids.glob("kafka-*.pid")):
        node = ManagedProcess(pid_file.stem, pids)
        if node.stop():
            say(f"{node.name}: stopped")


def status(settings: Settings | None = None) -> dict[str, str]:
    """The default four and the configured extras; another extra only if it runs."""
    configured = {server.name for server in servers(settings)}
    return {server.name: server.status() for server in servers(settings, list(EXTRAS))
            if server.name in configured or server.process.pid() is not None}
