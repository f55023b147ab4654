"""Who is calling, and may they: API keys and JWT bearer tokens, roles per database.

Roles rank viewer < editor < admin; a grant names a database or '*' (all).
- read   (GET on a database's data, search, BFF reads): viewer
- write  (commands on classes and instances): editor
- admin  (create or delete a database): admin
- ops    (metrics, status views, the dashboard, DLQ): a '*' grant of any role
- authenticated (command status by id, database list): any valid credential
- public (health, OpenAPI document): nobody needs a credential (probes, tooling)
System databases (reserved names, or a leading '_') take a '*' admin for anything.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt

from spice.domain import ids
from spice.settings import Settings
from spice.stores.keys import ROLES, KeyStore
from spice.web.errors import HttpError

RANK = {role: n for n, role in enumerate(ROLES, start=1)}


class Access(enum.Enum):
    PUBLIC = "public"
    AUTHENTICATED = "authenticated"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    OPS = "ops"


NEEDED_ROLE = {Access.READ: "viewer", Access.WRITE: "editor", Access.ADMIN: "admin"}
DEFAULT_ACCESS = {"get": Access.READ, "post": Access.WRITE, "put": Access.WRITE,
                  "delete": Access.WRITE}


@dataclass(frozen=True)
class Principal:
    name: str  # recorded as the actor of every command: key:<name> or jwt:<sub>
    grants: dict[str, str] = field(default_factory=dict)
    rate_per_second: float | None = None
    via: str = "api_key"
    scope: str = ""  # rate bucket and idempotency scope: key:<key id> or jwt:<sub>

    @property
    def bucket(self) -> str:
        return self.scope or self.name

    def role_for(self, db: str | None) -> int:
        ranks = [RANK.get(self.grants.get("*", ""), 0)]
        if db is not None:
            ranks.append(RANK.get(self.grants.get(db, ""), 0))
        return max(ranks)

    def may(self, access: Access, db: str | None) -> bool:
        if access in (Access.PUBLIC, Access.AUTHENTICATED):
            return True
        if access is Access.OPS:
            return "*" in self.grants
        needed = RANK[NEEDED_ROLE[access]]
        if db is not None and is_system_database(db):
            return self.role_for(None) >= RANK["admin"]
        if db is None:  # a write whose database is not in the path: a '*' grant decides
            return self.role_for(None) >= needed
        return self.role_for(db) >= needed

    def can_see(self, db: str | None) -> bool:
        """A record that names no database (a command produced at topic level whose
        status lost its PENDING step) is for '*' grants only: fail closed."""
        if db is None:
            return "*" in self.grants
        return self.may(Access.READ, db)


ANONYMOUS = Principal("anonymous", {"*": "admin"}, via="none")  # only when auth is off


def is_system_database(db: str) -> bool:
    return db in ids.RESERVED_DATABASES or db.startswith("_")


@lru_cache(maxsize=4)
def _public_key(value: str) -> str:
    """PEM text, or a file read once (not on every request)."""
    if value.strip().startswith("-----BEGIN"):
        return value
    return Path(value).read_text()


def verify_jwt(token: str, settings: Settings) -> Principal:
    """Claims: sub (the actor), roles ({database or '*': role}); exp, aud, iss as set."""
    if settings.auth_jwt_algorithm == "HS256":
        secret = settings.auth_jwt_secret
        key: Any = secret.get_secret_value() if secret is not None else None
    else:
        key = _public_key(settings.auth_jwt_public_key) if settings.auth_jwt_public_key else None
    if not key:
        raise HttpError(401, "bearer tokens are not configured on this server (AUTH_JWT_SECRET or "
                        "AUTH_JWT_PUBLIC_KEY)", code="unauthenticated")
    try:
        claims = jwt.decode(token, key, algorithms=[settings.auth_jwt_algorithm],
                            audience=settings.auth_jwt_audience, issuer=settings.auth_jwt_issuer,
                            options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as error:
        raise HttpError(401, f"invalid bearer token: {error}", code="unauthenticated",
                        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    roles = claims.get("roles") or {}
    if not isinstance(roles, dict) or any(r not in RANK for r in roles.values()):
        raise HttpError(401, "the token's 'roles' claim must map databases to viewer|editor|admin",
                        code="unauthenticated")
    # Its own namespace: a token whose sub is "key:admin" must not pass for that key.
    name = f"jwt:{claims['sub']}"
    return Principal(name, dict(roles), via="jwt", scope=name)


async def authenticate(headers: Any, keys: KeyStore, settings: Settings) -> Principal:
    """X-API-Key: spk_..., or Authorization: Bearer <API key or JWT>."""
    credential = headers.get("X-API-Key")
    authorization = headers.get("Authorization", "")
    if credential is None and authorization.lower().startswith("bearer "):
        credential = authorization[7:].strip()
    if not credential:
        raise HttpError(401, "authentication required: send X-API-Key or Authorization: Bearer",
                        code="unauthenticated", headers={"WWW-Authenticate": "Bearer"})
    if credential.startswith("spk_"):
        key = await keys.verify(credential)
        if key is None:
            raise HttpError(401, "unknown or revoked API key", code="unauthenticated",
                            headers={"WWW-Authenticate": "Bearer"})
        return Principal(f"key:{key.name}", key.grants, key.rate_per_second,
                         scope=f"key:{key.key_id}")
    return verify_jwt(credential, settings)


def authorize(principal: Principal, access: Access, db: str | None) -> None:
    if not principal.may(access, db):
        where = f" on database '{db}'" if db else ""
        need = {Access.OPS: "a '*' grant"}.get(access, f"role {NEEDED_ROLE.get(access, '')}")
        raise HttpError(403, f"{principal.name} may not {access.value}{where}: needs {need}",
                        code="forbidden")
