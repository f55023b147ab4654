"""API keys in PostgreSQL: only a hash of each key is stored.

A key reads `spk_<key_id>_<secret>`: the id finds the row, the SHA-256 of the
whole key is compared in constant time. The secret is 256 random bits, so a
fast hash is enough (no dictionary to attack, unlike a password); it also keeps
every request's check at one cached lookup.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

ROLES = ("viewer", "editor", "admin")
KEY_FORMAT = re.compile(r"^spk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")
CACHE_SECONDS = 5.0  # a revoked key stops working within this long on every worker
CACHE_ENTRIES = 10_000  # keys remembered, known and unknown: made-up keys cannot grow it


class NameTaken(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    grants: dict[str, str]
    rate_per_second: float | None = None
    created_at: float = 0.0
    revoked: bool = False


def new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    return key_id, f"spk_{key_id}_{secrets.token_urlsafe(32)}"


def bootstrap_name(key: str) -> str:
    """A bootstrap key's name carries its id: another bootstrap key later is another name."""
    match = KEY_FORMAT.match(key)
    return f"bootstrap-admin-{match.group(1)}" if match else "bootstrap-admin"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_rate(rate_per_second: float | None) -> float | None:
    if rate_per_second is not None and not 0 < rate_per_second <= 1_000_000:
        raise ValueError("rate must be a number of requests per second above 0 "
                         "(leave it out for the server's default)")
    return rate_per_second


def check_grants(grants: dict[str, str]) -> dict[str, str]:
    for db, role in grants.items():
        if role not in ROLES:
            raise ValueError(f"role for '{db}' must be one of {', '.join(ROLES)}, not '{role}'")
    if not grants:
        raise ValueError("a key needs at least one grant (database or '*' → role)")
    return grants


@dataclass
class KeyStore:
    pool: asyncpg.Pool
    # Least recently used first; an entry expires CACHE_SECONDS after it was read.
    _cache: OrderedDict[str, tuple[float, ApiKey | None]] = field(default_factory=OrderedDict)

    async def create(self, name: str, grants: dict[str, str], *,
                     rate_per_second: float | None = None, key: str | None = None) -> tuple[ApiKey, str]:
        """A new key; its plaintext is returned once and never stored. Names are unique
        across every key ever made, revoked ones included: the actor `key:<name>` in
        the event store always means one key."""
        check_grants(grants)
        check_rate(rate_per_second)
        if key is None:
            key_id, key = new_key()
        else:
            match = KEY_FORMAT.match(key)
            if not match:
                raise ValueError("a key must look like spk_<12 hex>_<20+ url-safe characters>")
            key_id = match.group(1)
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO api_keys (key_id, name, key_hash, grants, rate_per_second) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO UPDATE SET name = $2, "
                    "key_hash = $3, grants = $4, rate_per_second = $5, revoked_at = NULL",
                    key_id, name, key_hash(key), json.dumps(grants), rate_per_second)
        except asyncpg.UniqueViolationError:
            raise NameTaken(f"a key named '{name}' exists (names are never reused: "
                            "the actor of its writes must mean one key)") from None
        return ApiKey(key_id, name, grants, rate_per_second, time.time()), key

    async def verify(self, key: str) -> ApiKey | None:
        match = KEY_FORMAT.match(key)
        if not match:
            return None
        digest = key_hash(key)
        cached = self._cache.get(digest)
        if cached and cached[0] > time.monotonic():
            self._cache.move_to_end(digest)
            return cached[1]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
                                      match.group(1))
        found = None
        if row is not None and hmac.compare_digest(row["key_hash"], digest):
            found = _key(row)
        self._cache[digest] = (time.monotonic() + CACHE_SECONDS, found)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return found

    async def revoke(self, key_id: str) -> bool:
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id)
        return status.endswith(" 1")

    async def list(self) -> list[ApiKey]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at")
        return [_key(r) for r in rows]


def _key(row: Any) -> ApiKey:
    return ApiKey(row["key_id"], row["name"], json.loads(row["grants"]), row["rate_per_second"],
                  row["created_at"].timestamp(), row["revoked_at"] is not None)
