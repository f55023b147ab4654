import pytest
from hypothesis import given
from hypothesis import strategies as st

from spice.domain.errors import ErrorCollector, ValidationFailed
from spice.domain.ontology import Property
from spice.domain.parsing import parse
from spice.domain.values import validate_value


def check(prop: dict, value):
    errors = ErrorCollector()
    stored = validate_value(parse(Property, prop), value, "v", errors)
    return stored, [str(e) for e in errors.errors]


@pytest.mark.parametrize("type_name,value,stored", [
    ("string", "x", "x"),
    ("xsd:integer", 3, 3),
    ("decimal", "1.50", "1.50"),
    ("decimal", 2, "2"),
    ("boolean", True, True),
    ("date", "2024-02-29", "2024-02-29"),
    ("datetime", "2024-01-01T10:00:00Z", "2024-01-01T10:00:00+00:00"),
    ("email", "Ann@Example.com", "Ann@example.com"),
    ("phone", "+82 10-1234-5678", "+821012345678"),
    ("phone", "+1 (650) 253-0000", "+16502530000"),
    ("url", "https://example.com/a", "https://example.com/a"),
    ("money", {"amount": "10.5", "currency": "KRW"}, {"amount": "10.5", "currency": "KRW"}),
    ("coordinate", {"latitude": 37.5, "longitude": 127.0}, {"latitude": 37.5, "longitude": 127.0}),
    ("address", {"city": "Seoul", "country": "KR"}, {"city": "Seoul", "country": "KR"}),
    ("array<integer>", [1, 2], [1, 2]),
])
def test_valid_values(type_name, value, stored):
    assert check({"name": "v", "type": type_name}, value) == (stored, [])


@pytest.mark.parametrize("type_name,value,fragment", [
    ("string", 3, "v: must be a string"),
    ("integer", True, "v: must be an integer"),
    ("integer", 1.5, "must be an integer"),
    ("decimal", "abc", "decimal"),
    ("decimal", "NaN", "finite"),
    ("date", "2023-02-29", "date"),
    ("email", "not-an-email", "email"),
    ("phone", "12345", "phone"),
    ("url", "ftp://x", "URL"),
    ("money", {"amount": 1, "currency": "XXX1"}, "v.currency"),
    ("money", {"amount": 1}, "amount"),
    ("coordinate", {"latitude": 91, "longitude": 0}, "v.latitude"),
    ("address", {"planet": "Mars"}, "v.planet"),
    ("array<integer>", [1, "x"], "v[1]: must be an integer"),
    ("array<string>", "x", "array"),
])
def test_invalid_values_name_the_field(type_name, value, fragment):
    _, errors = check({"name": "v", "type": type_name}, value)
    assert errors and fragment in errors[0]


def test_constraints():
    prop = {"name": "v", "type": "string",
            "constraints": {"min_length": 2, "max_length": 4, "pattern": "[a-z]+"}}
    assert check(prop, "abc")[1] == []
    assert "at least 2" in check(prop, "a")[1][0]
    assert "at most 4" in check(prop, "abcde")[1][0]
    assert "pattern" in check(prop, "AB")[1][0]
    num = {"name": "v", "type": "integer", "constraints": {"minimum": 0, "maximum": 10}}
    assert check(num, 10)[1] == []
    assert "at least 0" in check(num, -1)[1][0]
    enum = {"name": "v", "type": "enum", "constraints": {"enum": ["a", "b"]}}
    assert check(enum, "a")[1] == []
    assert "one of" in check(enum, "c")[1][0]
    items = {"name": "v", "type": "array<string>", "constraints": {"max_items": 1}}
    assert "at most 1 items" in check(items, ["a", "b"])[1][0]


def test_object_type_validates_nested_properties():
    prop = {"name": "v", "type": "object", "properties": [
        {"name": "a", "type": "integer", "required": True}, {"name": "b", "type": "string"}]}
    assert check(prop, {"a": 1}) == ({"a": 1}, [])
    _, errors = check(prop, {"b": 2, "c": 1})
    assert "v.c: unknown property" in errors
    assert "v.a: is required" in errors
    assert "v.b: must be a string" in errors


@pytest.mark.parametrize("prop,fragment", [
    ({"name": "v", "type": "nope"}, "type: unknown type 'nope'"),
    ({"name": "1v", "type": "string"}, "name:"),
    ({"name": "v", "type": "object"}, "needs 'properties'"),
    ({"name": "v", "type": "enum"}, "constraints.enum"),
    ({"name": "v", "type": "string", "constraints": {"minimum": 5, "maximum": 1}}, "greater"),
    ({"name": "v", "type": "string", "constraints": {"pattern": "("}}, "regular expression"),
    ({"name": "v", "type": "integer", "default": "x"}, "default of v"),
])
def test_invalid_property_definitions(prop, fragment):
    with pytest.raises(ValidationFailed) as error:
        parse(Property, prop, "property")
    assert fragment in str(error.value)


@given(st.integers(min_value=-10**6, max_value=10**6), st.integers(-100, 100),
       st.integers(-100, 100))
def test_integer_range_constraint_agrees_with_arithmetic(value, low, high):
    if low > high:
        low, high = high, low
    prop = {"name": "v", "type": "integer", "constraints": {"minimum": low, "maximum": high}}
    _, errors = check(prop, value)
    assert (errors == []) is (low <= value <= high)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none(),
                 st.lists(st.integers())))
def test_string_validator_accepts_exactly_strings(value):
    _, errors = check({"name": "v", "type": "string"}, value)
    assert (errors == []) is isinstance(value, str)
