"""Errors the stores raise; the web layer and the workers map them to outcomes."""
from __future__ import annotations


class StoreError(Exception):
    """Base for store errors."""


class StoreUnavailable(StoreError):
    """A dependency cannot be reached: retry later (HTTP 503, worker retry)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store} unavailable: {reason}")
        self.store = store
        self.reason = reason


class SequenceConflict(StoreError):
    """expected_seq did not match the aggregate's last sequence; nothing was stored."""

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"aggregate '{aggregate_id}' is at sequence {actual}, not the expected {expected}")
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class EventIdConflict(StoreError):
    """A different payload was appended under an event_id that is already stored."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event '{event_id}' is already stored with a different payload")
        self.event_id = event_id


class InvalidEnvelope(StoreError):
    """An envelope this store cannot hold (unencodable values, numbers out of range):
    refused before anything is reserved; a caller's input error, not an outage."""

    def __init__(self, event_id: str, reason: object) -> None:
        super().__init__(f"event '{event_id}' cannot be stored: {reason}")
        self.event_id = event_id
        self.reason = str(reason)


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth a retry: a dependency is down, slow, or dropped the connection."""
    import asyncpg
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    return (StoreUnavailable, OSError, TimeoutError, ConnectionError,
            asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.exceptions.CannotConnectNowError,
            # The server ended the session (pg_terminate_backend, a fast shutdown, a
            # crash of another backend): the statement did not commit; a new
            # connection will do.
            asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
            # A connection left mid-operation when PostgreSQL went away ("cannot switch
            # to state ...; another operation is in progress"): another one will do.
            asyncpg.exceptions.InternalClientError,
            RedisConnectionError, RedisTimeout)


TRANSIENT_ERRORS = transient_errors()


def dropped_connection_errors() -> tuple[type[BaseException], ...]:
    """PostgreSQL ended one session (pg_terminate_backend, an idle timeout, a pooler):
    the server is there and a new connection will do. Not a sign that the store is
    down: a server that is stopping refuses the next connection, and that counts."""
    import asyncpg

    return (asyncpg.exceptions.AdminShutdownError, asyncpg.ConnectionDoesNotExistError)


DROPPED_CONNECTION_ERRORS = dropped_connection_errors()


def is_dropped_connection(error: BaseException) -> bool:
    """`error`, or what it was raised from (an adapter's StoreUnavailable), is a
    dropped connection."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DROPPED_CONNECTION_ERRORS):
            return True
        seen = seen.__cause__
    return False
