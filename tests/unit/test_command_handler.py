"""The command handler's logic with fakes for every port (no servers): a command
applied, a duplicate, a stale one, a domain rejection, a transient failure retried,
exhaustion to the dead-letter queue."""
from typing import Any

import pytest

from spice.domain.messages import CommandType, database_aggregate, new_command
from spice.handlers.commands import HANDLER, CommandHandler, Origin
from spice.stores.errors import StoreUnavailable
from spice.stores.event_store import InMemoryEventStore
from tests.unit.fakes import FakeGraph, FakeRegistry, FakeStatus

ORIGIN = Origin("database_commands", 0, 7)


class World:
    def __init__(self, graph_failures: int = 0, max_attempts: int = 4) -> None:
        self.store, self.registry = InMemoryEventStore(), FakeRegistry()
        self.graph, self.status = FakeGraph(graph_failures), FakeStatus()
        self.letters: list[tuple[str, dict[str, Any]]] = []

        async def dead_letter(topic: str, body: dict[str, Any]) -> None:
            self.letters.append((topic, body))

        self.handler = CommandHandler(self.store, self.registry, self.graph,  # type: ignore[arg-type]
                                      self.status, dead_letter, max_attempts=max_attempts,
                                      retry_base=0.001, gap_wait=0.01)

    async def accepted(self, name: str = "shop", command: CommandType = CommandType.CREATE_DATABASE):
        """A command as the API stores it: appended with the aggregate's next sequence."""
        envelope = new_command(command, database_aggregate(name), {"name": name})
        return await self.store.append(envelope, allocate=True)

    def events(self, command_id: str) -> list[str]:
        return [e.event_type for e in self.store.by_id.values()
                if e.kind == "domain" and e.metadata.get("command_id") == command_id]


async def test_a_command_is_applied_once_and_reported():
    world = World()
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    assert world.events(command.command_id) == ["DATABASE_CREATED"]
    assert world.graph.databases == {"shop"}
    assert world.registry.rows[(HANDLER, command.event_id)]["status"] == "done"
    assert world.status.docs[command.command_id]["status"] == "COMPLETED"
    assert world.status.docs[command.command_id]["db"] == "shop"


async def test_a_duplicate_delivery_changes_nothing():
    world = World()
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    applied, history = list(world.graph.applied), list(world.status.docs[command.command_id]["history"])
    await world.handler.process(command, ORIGIN)
    assert world.graph.applied == applied
    assert world.events(command.command_id) == ["DATABASE_CREATED"]
    assert world.status.docs[command.command_id]["history"] == history


async def test_a_stale_command_is_skipped_and_failed():
    world = World()
    command = await world.accepted()
    world.registry.last[(HANDLER, command.aggregate_id)] = 5  # the aggregate moved on
    await world.handler.process(command, ORIGIN)
    assert world.events(command.command_id) == [] and world.graph.applied == []
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "FAILED" and doc["error"]["code"] == "sequence_mismatch"
    assert world.registry.rows[(HANDLER, command.event_id)]["status"] == "skipped_stale"


async def test_a_domain_rejection_is_recorded_as_an_event_and_a_failure():
    world = World()
    world.graph.databases.add("shop")
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    assert world.events(command.command_id) == ["COMMAND_FAILED"]
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "FAILED" and doc["error"]["code"] == "already_exists"
    row = world.registry.rows[(HANDLER, command.event_id)]
    assert row["status"] == "done" and "already exists" in row["error"]
    assert world.letters == []


async def test_a_transient_failure_is_retried_until_it_succeeds():
    world = World(graph_failures=2)
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    assert world.graph.databases == {"shop"}
    assert world.events(command.command_id) == ["DATABASE_CREATED"]  # one event, not three
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "COMPLETED" and doc["history"].count("RETRYING") == 2
    assert world.registry.rows[(HANDLER, command.event_id)]["attempt"] == 3


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_exhausted_attempts_go_to_the_dead_letter_queue(max_attempts):
    world = World(graph_failures=100, max_attempts=max_attempts)
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    [(topic, letter)] = world.letters
    assert topic == "database_commands_dlq" and letter["attempts"] == max_attempts
    assert letter["envelope"]["event_id"] == command.event_id and letter["offset"] == 7
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "FAILED" and doc["error"]["code"] == "exhausted"
    assert "COMMAND_FAILED" in world.events(command.command_id)
    assert world.registry.rows[(HANDLER, command.event_id)]["status"] == "failed"
    assert world.graph.databases == set()


async def test_no_success_event_for_values_no_store_could_take():
    """A command that reached the worker with a value the stores cannot hold (produced
    at topic level past the intake, say) is refused before any success event."""
    world = World()
    envelope = new_command(CommandType.CREATE_DATABASE, database_aggregate("shop"),
                           {"name": "shop", "label": "nul\x00inside"})
    command = await world.store.append(envelope, allocate=True)
    await world.handler.process(command, ORIGIN)
    assert world.events(command.command_id) == ["COMMAND_FAILED"]
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "FAILED" and doc["error"]["code"] == "invalid"
    assert "NUL" in doc["error"]["message"] and world.graph.databases == set()


async def test_a_zombie_that_decides_after_another_worker_applied_its_command_adds_nothing():
    """A worker paused past its lease resumes a command another worker has applied since:
    its decision meets the command's own effect ("already exists"). No COMMAND_FAILED
    event, no FAILED after COMPLETED (CI, the frozen-worker scenario: 42 such)."""
    world = World()
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)  # the worker that took it over
    assert world.status.docs[command.command_id]["status"] == "COMPLETED"
    await world.handler._apply(command, 1)  # the zombie, thawed mid-command
    assert world.events(command.command_id) == ["DATABASE_CREATED"]
    doc = world.status.docs[command.command_id]
    assert doc["status"] == "COMPLETED"
    assert "FAILED" not in doc["history"]


class FlakyGiveBack(FakeRegistry):
    """A registry whose first `refusals` give-backs fail, as they do while PostgreSQL
    drops connections."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals, self.give_backs = refusals, 0

    async def mark_failed_many(self, handler: str, event_ids: list[str], error: str) -> None:
        self.give_backs += 1
        if self.give_backs <= self.refusals:
            raise StoreUnavailable("registry", "connection was closed")
        await super().mark_failed_many(handler, event_ids, error)


@pytest.mark.parametrize("refusals", [0, 2])
async def test_a_failed_attempt_gives_its_claim_back_even_past_a_refusal(refusals):
    """Else the retry meets the worker's own live lease (IN_PROGRESS) and waits it out;
    the fake registry's claim_when_free asserts it never does."""
    world = World(graph_failures=1)
    world.registry = world.handler.registry = FlakyGiveBack(refusals)
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    assert world.registry.give_backs == refusals + 1
    assert world.registry.rows[(HANDLER, command.event_id)]["status"] == "done"
    assert world.status.docs[command.command_id]["status"] == "COMPLETED"


@pytest.mark.parametrize("status_kept", [True, False])
async def test_a_done_command_delivered_after_its_registry_row_was_pruned_keeps_its_outcome(status_kept):
    """Retention deletes finished rows (spice/stores/registry.py prune_finished); the
    aggregate's version stays, so a late copy is stale: it is reported by what its
    recorded events say, never as FAILED, and changes nothing."""
    world = World()
    command = await world.accepted()
    await world.handler.process(command, ORIGIN)
    del world.registry.rows[(HANDLER, command.event_id)]
    if not status_kept:
        del world.status.docs[command.command_id]  # expired meanwhile
    applied = list(world.graph.applied)
    await world.handler.process(command, ORIGIN)
    assert world.graph.applied == applied
    assert world.events(command.command_id) == ["DATABASE_CREATED"]
    assert world.status.docs[command.command_id]["status"] == "COMPLETED"
