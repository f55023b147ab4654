"""`spice audit verify`: recompute each database's audit hash chain from the event store.

For every link, in chain order: the envelope is read from its batch in S3 (the source
of truth), its stored line hashed, the link recomputed from the previous one, and both
compared with what the audit index recorded. The first difference is reported with its
database, position, event id, batch and reason:
- `missing from the event store`: the index names an event its batch does not hold;
- `rewritten in the event store`: the stored line no longer hashes to what was recorded;
- `index altered`: the recorded link is not the one the stored lines give;
- `position missing`: a link was removed from the index;
- `head does not match`: the chain ends before (or after) the head it published.
Batches are fetched `prefetch` at a time, each once per page of links.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from spice.stores.audit import AuditIndex, chain_link

PAGE = 5000
EVENT_ID_PREFIX = b'{"event_id":"'


@dataclass
class ChainBreak:
    db: str
    position: int
    event_id: str | None
    batch_key: str | None
    reason: str


@dataclass
class ChainReport:
    db: str
    checked: int = 0
    head_position: int = 0
    seconds: float = 0.0
    broken: ChainBreak | None = None
    batches: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.broken is None
        out["events_per_second"] = round(self.checked / self.seconds) if self.seconds else None
        return out


def lines_by_event(body: bytes) -> dict[str, bytes]:
    """Each stored line of a batch by its event id (envelopes start with their id, so
    most lines need no JSON parse)."""
    found: dict[str, bytes] = {}
    for line in body.splitlines():
        if line.startswith(EVENT_ID_PREFIX):
            end = line.find(b'"', len(EVENT_ID_PREFIX))
            if end > 0:
                found[line[len(EVENT_ID_PREFIX):end].decode()] = line
                continue
        try:
            found[str(orjson.loads(line)["event_id"])] = line
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return found


async def verify_chain(runtime: Any, db: str, *, prefetch: int = 16) -> ChainReport:
    audit: AuditIndex = runtime.audit
    store = runtime.event_store
    report = ChainReport(db)
    started = time.perf_counter()
    head = await audit.head(db)
    report.head_position = head["chain_position"] if head else 0
    link, position = "", 0
    gate = asyncio.Semaphore(prefetch)

    async def fetch(bucket: str, key: str) -> tuple[str, dict[str, bytes] | None]:
        async with gate:
            try:
                return key, lines_by_event(await store.signed.get(bucket, key))
            except Exception:  # noqa: BLE001 - a batch that cannot be read breaks the chain
                return key, None

    while report.broken is None:
        rows = await audit.chain_rows(db, position, PAGE)
        if not rows:
            break
        wanted = {(r["bucket"] or store.bucket, r["batch_key"]) for r in rows}
        batches = dict(await asyncio.gather(*(fetch(b, k) for b, k in wanted)))
        report.batches += len(batches)
        for row in rows:
            expected_position = position + 1
            if row["chain_position"] != expected_position:
                report.broken = ChainBreak(db, expected_position, None, None, "position missing")
                break
            lines = batches.get(row["batch_key"])
            line = lines.get(row["event_id"]) if lines is not None else None
            where = (db, expected_position, row["event_id"], row["batch_key"])
            if line is None:
                report.broken = ChainBreak(*where, "missing from the event store")
                break
            if hashlib.sha256(line).hexdigest() != row["line_hash"]:
                report.broken = ChainBreak(*where, "rewritten in the event store")
                break
            link = chain_link(link, row["line_hash"])
            if link != row["chain_hash"]:
                report.broken = ChainBreak(*where, "index altered")
                break
            position = expected_position
            report.checked += 1
    if report.broken is None and head is not None and (
            head["chain_position"] != position or head["chain_hash"] != link):
        report.broken = ChainBreak(db, position + 1, None, None, "head does not match")
    report.seconds = time.perf_counter() - started
    return report


async def verify_all(runtime: Any, db: str | None = None) -> dict[str, Any]:
    names = [db] if db is not None else await runtime.audit.chained_databases()
    reports = [await verify_chain(runtime, name) for name in names]
    checked = sum(r.checked for r in reports)
    seconds = sum(r.seconds for r in reports)
    first = next((r.broken for r in reports if r.broken is not None), None)
    return {"ok": first is None, "databases": len(reports), "events": checked,
            "seconds": round(seconds, 3),
            "events_per_second": round(checked / seconds) if seconds else None,
            "first_break": asdict(first) if first else None,
            "chains": [r.to_dict() for r in reports]}
