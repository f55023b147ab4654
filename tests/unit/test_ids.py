import pytest
from hypothesis import given
from hypothesis import strategies as st

from spice.domain import ids
from spice.domain.errors import ValidationFailed


@pytest.mark.parametrize("name", ["abc", "my_db", "db-1", "a" * 50, "x1z"])
def test_valid_database_names(name):
    assert ids.database_name_problem(name) is None


@pytest.mark.parametrize("name,fragment", [
    ("ab", "3 to 50"), ("a" * 51, "3 to 50"), ("Abc", "lowercase"), ("1abc", "lowercase"),
    ("abc_", "end"), ("abc-", "end"), ("_system", "reserved"), ("_meta", "reserved"),
    ("a b c", "lowercase"), (12, "string"),
])
def test_invalid_database_names(name, fragment):
    assert fragment in ids.database_name_problem(name)


def test_check_names_the_field():
    with pytest.raises(ValidationFailed) as error:
        ids.check_database_name("X", field="name")
    assert error.value.errors[0].field == "name"


@pytest.mark.parametrize("class_id,ok", [
    ("Person", True), ("ex:Person", True), ("A-b_c", True), ("1Person", False),
    ("", False), ("P" * 100, True), ("P" * 101, False), ("Per son", False),
])
def test_class_ids(class_id, ok):
    assert (ids.class_id_problem(class_id) is None) is ok


@pytest.mark.parametrize("instance_id,ok", [
    ("p1", True), ("1", True), ("a:b-c_d", True), ("", False), ("a/b", False),
    ("x" * 255, True), ("x" * 256, False),
])
def test_instance_ids(instance_id, ok):
    assert (ids.instance_id_problem(instance_id) is None) is ok


@given(st.text(max_size=60))
def test_database_name_rule_matches_its_definition(name):
    import re
    expected = (
        name not in ("_system", "_meta")
        and 3 <= len(name) <= 50
        and re.fullmatch(r"[a-z][a-z0-9_-]*", name) is not None
        and name[-1] not in "_-"
    )
    assert (ids.database_name_problem(name) is None) is expected


@given(st.text(max_size=300))
def test_instance_id_rule_matches_its_definition(value):
    import re
    expected = 1 <= len(value) <= 255 and re.fullmatch(r"[A-Za-z0-9_:-]+", value) is not None
    assert (ids.instance_id_problem(value) is None) is expected
