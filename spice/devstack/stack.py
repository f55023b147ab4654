"""`spice stack up|down|status`: the local stack, idempotent, stopping only what it started."""
from __future__ import annotations

from spice.devstack.base import Server, say
from spice.devstack.kafka import KafkaServer
from spice.devstack.postgres import PostgresServer
from spice.devstack.redis import RedisServer
from spice.devstack.seaweedfs import SeaweedServer
from spice.settings import Settings, get_settings

SERVERS = (PostgresServer, RedisServer, SeaweedServer, KafkaServer)


def servers(settings: Settings | None = None) -> list[Server]:
    settings = settings or get_settings()
    return [cls(settings) for cls in SERVERS]


def up(settings: Settings | None = None) -> None:
    for server in servers(settings):
        say(f"{server.name}: {server.up()}")


def down(settings: Settings | None = None) -> None:
    for server in reversed(servers(settings)):
        say(f"{server.name}: {server.down()}")


def status(settings: Settings | None = None) -> dict[str, str]:
    return {server.name: server.status() for server in servers(settings)}
