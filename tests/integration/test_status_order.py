"""Steps of one command come from several producers (an API process records PENDING
without waiting; workers record the rest), so they reach Redis in any order. A late
PENDING, even after the outcome, goes first in the history, once, and brings the
command's type and database (which decide who may see the status)."""
import uuid

from spice.stores.status import CommandStatus


async def test_a_late_pending_fills_in_type_and_database_once(runtime):
    status = runtime.status
    command_id = str(uuid.uuid4())
    await status.update(command_id, CommandStatus.PROCESSING, "claimed", progress=0.0)
    await status.update(command_id, CommandStatus.COMPLETED, "completed", progress=100.0)
    for _ in range(2):  # the second is a replay: recorded once
        await status.update(command_id, CommandStatus.PENDING, "accepted and stored",
                            command_type="CREATE_INSTANCE", db="shop", aggregate_id="shop:Item:i1")
    doc = await status.get(command_id)
    assert doc["status"] == "COMPLETED"
    assert (doc["command_type"], doc["db"], doc["aggregate_id"]) == \
        ("CREATE_INSTANCE", "shop", "shop:Item:i1")
    assert [step["status"] for step in doc["history"]] == ["PENDING", "PROCESSING", "COMPLETED"]
