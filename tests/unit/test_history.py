"""The pure history functions: folds, what changed, JSON Patch (checked by an independent
RFC 6902 implementation, the jsonpatch library), chain links and record arguments."""
import hashlib

import jsonpatch
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from spice.domain.history import (
    Fact,
    class_changes,
    database_exists,
    fold,
    fold_schema,
    instance_changes,
    json_patch,
    pointer,
)
from spice.stores.audit import chain_link, record_arguments

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(names, inner, max_size=5), max_leaves=20)


@settings(max_examples=300)
@given(documents, documents)
def test_a_patch_applied_to_the_first_gives_the_second(before, after):
    patch = json_patch(before, after)
    assert jsonpatch.apply_patch(before, patch) == after
    if before == after and type(before) is type(after):
        assert patch == []


def test_pointers_escape_tilde_and_slash():
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    assert json_patch({"a/b": 1}, {"a/b": 2}) == [{"op": "replace", "path": "/a~1b", "value": 2}]


def test_a_patch_from_or_to_nothing_replaces_the_whole_document():
    assert json_patch(None, {"x": 1}) == [{"op": "replace", "path": "", "value": {"x": 1}}]
    assert json_patch({"x": 1}, None) == [{"op": "replace", "path": "", "value": None}]


def created(instance, data):
    return Fact("INSTANCE_CREATED", {"db": "d", "class_id": "C", "instance_id": instance, "data": data})


def test_the_fold_is_the_last_state_and_deletes_end_it():
    facts = [created("i", {"a": 1}), Fact("INSTANCE_UPDATED", {"data": {"a": 2}})]
    assert fold(facts) == {"a": 2}
    assert fold([*facts, Fact("INSTANCE_DELETED", {})]) is None
    assert fold([*facts, Fact("DATABASE_DELETED", {"db": "d"})]) is None
    assert fold([]) is None


def cls(class_id, *props, rels=()):
    return {"id": class_id, "properties": [{"name": p, "type": "string"} for p in props],
            "relationships": [{"predicate": r, "target": class_id} for r in rels]}


def test_the_schema_fold_follows_creates_updates_deletes_and_database_deletes():
    facts = [Fact("DATABASE_CREATED", {"name": "d"}),
             Fact("ONTOLOGY_CLASS_CREATED", {"class": cls("A", "x")}),
             Fact("ONTOLOGY_CLASS_CREATED", {"class": cls("B")}),
             Fact("ONTOLOGY_CLASS_UPDATED", {"class": cls("A", "x", "y")}),
             Fact("ONTOLOGY_CLASS_DELETED", {"class_id": "B"})]
    assert fold_schema(facts) == {"A": cls("A", "x", "y")}
    assert database_exists(facts)
    dropped = [*facts, Fact("DATABASE_DELETED", {"db": "d"})]
    assert fold_schema(dropped) == {} and not database_exists(dropped)


def test_class_changes_name_members_and_fields():
    before = {**cls("A", "x", "y", rels=["r"]), "label": "A"}
    after = {**cls("A", "y", "z", rels=["r", "s"]), "label": "A2"}
    after["properties"][0]["type"] = "integer"
    assert class_changes(before, after) == {
        "properties": {"added": ["z"], "removed": ["x"], "changed": ["y"]},
        "relationships": {"added": ["s"], "removed": [], "changed": []},
        "fields": ["label"]}
    assert class_changes(None, before)["properties"]["added"] == ["x", "y"]


def test_instance_changes_show_values_before_and_after():
    assert instance_changes({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {
        "added": {"c": 4}, "removed": {"a": 1}, "changed": {"b": {"from": 2, "to": 3}}}
    assert instance_changes({"a": 1}, None) == {"added": {}, "removed": {"a": 1}, "changed": {}}


def test_record_arguments_group_by_database_in_batch_order_and_hash_the_stored_line():
    lines = [{"event_id": "1", "metadata": {"db": "b"}, "data": {}},
             {"event_id": "2", "aggregate_type": "Database", "metadata": {}, "data": {"name": "a"}},
             {"event_id": "3", "metadata": {}, "data": {"db": "b"}},
             {"event_id": "4", "metadata": {}, "data": {}}]
    body = b"\n".join(orjson.dumps(x) for x in lines) + b"\nnot json\n"
    dbs, ids, texts, hashes = record_arguments(body)
    assert dbs == ["", "a", "b", "b"] and ids == ["4", "2", "1", "3"]
    assert hashes[0] == hashlib.sha256(texts[0].encode()).hexdigest()


def test_chain_links_match_the_database_function():
    # spice_record_batch: encode(sha256(convert_to(link || line_hash, 'UTF8')), 'hex')
    first = chain_link("", "ab")
    assert first == hashlib.sha256(b"ab").hexdigest()
    assert chain_link(first, "cd") == hashlib.sha256((first + "cd").encode()).hexdigest()


def test_points_take_ascii_digits_only():
    import pytest

    from spice.web.errors import HttpError
    from spice.web.history import parse_point

    assert parse_point("12", "from") == 12
    with pytest.raises(HttpError) as refused:
        parse_point("³", "from")  # str.isdigit() says yes; int() says no
    assert refused.value.status == 400 and refused.value.field == "from"
