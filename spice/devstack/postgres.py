"""PostgreSQL 15 from Debian's packages, run as the `postgres` system user."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from spice.devstack.base import Server, apt_install, say

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer(Server):
    name = "postgres"

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        self.process.stop_signal = signal.SIGINT
        if os.geteuid() == 0 and not self._reachable_by_postgres(self.home.parent):
            # The server runs as `postgres`, which must be able to reach its data
            # directory; a checkout under a private folder (mode 700) is out of reach.
            digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
            self.home = Path(f"/var/tmp/spice-postgres-{digest}")

    @staticmethod
    def _reachable_by_postgres(directory: Path) -> bool:
        directory.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run(["test", "-x", str(directory)], user="postgres", group="postgres",
                               extra_groups=[], capture_output=True)
        return probe.returncode == 0

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists():
            apt_install("postgresql-15", "postgresql-contrib-15")
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def _initdb(self) -> None:
        say(f"initdb {self.data_dir}")
        self.home.mkdir(parents=True, exist_ok=True)
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            shutil.chown(self.home, user, user)
        with tempfile.NamedTemporaryFile("w", delete=False) as pw:
            pw.write(self.settings.postgres_password + "\n")
        os.chmod(pw.name, 0o644)
        try:
            argv = [
                str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.settings.postgres_user,
                f"--pwfile={pw.name}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
            ]
            subprocess.run(argv, check=True, capture_output=True, user=user, group=user)
        finally:
            os.unlink(pw.name)

    def launch(self) -> None:
        self.process.start(
            [
                str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                "-c", "max_connections=200", "-c", "shared_buffers=256MB",
                # Statistics soon after a table starts to fill: plans cached by
                # long-lived connections while the tables were empty (PL/pgSQL
                # functions, prepared statements) are replanned only once ANALYZE has
                # run. With the default 1 min, the first minute of a fresh stack ran
                # the event store's reservation at 7 ms instead of ~1 ms.
                "-c", "autovacuum_naptime=10s",
            ],
            cwd=self.home,
            user="postgres" if os.geteuid() == 0 else None,
        )

    def _psql(self, db: str, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             self.settings.postgres_user, "-d", db, "-tAc", sql],
            capture_output=True, text=True, timeout=10,
            env={**os.environ, "PGPASSWORD": self.settings.postgres_password},
        )

    def ready(self) -> bool:
        return self._psql("postgres", "select 1").stdout.strip() == "1"

    def after_ready(self) -> None:
        db = self.settings.postgres_db
        if self._psql("postgres", f"select 1 from pg_database where datname='{db}'").stdout.strip():
            return
        result = self._psql("postgres", f'create database "{db}"')
        if result.returncode != 0:
            raise RuntimeError(f"could not create database {db}: {result.stderr}")
