"""How every Kafka client of the service connects: one place for the security settings.

The local stack's broker takes SASL/SCRAM on its client listener (spice/devstack/kafka.py);
production may add TLS (KAFKA_SECURITY_PROTOCOL=SASL_SSL, KAFKA_SSL_CAFILE). Producers,
consumers and admin clients of aiokafka take `kafka_options(settings)`; Faust takes
`faust_credentials(settings)`.
"""
from __future__ import annotations

from typing import Any

from spice.settings import Settings


def _ssl_context(settings: Settings) -> Any:
    from aiokafka.helpers import create_ssl_context

    return create_ssl_context(cafile=settings.kafka_ssl_cafile)


def kafka_security(settings: Settings) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    if protocol.endswith("SSL"):
        options["ssl_context"] = _ssl_context(settings)
    return options


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: the brokers and how to authenticate."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **kafka_security(settings)}


def faust_credentials(settings: Settings) -> Any:
    import faust

    protocol = settings.kafka_security_protocol
    ssl_context = _ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password.get_secret_value(),
                                     mechanism=settings.kafka_sasl_mechanism,
                                     ssl_context=ssl_context)
    return faust.SSLCredentials(ssl_context) if ssl_context is not None else None
