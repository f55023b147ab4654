"""One configuration class; the environment names are the public ones of DESIGN.md."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode, urlparse

from pydantic import Field, field_validator, model_validator
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
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str | None = None  # CA bundle for SSL / SASL_SSL
    kafka_controller_port: int = 19093
    topic_partitions: int = 8

    # Event store (S3)
    event_store_bucket: str = "spice-event-store"
    s3_endpoint_url: str = "http://127.0.0.1:18333"
    s3_access_key_id: str = "spice-local"
    s3_secret_access_key: str = "spice-local-secret"
    s3_region: str = "us-east-1"
    event_store_group_commit_max: int = 500
    event_store_group_commit_wait_ms: float = 0.0

    # Publisher
    event_publisher_batch_size: int = 200
    event_publisher_poll_interval: float = 3.0
    event_publisher_checkpoint_key: str = "checkpoints/event_publisher.json"
    event_publisher_lookback_seconds: float = 30.0
    # The sweeper re-sends what is stored but still unprocessed after this long.
    event_sweep_delay_seconds: float = 60.0
    event_sweep_interval_seconds: float = 10.0

    # PostgreSQL
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 15432
    postgres_user: str = "spice"
    # Empty: the local stack's generated password (<run dir>/secrets/postgres-password).
    postgres_password: str = ""
    postgres_db: str = "spice"
    postgres_pool_max: int = 20
    # TLS to PostgreSQL: libpq's sslmode (disable, prefer, require, verify-ca, verify-full)
    # and the CA file for the verify modes.
    postgres_sslmode: str = Field(default="prefer",
                                  pattern="^(disable|allow|prefer|require|verify-ca|verify-full)$")
    postgres_sslrootcert: str | None = None

    # Redis
    redis_url: str = "redis://127.0.0.1:16379/0"
    # Empty: the local stack's generated password (<run dir>/secrets/redis-password).
    # A password in REDIS_URL takes precedence.
    redis_password: str = ""
    # TLS: a rediss:// REDIS_URL; this CA file verifies the server.
    redis_ssl_ca_certs: str | None = None
    command_status_ttl_seconds: int = 24 * 3600
    # Finished commands stay this long in the Faust status table (memory); older ones
    # are answered by Redis (TTL above) and then the event store.
    status_table_retention_seconds: float = 300.0

    # Optional production backends
    graph_backend: str = Field(default="postgres", pattern="^(postgres|terminusdb)$")
    search_backend: str = Field(default="postgres", pattern="^(postgres|elasticsearch)$")
    # TerminusDB and Elasticsearch: the local stack runs them on these addresses when
    # asked (SPICE_STACK_EXTRAS, `spice stack up --with`); empty passwords are the local
    # stack's (spice/devstack/secrets.py).
    terminusdb_url: str = "http://127.0.0.1:16363"
    terminusdb_user: str = "admin"
    terminusdb_password: str = ""
    elasticsearch_url: str = "http://127.0.0.1:19200"
    elasticsearch_username: str = "elastic"
    elasticsearch_password: str = ""
    elasticsearch_transport_port: int = 19300
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
    spice_web_port: int = 16066
    spice_data_dir: Path = PROJECT_ROOT / ".run" / "worker"
    spice_run_dir: Path = PROJECT_ROOT / ".run"
    max_body_bytes: int = 1_048_576
    max_bulk_items: int = 10_000

    # Security (docs/security.md)
    auth_enabled: bool = True
    auth_bootstrap_admin_key: str | None = None  # seeded (hashed) as an admin key at start
    auth_jwt_algorithm: str = Field(default="HS256", pattern="^(HS256|RS256)$")
    auth_jwt_secret: str | None = None  # HS256
    auth_jwt_public_key: str | None = None  # RS256: PEM text, or a path to a PEM file
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    rate_limit_per_second: float = 500.0
    rate_limit_burst: int = 1000
    log_format: str = Field(default="text", pattern="^(text|json)$")
    tracing_enabled: bool = False

    # Workers
    # 12 attempts back off for about 40 to 75 s in all: a dependency down for half a
    # minute does not send commands to the DLQ.
    command_max_attempts: int = 12
    command_retry_base_seconds: float = 0.5
    registry_lease_seconds: float = 30.0

    @field_validator("auth_jwt_secret")
    @classmethod
    def _strong_secret(cls, secret: str | None) -> str | None:
        # RFC 7518 3.2: an HS256 key shorter than the hash is guessable offline from
        # any one token.
        if secret is not None and len(secret.encode()) < 32:
            raise ValueError("AUTH_JWT_SECRET must be at least 32 bytes (HS256)")
        return secret

    @model_validator(mode="after")
    def _local_secrets(self) -> Settings:
        """Unset passwords are the local stack's (spice/devstack/secrets.py)."""
        from spice.devstack.secrets import local_secret

        for field, name in (("postgres_password", "postgres-password"),
                            ("redis_password", "redis-password"),
                            ("kafka_sasl_password", "kafka-password"),
                            ("terminusdb_password", "terminusdb-password"),
                            ("elasticsearch_password", "elasticsearch-password")):
            if not getattr(self, field):
                object.__setattr__(self, field, local_secret(self.spice_run_dir, name))
        return self

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
            f"{quote(self.postgres_password, safe='')}"
            f"@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}?{urlencode(query)}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
