"""`spice keys create|revoke|list`, and the local admin key `spice run` prints."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from spice.settings import Settings, get_settings
from spice.stores.keys import ApiKey, KeyStore
from spice.stores.postgres import create_pool

T = TypeVar("T")


def parse_grants(values: list[str]) -> dict[str, str]:
    """`--grant shop=editor --grant '*=viewer'` → {"shop": "editor", "*": "viewer"}."""
    grants: dict[str, str] = {}
    for value in values:
        db, sep, role = value.partition("=")
        if not sep or not db or not role:
            raise RuntimeError(f"--grant '{value}' must look like DATABASE=ROLE (or '*=ROLE')")
        grants[db] = role
    return grants


async def _with_store(settings: Settings, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    pool = await create_pool(settings)
    try:
        return await work(KeyStore(pool))
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.action == "create":
        if not args.name:
            raise RuntimeError("keys create needs --name")
        if not args.grant:
            raise RuntimeError("keys create needs at least one --grant DATABASE=ROLE "
                               "('*=ROLE' for every database and the operators' views)")
        try:
            grants = parse_grants(args.grant)

            async def create(store: KeyStore) -> tuple[ApiKey, str]:
                return await store.create(args.name, grants, rate_per_second=args.rate)
            key, plaintext = asyncio.run(_with_store(settings, create))
        except ValueError as error:
            raise RuntimeError(str(error)) from None
        print(json.dumps({"key_id": key.key_id, "name": args.name, "grants": grants,
                          "key": plaintext, "note": "shown once: only its hash is stored"}, indent=2))
        return 0
    if args.action == "revoke":
        if not args.key_id:
            raise RuntimeError("keys revoke needs KEY_ID")

        async def revoke(store: KeyStore) -> bool:
            return await store.revoke(args.key_id)
        if not asyncio.run(_with_store(settings, revoke)):
            raise RuntimeError(f"no active key with id '{args.key_id}'")
        print(f"revoked {args.key_id}")
        return 0

    async def listing(store: KeyStore) -> list[ApiKey]:
        return list(await store.list())
    for key in asyncio.run(_with_store(settings, listing)):
        print(json.dumps({"key_id": key.key_id, "name": key.name, "grants": key.grants,
                          "rate_per_second": key.rate_per_second, "revoked": key.revoked}))
    return 0


def local_admin_key(settings: Settings) -> str:
    """The local stack's admin key: made once, kept in .run/admin-key (mode 600) so
    that every `make run` can print it; made again if the database lost it."""
    path = Path(settings.spice_run_dir) / "admin-key"

    async def ensure(store: KeyStore) -> str:
        if path.exists():
            existing = path.read_text().strip()
            if await store.verify(existing) is not None:
                return existing
        _, plaintext = await store.create("local-admin", {"*": "admin"})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(plaintext + "\n")
        return plaintext
    return asyncio.run(_with_store(settings, ensure))
