"""Revert: bring a class or an instance back to an earlier version.

A revert is an ordinary write of the earlier state (an update, or a create or delete
when the aggregate exists at only one of the two versions), recorded with
`revert_to` in its command and events: history is never rewritten, and the write
goes through every check any write does (a class version whose relationships name a
class that is gone is refused with that reason). Async (202) or sync, with
`expected_seq` / `If-Match` like any write.
"""
from __future__ import annotations

from typing import Any

from faust.web import Request

from spice.domain import ids
from spice.domain.messages import CommandType, class_aggregate, instance_aggregate
from spice.domain.parsing import parse
from spice.web.bodies import Revert
from spice.web.history import point_state
from spice.web.http import ApiView, HttpError, json_body
from spice.web.writes import Write, WriteView, _expected_seq


async def _target(view: ApiView, request: Request, db: str, aggregate_id: str
                  ) -> tuple[dict[str, Any] | None, int, int | None]:
    body = await json_body(request)
    expected = _expected_seq(request, body)
    to_version = parse(Revert, body).to_version
    state, _ = await point_state(view.runtime, db, aggregate_id, to_version, "to_version")
    return state, to_version, expected


async def revert_class(view: ApiView, request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    aggregate = class_aggregate(db, class_id)
    target, version, expected = await _target(view, request, db, aggregate)
    current = await view.runtime.graph.get_class(db, class_id)
    revert = {"revert_to": version}
    if target is None and current is None:
        raise HttpError(409, f"class '{class_id}' did not exist at version {version} and does "
                        "not exist now: nothing to revert", field="to_version")
    if target is None:
        return Write(CommandType.DELETE_ONTOLOGY_CLASS, aggregate,
                     {"db": db, "class_id": class_id}, db, expected, revert)
    if current is None:
        return Write(CommandType.CREATE_ONTOLOGY_CLASS, aggregate, {"db": db, "class": target},
                     db, expected, revert)
    return Write(CommandType.UPDATE_ONTOLOGY_CLASS, aggregate,
                 {"db": db, "class_id": class_id, "class": target}, db, expected, revert)


async def revert_instance(view: ApiView, request: Request, match: dict[str, str]) -> Write:
    db, class_id = ids.check_database_name(match["db"]), ids.check_class_id(match["class_id"])
    instance_id = ids.check_instance_id(match["instance_id"])
    aggregate = instance_aggregate(db, class_id, instance_id)
    target, version, expected = await _target(view, request, db, aggregate)
    current = await view.runtime.graph.get_instance(db, class_id, instance_id)
    key = {"db": db, "class_id": class_id, "instance_id": instance_id}
    revert = {"revert_to": version}
    if target is None and current is None:
        raise HttpError(409, f"instance '{instance_id}' did not exist at version {version} and "
                        "does not exist now: nothing to revert", field="to_version")
    if target is None:
        return Write(CommandType.DELETE_INSTANCE, aggregate, key, db, expected, revert)
    command = CommandType.CREATE_INSTANCE if current is None else CommandType.UPDATE_INSTANCE
    return Write(command, aggregate, {**key, "data": target}, db, expected, revert)


class RevertView(WriteView):
    """POST a revert; `revert` is the function that builds its write."""

    revert = staticmethod(revert_class)

    def allowed_methods(self) -> set[str]:
        return {"POST"}

    async def build(self, request: Request, match: dict[str, str], method: str) -> Write:
        return await self.revert(self, request, match)


class ClassRevert(RevertView):
    pass


class ClassRevertSync(RevertView):
    sync = True


class InstanceRevert(RevertView):
    revert = staticmethod(revert_instance)


class InstanceRevertSync(RevertView):
    revert = staticmethod(revert_instance)
    sync = True
