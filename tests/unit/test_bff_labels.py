"""Label index, id generation and label-form translation: pure logic."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spice.domain import bff, ids
from spice.domain.errors import ValidationFailed
from spice.domain.labels import AmbiguousLabel, LabelIndex, UnknownLabel, normalise_label
from spice.domain.naming import class_id_from_label, property_name_from_label, romanise

pytestmark = pytest.mark.unit

PERSON = {"id": "Person", "label": {"en": "Person", "ko": "사람"},
          "properties": [{"name": "name", "type": "string", "label": {"en": "name", "ko": "이름"}},
                         {"name": "birth_date", "type": "date",
                          "label": {"en": "birth date", "ko": "생년월일"}}],
          "relationships": [{"predicate": "works_for", "target": "Company",
                             "label": {"en": "works for", "ko": "소속"}}]}
COMPANY = {"id": "Company", "label": {"en": "Company", "ko": "회사"},
           "properties": [{"name": "name", "type": "string", "label": {"en": "name", "ko": "이름"}}]}
EMPLOYEE = {"id": "Employee", "label": {"en": "Employee", "ko": "직원"}, "parents": ["Person"],
            "properties": [{"name": "salary", "type": "money", "label": {"ko": "급여"}}]}


def test_hangul_is_romanised_by_syllable():
    assert romanise("사람") == "saram"
    assert romanise("생년월일") == "saengnyeonwolil"
    assert romanise("Zoë") == "Zoe"


def test_ids_from_labels_are_readable_stable_and_unique():
    assert class_id_from_label("사람") == "Saram"
    assert class_id_from_label("birth place") == "BirthPlace"
    assert class_id_from_label("사람", {"Saram"}) == "Saram2"
    assert class_id_from_label("사람", {"Saram", "Saram2"}) == "Saram3"
    assert property_name_from_label("birth date") == "birth_date"
    assert property_name_from_label("birth date", {"birth_date"}) == "birth_date_2"
    assert class_id_from_label("3D model") == "C3DModel"
    assert property_name_from_label("") == "property"


@given(st.text(max_size=40))
def test_generated_ids_always_pass_the_id_rules(label):
    assert ids.class_id_problem(class_id_from_label(label)) is None
    assert ids.property_name_problem(property_name_from_label(label)) is None


def test_labels_resolve_in_any_language_case_and_spacing_insensitive():
    index = LabelIndex([PERSON, COMPANY])
    assert index.resolve_class("사람", "f") == "Person"
    assert index.resolve_class("  PERSON ", "f") == "Person"
    assert index.resolve_class("Company", "f") == "Company"  # ids work too
    assert normalise_label("Birth  Date") == "birth date"


def test_unknown_label_lists_close_matches():
    index = LabelIndex([PERSON, COMPANY])
    with pytest.raises(UnknownLabel) as caught:
        index.resolve_class("Persn", "class.parents[0]")
    assert caught.value.close_matches == ["Person"]
    assert caught.value.field == "class.parents[0]" and caught.value.http_status == 422
    assert caught.value.to_dict()["code"] == "unknown_label"


def test_ambiguous_label_is_an_error_never_a_pick():
    twin = {"id": "Human", "label": {"ko": "사람", "en": "Human"}}
    index = LabelIndex([PERSON, twin])
    with pytest.raises(AmbiguousLabel) as caught:
        index.resolve_class("사람", "class")
    assert [c["id"] for c in caught.value.candidates] == ["Human", "Person"]
    assert index.ambiguities() == [{"label": "사람", "kind": "class", "candidates": ["Human", "Person"]}]


def test_class_from_korean_labels_resolves_parents_types_and_targets():
    index = LabelIndex([PERSON, COMPANY])
    body = {"label": {"ko": "직원"}, "parents": ["사람"],
            "properties": [{"label": {"ko": "급여"}, "type": "금액"},
                           {"label": {"ko": "입사일"}, "type": "날짜", "required": True},
                           {"label": {"ko": "상사"}, "type": "직원"}],  # itself, by label
            "relationships": [{"label": {"ko": "고객사"}, "target": "회사", "cardinality": "n:m"}]}
    cls = bff.class_from_labels(body, index, "ko")
    assert cls["id"] == "Jikwon" and cls["parents"] == ["Person"]
    assert [(p["name"], p["type"]) for p in cls["properties"]] == [("geupyeo", "money"),
                                                                  ("ipsail", "date")]
    assert [(r["predicate"], r["target"]) for r in cls["relationships"]] == [
        ("sangsa", "Jikwon"), ("gogaeksa", "Company")]


def test_class_update_keeps_member_names_matched_by_label():
    index = LabelIndex([PERSON, COMPANY])
    body = {"label": {"en": "Person", "ko": "인물"},
            "properties": [{"label": {"ko": "이름", "en": "full name"}, "type": "text"},
                           {"label": {"en": "nickname"}, "type": "text"}]}
    cls = bff.class_from_labels(body, index, "en", current=PERSON)
    assert [p["name"] for p in cls["properties"]] == ["name", "nickname"]


def test_class_errors_name_the_field():
    index = LabelIndex([PERSON])
    with pytest.raises(UnknownLabel) as caught:
        bff.class_from_labels({"label": "x", "parents": ["Persn"]}, index, "en")
    assert caught.value.field == "class.parents[0]"
    with pytest.raises(ValidationFailed) as failed:
        bff.class_from_labels({"label": "x", "properties": [{"type": "text"}]}, index, "en")
    assert failed.value.field == "class.properties[0].label"
    with pytest.raises(ValidationFailed):
        bff.class_from_labels({"label": "x", "colour": 1}, index, "en")


def test_instance_data_by_property_labels_including_inherited():
    index = LabelIndex([PERSON, COMPANY, EMPLOYEE])
    data = bff.data_from_labels({"이름": "홍길동", "birth date": "1990-01-01", "급여": 1,
                                 "소속": "c1"}, index, "Employee")
    assert data == {"name": "홍길동", "birth_date": "1990-01-01", "salary": 1, "works_for": "c1"}
    with pytest.raises(UnknownLabel) as caught:
        bff.data_from_labels({"생년월": "x"}, index, "Employee")
    assert caught.value.field == "data.생년월" and "생년월일" in caught.value.close_matches


def test_views_use_the_requested_language_with_fallback():
    index = LabelIndex([PERSON, COMPANY, EMPLOYEE])
    ko = bff.class_view(index, "Employee", "ko")
    assert ko["label"] == "직원" and ko["parents"] == [{"id": "Person", "label": "사람"}]
    assert {p["label"] for p in ko["properties"]} == {"이름", "생년월일", "급여"}
    fr = bff.class_view(index, "Employee", "fr")  # no French: English, then Korean
    assert fr["label"] == "Employee"
    assert {p["label"] for p in fr["properties"]} == {"name", "birth date", "급여"}
    view = bff.instance_view(index, "Person", "p1", {"name": "Ann", "works_for": "c1"}, "ko",
                             {("Company", "c1"): "Acme"})
    assert view["label"] == "Ann"
    assert view["relationships"][0]["targets"] == [
        {"id": "c1", "class": {"id": "Company", "label": "회사"}, "label": "Acme"}]
