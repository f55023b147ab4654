"""Credentials of the local stack: generated once per run directory, kept in files of
mode 600 under <run dir>/secrets, read by every process that talks to the stack.

The stack runs with credentials as production would (a non-superuser PostgreSQL
role, Redis `requirepass`, Kafka SASL/SCRAM, signed SeaweedFS access): any other
local process has nothing to connect with but these files.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def local_secret(run_dir: Path, name: str) -> str:
    """The secret `name`, made on first use. Several processes may ask at once: the
    file is created exclusively, and whoever loses the race reads the winner's."""
    path = run_dir / "secrets" / name
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    value = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _read(path: Path) -> str:
    for _ in range(50):  # a file just created by another process may still be empty
        value = path.read_text().strip()
        if value:
            return value
        import time

        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: remove it to have it made again")
