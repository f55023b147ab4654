"""spice/partitioner.py gives the partitions Kafka's own default partitioner gives."""
from __future__ import annotations

import os
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from spice import partitioner
from spice.partitioner import KeyPartitioner, murmur2, partition_of

pytestmark = pytest.mark.unit


def test_murmur2_matches_aiokafkas_for_every_tail_length() -> None:
    for length in range(0, 67):
        for _ in range(20):
            data = os.urandom(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_known_values_from_the_java_client() -> None:
    # Utils.murmur2 in org.apache.kafka.common.utils (its own unit test's inputs).
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF


def test_partitioner_places_keys_as_aiokafkas_default() -> None:
    ours, theirs = KeyPartitioner(), DefaultPartitioner()
    for partitions in (1, 3, 8, 12):
        every = list(range(partitions))
        for _ in range(100):
            key = f"instance:db:Item:{uuid.uuid4()}".encode()
            assert ours(key, every, every) == theirs(key, every, every)


def test_a_key_without_bytes_goes_to_an_available_partition() -> None:
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
    assert KeyPartitioner()(None, [0, 1, 2], []) in (0, 1, 2)


def test_remembered_keys_are_forgotten_all_at_once_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partitioner, "KEPT", 3)
    partitioner._known.clear()
    for n in range(3):
        partition_of(f"k{n}".encode(), 8)
    assert len(partitioner._known) == 3
    assert partition_of(b"k3", 8) == (aiokafka_murmur2(b"k3") & 0x7FFFFFFF) % 8
    assert len(partitioner._known) == 1
