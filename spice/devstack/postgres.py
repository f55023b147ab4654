"""PostgreSQL 15 from Debian's packages, run as the `postgres` system user.

Two roles, as in production: `spice_admin`, the cluster's superuser, used only by the
stack itself; and the service's role (POSTGRES_USER), which may log in and owns its
database and schema, nothing more. Both passwords are generated under the run
directory (spice/devstack/secrets.py).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from spice.devstack.base import Server, apt_install, say
from spice.devstack.secrets import local_secret

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ADMIN = "spice_admin"


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory (the usual guidance), 256 MB to 8 GB. The event
    index's key and the processed-events registry's are on event ids, which are random:
    every append touches pages all over them, so their whole size is the working set
    (~75 and ~95 bytes per row). With 256 MB, a store of 10 million events read nearly
    every such page back from the OS for each insert, and appends ran at 0.6x the rate
    of a young store (docs/benchmarks.md, bench.scale)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(256, min(8192, memory // 4 // 2**20))


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
        else:
            self.check_made_with(self.admin_password, self.home)

    @property
    def admin_password(self) -> str:
        return local_secret(self.settings.spice_run_dir, "postgres-admin-password")

    def _initdb(self) -> None:
        say(f"initdb {self.data_dir}")
        self.home.mkdir(parents=True, exist_ok=True)
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            shutil.chown(self.home, user, user)
        with tempfile.NamedTemporaryFile("w", delete=False) as pw:
            pw.write(self.admin_password + "\n")
        os.chmod(pw.name, 0o644)
        try:
            argv = [
                str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", ADMIN,
                f"--pwfile={pw.name}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
            ]
            subprocess.run(argv, check=True, capture_output=True, user=user, group=user)
        finally:
            os.unlink(pw.name)
        self.mark_made_with(self.admin_password)

    def launch(self) -> None:
        self.process.start(
            [
                str(PG_BIN / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                "-c", "max_connections=200", "-c", f"shared_buffers={shared_buffers_mb()}MB",
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
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN,
             "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
            capture_output=True, text=True, timeout=10,
            env={**os.environ, "PGPASSWORD": self.admin_password},
        )

    def ready(self) -> bool:
        return self._psql("postgres", "select 1").stdout.strip() == "1"

    def after_ready(self) -> None:
        """The service's role (login, no superuser, no role or database creation) and its
        database, which it owns; the password follows the secret file on every start."""
        role, db = self.settings.postgres_user, self.settings.postgres_db
        password = self.settings.postgres_password.get_secret_value().replace("'", "''")
        exists = self._psql("postgres", f"select 1 from pg_roles where rolname='{role}'")
        verb = "alter" if exists.stdout.strip() else "create"
        self._check(f'{verb} role "{role}" login nosuperuser nocreatedb nocreaterole '
                    f"password '{password}'")
        if not self._psql("postgres", f"select 1 from pg_database where datname='{db}'").stdout.strip():
            self._check(f'create database "{db}" owner "{role}"')
        self._check(f'revoke all on database "{db}" from public; '
                    f'grant all on database "{db}" to "{role}"')

    def _check(self, sql: str) -> None:
        result = self._psql("postgres", sql)
        if result.returncode != 0:
            raise RuntimeError(f"postgres: {sql.split(' password')[0]}: {result.stderr.strip()}")
