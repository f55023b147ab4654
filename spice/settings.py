"""One configuration class; the environment names are the public ones of DESIGN.md."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode, urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Defaults point at the local stack (`spice stack up`), on ports chosen to
# stay clear of the standard ones a developer machine may already use.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # The worker's event loop: uvloop (default) or aio (asyncio's own). See spice/app.py.
    event_loop: Literal["uvloop", "aio"] = "uvloop"
    # The worker's cyclic collector thresholds (Python's own are 700,10,10). See spice/app.py.
    worker_gc_threshold: str = Field(default="10000,50,100", pattern=r"^\d+,\d+,\d+$")
    # When set, the worker profiles itself (cProfile) from start-up to stop and writes the
    # statistics there (read with `python -m pstats FILE`). Costs ~2x CPU: for finding out
    # where time goes, never for figures.
    worker_profile: str = ""
    # Broker
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    # How clients authenticate (spice/kafka_client.py). The local stack's broker takes
    # SCRAM-SHA-256 on SASL_PLAINTEXT (loopback only); production adds TLS with SASL_SSL.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = \
        "SASL_PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-256"
    kafka_sasl_username: str = "spice"
    # Empty: the local stack's generated password (<run dir>/secrets/kafka-password).
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str | None = None  # CA bundle for SSL / SASL_SSL
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    # How long the group waits for a worker that stopped heartbeating before it hands
    # that worker's partitions to the others: most of a crashed worker's recovery. The
    # broker's floor is 6 s (group.min.session.timeout.ms); heartbeats go at a quarter.
    kafka_session_timeout_seconds: float = Field(default=6.0, ge=6, le=300)
    topic_partitions: int = Field(default=8, ge=1, le=10_000)
    # Copies of every topic (Faust's changelogs too) and how many must acknowledge a
    # write (acks=all): 3 and 2 on a cluster, 1 and 1 on the one-broker local stack.
    topic_replication_factor: int = Field(default=1, ge=1, le=32)
    topic_min_insync_replicas: int = Field(default=1, ge=1, le=32)

    # Event store (S3)
    event_store_bucket: str = "spice-event-store"
    s3_endpoint_url: str = "http://127.0.0.1:18333"
    s3_access_key_id: str = "spice-local"
    s3_secret_access_key: SecretStr = SecretStr("spice-local-secret")
    s3_region: str = "us-east-1"
    event_store_group_commit_max: int = Field(default=500, ge=1, le=100_000)
    event_store_group_commit_wait_ms: float = Field(default=0.0, ge=0, le=10_000)

    # Publisher
    event_publisher_batch_size: int = Field(default=200, ge=1, le=100_000)
    event_publisher_poll_interval: float = Field(default=3.0, gt=0, le=3600)
    event_publisher_checkpoint_key: str = "checkpoints/event_publisher.json"
    event_publisher_lookback_seconds: float = Field(default=30.0, ge=0)
    # The sweeper re-sends what is stored but still unprocessed after this long.
    event_sweep_delay_seconds: float = Field(default=60.0, gt=0)
    event_sweep_interval_seconds: float = Field(default=10.0, gt=0)

    # PostgreSQL
    postgres_host: str = "127.0.0.1"
    postgres_port: int = Field(default=15432, ge=1, le=65535)
    postgres_user: str = "spice"
    # Empty: the local stack's generated password (<run dir>/secrets/postgres-password).
    postgres_password: SecretStr = SecretStr("")
    postgres_db: str = "spice"
    postgres_pool_max: int = Field(default=20, ge=2, le=1000)
    # TLS to PostgreSQL: libpq's sslmode (disable, prefer, require, verify-ca, verify-full)
    # and the CA file for the verify modes.
    postgres_sslmode: str = Field(default="prefer",
                                  pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$")
    postgres_sslrootcert: str | None = None

    # Redis
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Empty: the local stack's generated password (<run dir>/secrets/redis-password).
    # A password in REDIS_URL takes precedence.
    redis_password: SecretStr = SecretStr("")
    # TLS: a rediss:// REDIS_URL; this CA file verifies the server.
    redis_ssl_ca_certs: str | None = None
    command_status_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    # Finished commands stay this long in the Faust status table (memory); older ones
    # are answered by Redis (TTL above) and then the event store.
    # A minute: the table serves statuses while Redis is down (sync waiters, the status
    # API); older finished commands are answered from the event store, and every kept
    # document is a record each table recovery reads.
    status_table_retention_seconds: float = Field(default=60.0, ge=0)

    # Optional production backends
    graph_backend: str = Field(default="postgres", pattern="^(postgres|terminusdb)$")
    search_backend: str = Field(default="postgres", pattern="^(postgres|elasticsearch)$")
    # TerminusDB and Elasticsearch: the local stack runs them on these addresses when
    # asked (SPICE_STACK_EXTRAS, `spice stack up --with`); empty passwords are the local
    # stack's (spice/devstack/secrets.py).
    terminusdb_url: str = "http://127.0.0.1:16363"
    terminusdb_user: str = "admin"
    terminusdb_password: SecretStr = SecretStr("")
    elasticsearch_url: str = "http://127.0.0.1:19200"
    elasticsearch_username: str = "elastic"
    elasticsearch_password: SecretStr = SecretStr("")
    elasticsearch_transport_port: int = Field(default=19300, ge=1, le=65535)
    # Servers `spice stack up` starts beyond the default four: a comma-separated subset
    # of "elasticsearch,terminusdb". A backend chosen above is started without asking.
    spice_stack_extras: str = ""
    # The TerminusDB source the stack builds from (sha256 checked), and where slow builds
    # (TerminusDB, the Elasticsearch node) are cached, outside the work tree.
    terminusdb_source: Path = PROJECT_ROOT.parent / "shared" / "vendor" / "terminusdb" / (
        "terminusdb-v11.1.14-src.tar.gz")
    terminusdb_source_sha256: str = (
        "1f2aa9b96ae9830ebb928078712e016a72fd0dff73e744d5638e2615442cdfb6")
    spice_cache_dir: Path = Path.home() / ".cache" / "spice-harvester"

    # Worker and web
    spice_app_id: str = "spice"
    # What this process runs (docs/roles.md). "worker": the agents, the status tables,
    # the publisher and the HTTP API. "api": the HTTP API alone, in a Faust app of its
    # own ("<SPICE_APP_ID>-api") that takes none of the workers' partitions; what only
    # the workers' tables know is asked of SPICE_WORKER_URLS.
    spice_role: Literal["worker", "api"] = "worker"
    # Comma-separated base URLs of workers, asked in order by an API process.
    spice_worker_urls: str = "http://127.0.0.1:16066"
    # A worker's CPU priority, as `nice` increments (0-19). On a host where API
    # processes and workers share the cores, a positive value lets intake go first;
    # commands accepted meanwhile wait, stored, in their topics (docs/roles.md).
    worker_nice: int = Field(default=0, ge=0, le=19)
    spice_web_host: str = "127.0.0.1"
    spice_web_port: int = Field(default=16066, ge=1, le=65535)
    # The URL other processes reach this one at (table routing, the dashboard merge):
    # set it where SPICE_WEB_HOST is a bind-all address such as 0.0.0.0 (empty:
    # http://SPICE_WEB_HOST:SPICE_WEB_PORT).
    spice_web_canonical_url: str = ""
    spice_data_dir: Path = PROJECT_ROOT / ".run" / "worker"
    spice_run_dir: Path = PROJECT_ROOT / ".run"
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1 << 30)
    max_bulk_items: int = Field(default=10_000, ge=1, le=1_000_000)

    # Security (docs/security.md)
    auth_enabled: bool = True
    auth_bootstrap_admin_key: SecretStr | None = None  # seeded (hashed) as an admin key at start
    auth_jwt_algorithm: str = Field(default="HS256", pattern="^(HS256|RS256)$")
    auth_jwt_secret: SecretStr | None = None  # HS256
    auth_jwt_public_key: str | None = None  # RS256: PEM text, or a path to a PEM file
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    rate_limit_per_second: float = Field(default=500.0, gt=0)
    rate_limit_burst: int = Field(default=1000, ge=1)
    log_format: str = Field(default="text", pattern="^(text|json)$")
    tracing_enabled: bool = False
    # Client libraries traced when TRACING_ENABLED (spice/tracing.py INSTRUMENTATIONS);
    # the exporter is OTLP/HTTP, configured by the standard OTEL_* variables.
    tracing_instrumentations: str = "aiohttp-client,aiokafka,asyncpg,redis"

    # Workers
    # 12 attempts back off for about 40 to 75 s in all: a dependency down for half a
    # minute does not send commands to the DLQ.
    command_max_attempts: int = Field(default=12, ge=1, le=1000)
    command_retry_base_seconds: float = Field(default=0.5, gt=0, le=600)
    registry_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Finished registry rows are kept this long, and always until the sweeper has passed
    # their events (docs/workers.md, "Registry retention").
    registry_retention_seconds: float = Field(default=7 * 86400.0, ge=3600)
    # On SIGTERM a worker lets the batches in flight finish for up to this long, then
    # cancels the rest, commits its offsets and ends its leases (spice/agents/drain.py).
    # Keep it under the orchestrator's grace period (docker: stop_grace_period 45 s).
    shutdown_drain_seconds: float = Field(default=10.0, ge=0, le=600)

    @field_validator("auth_jwt_secret")
    @classmethod
    def _strong_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        # RFC 7518 3.2: an HS256 key shorter than the hash is guessable offline from
        # any one token.
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (HS256)")
        return secret

    @field_validator("tracing_instrumentations")
    @classmethod
    def _known_instrumentations(cls, names: str) -> str:
        from spice.tracing import INSTRUMENTATIONS

        unknown = sorted({n.strip() for n in names.split(",") if n.strip()} - set(INSTRUMENTATIONS))
        if unknown:
            raise ValueError(f"unknown {unknown}; known: {', '.join(INSTRUMENTATIONS)}")
        return names

    @property
    def instrumentations(self) -> list[str]:
        return [n.strip() for n in self.tracing_instrumentations.split(",") if n.strip()]

    @model_validator(mode="after")
    def _local_secrets(self) -> Settings:
        """Unset passwords are the local stack's (spice/devstack/secrets.py)."""
        from spice.devstack.secrets import local_secret

        for field, name in (("postgres_password", "postgres-password"),
                            ("redis_password", "redis-password"),
                            ("kafka_sasl_password", "kafka-password"),
                            ("terminusdb_password", "terminusdb-password"),
                            ("elasticsearch_password", "elasticsearch-password")):
            if not getattr(self, field).get_secret_value():
                object.__setattr__(self, field, SecretStr(local_secret(self.spice_run_dir, name)))
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError("TOPIC_MIN_INSYNC_REPLICAS must not exceed TOPIC_REPLICATION_FACTOR")
        return self

    @property
    def canonical_url(self) -> str:
        return (self.spice_web_canonical_url.rstrip("/")
                or f"http://{self.spice_web_host}:{self.spice_web_port}")

    @property
    def is_worker(self) -> bool:
        return self.spice_role == "worker"

    @property
    def faust_app_id(self) -> str:
        """The Faust app id, which is also the consumer group: API processes form a
        group of their own, so the workers' partitions are never assigned to them."""
        return self.spice_app_id if self.is_worker else f"{self.spice_app_id}-api"

    @property
    def worker_urls(self) -> list[str]:
        return [url.strip().rstrip("/") for url in self.spice_worker_urls.split(",") if url.strip()]

    @property
    def stack_extras(self) -> list[str]:
        """The optional servers the local stack runs: those asked for, and the backends
        this configuration uses."""
        extras = {e.strip() for e in self.spice_stack_extras.split(",") if e.strip()}
        unknown = extras - {"elasticsearch", "terminusdb"}
        if unknown:
            raise ValueError(f"SPICE_STACK_EXTRAS: unknown server(s) {sorted(unknown)}; "
                             "known: elasticsearch, terminusdb")
        if self.graph_backend == "terminusdb":
            extras.add("terminusdb")
        if self.search_backend == "elasticsearch":
            extras.add("elasticsearch")
        return sorted(extras)

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])

    @property
    def s3_port(self) -> int:
        return urlparse(self.s3_endpoint_url).port or 80

    @property
    def redis_port(self) -> int:
        return urlparse(self.redis_url).port or 6379

    @property
    def postgres_dsn(self) -> str:
        query = {"sslmode": self.postgres_sslmode}
        if self.postgres_sslrootcert:
            query["sslrootcert"] = self.postgres_sslrootcert
        return (
            f"postgresql://{quote(self.postgres_user, safe='')}:"
            f"{quote(self.postgres_password.get_secret_value(), safe='')}"
            f"@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}?{urlencode(query)}"
        )


class SettingsError(RuntimeError):
    """Settings the environment gave that fail their checks: one line per variable."""


def describe(error: ValidationError) -> str:
    """One line per bad variable, named as in the environment; secrets are not echoed."""
    lines = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"][:1]).upper() or "settings"
        message = problem["msg"].removeprefix("Value error, ")
        field = Settings.model_fields.get(name.lower())
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "" if secret or not problem["loc"] else f" (got {problem.get('input')!r})"
        lines.append(f"{name}: {message}{shown}")
    return "invalid settings:\n  " + "\n  ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; a SettingsError names every bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe(error)) from None
