"""The pure rules behind hostile-input handling (issue #23): JSON values, patterns,
failure throttling, intake, loops that outlive errors, fail-closed visibility."""
import asyncio
import json
import time

import pytest

from spice.domain.errors import ValidationFailed
from spice.domain.json_values import MAX_DEPTH, json_value_problem, parse_json
from spice.domain.patterns import compile_pattern, pattern_matches


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):  # depth containers around a scalar
        value = [value]
    return value


@pytest.mark.parametrize("value, field", [
    ({"a": "x\x00"}, "a"), ({"a": ["ok", "\ud800"]}, "a[1]"), ({"n": 2**63}, "n"),
    ({"n": -(2**63) - 1}, "n"), ({"f": float("nan")}, "f"), ({"f": float("inf")}, "f"),
    ({"s": "a" * 100_001}, "s"), ({"k" * 300: 1}, "kkkk"), ({"x\x00": 1}, "x"),
    ({"o": object()}, "o"),
])
def test_values_no_store_can_hold_are_named(value, field):
    problem = json_value_problem(value)
    assert problem is not None and problem.field.startswith(field), problem


def test_acceptable_values_pass():
    ok = {"s": "사람 \u00e9", "n": 2**63 - 1, "m": -(2**63), "f": 1.5, "b": True, "z": None,
          "deep": nested(MAX_DEPTH - 1), "list": [1, "two", {"three": 3.0}]}
    assert json_value_problem(ok) is None


def test_depth_is_counted_from_the_body():
    assert json_value_problem(nested(MAX_DEPTH)) is None
    assert json_value_problem(nested(MAX_DEPTH + 1)) is not None


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1' + b"0" * 5000 + b"}",
    b"[" * 5000 + b"]" * 5000, b"\xff\xfe", b"{",
])
def test_parse_refuses_before_anything_costly(raw):
    started = time.perf_counter()
    with pytest.raises(ValidationFailed):
        parse_json(raw)
    assert time.perf_counter() - started < 0.5


def test_parse_names_the_path_of_a_value_out_of_range():
    with pytest.raises(ValidationFailed) as refused:
        parse_json(b'{"data": {"n": 18446744073709551616}}')
    assert refused.value.errors[0].field == "data.n"


def test_patterns_are_linear_and_refuse_what_re2_cannot_do():
    started = time.perf_counter()
    assert not pattern_matches("(a+)+$", "a" * 5000 + "!")
    assert time.perf_counter() - started < 0.1
    assert pattern_matches(r"[A-Z]\d{3}", "A123")
    for bad in (r"(a)\1", "(?=a)a", "x" * 1001, "(unclosed"):
        with pytest.raises(ValueError, match="pattern"):
            compile_pattern(bad)


def test_class_with_a_backtracking_only_pattern_is_a_field_error():
    from spice.domain.ontology import OntologyClass
    from spice.domain.parsing import parse

    body = {"id": "P", "properties": [{"name": "s", "type": "string",
                                       "constraints": {"pattern": r"(\w)\1"}}]}
    with pytest.raises(ValidationFailed) as refused:
        parse(OntologyClass, body, "class")
    assert "pattern" in refused.value.errors[0].field + refused.value.errors[0].message


def test_failure_throttle_counts_per_address_in_windows():
    from spice.stores.failures import FailureThrottle

    throttle = FailureThrottle(max_failures=3, window=60, max_addresses=2)
    for _ in range(3):
        assert throttle.retry_after("a", now=100) == 0
        throttle.failed("a", now=100)
    assert throttle.retry_after("a", now=110) == 50
    assert throttle.retry_after("b", now=110) == 0
    assert throttle.retry_after("a", now=161) == 0  # the window is over
    throttle.failed("b", now=1)
    throttle.failed("c", now=1)
    assert len(throttle._seen) == 2  # bounded


def test_a_status_naming_no_database_is_for_star_grants_only():
    from spice.web.auth import Principal

    assert not Principal("key:a", {"shop": "admin"}).can_see(None)
    assert Principal("key:ops", {"*": "viewer"}).can_see(None)
    assert Principal("key:a", {"shop": "viewer"}).can_see("shop")


def test_intake_applies_the_edge_rules_and_names_refused_commands():
    from spice.agents import intake
    from spice.domain.messages import CommandType, new_command

    command = new_command(CommandType.CREATE_INSTANCE, "shop:Item:i1",
                          {"db": "shop", "class_id": "Item", "instance_id": "i1",
                           "data": {"name": "x"}})
    assert intake.decode(command.to_json(), "command").command_id == command.command_id
    bad = command.to_json().replace(b'"name":"x"', b'"name":1e999')
    with pytest.raises(ValueError, match="data.data.name"):
        intake.decode(bad, "command")
    assert intake.named_command(bad) == (command.command_id, "shop", "CREATE_INSTANCE")
    assert intake.named_command(b"[" * 5000) is None
    assert intake.named_command(b'{"metadata": {"command_id": 5}}') is None


def test_a_batch_with_an_undecodable_line_keeps_the_others():
    from spice.stores.s3_event_store import decode_batch, encode_batch
    from tests.contracts.event_store import aggregate, envelope

    good = [envelope(aggregate()) for _ in range(3)]
    body = encode_batch(good[:1]) + b'{"event_id": "broken"}\n' + encode_batch(good[1:])
    assert [e.event_id for e in decode_batch(body)] == [e.event_id for e in good]


async def test_a_background_loop_outlives_its_errors():
    from spice.agents.forever import every
    from spice.observability import LOOP_ERRORS

    calls = []
    enough = asyncio.Event()

    async def step():
        calls.append(1)
        if len(calls) >= 6:
            enough.set()
        if len(calls) % 2:
            raise KeyError("a bug nobody listed")

    before = LOOP_ERRORS.get("test loop")
    task = asyncio.create_task(every("test loop", 0.001, step))
    await asyncio.wait_for(enough.wait(), 5)
    task.cancel()
    assert LOOP_ERRORS.get("test loop") - before >= 3


def test_an_unexpected_error_answers_with_an_id_and_no_traceback():
    from spice.web.http import error_response

    status, body, _ = error_response(ZeroDivisionError("secret detail"))
    assert status == 500 and len(body["detail"]["error_id"]) == 16
    assert "secret" not in json.dumps(body)
