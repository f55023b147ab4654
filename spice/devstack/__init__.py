"""The local stack of real servers: Kafka (KRaft), SeaweedFS S3, PostgreSQL 15, Redis 7."""
