from spice.domain.text import pick, text_problem


def test_pick_prefers_requested_then_en_then_ko_then_any():
    label = {"ko": "사람", "en": "Person", "fr": "Personne"}
    assert pick(label, "fr") == "Personne"
    assert pick(label, "de") == "Person"
    assert pick({"ko": "사람", "fr": "Personne"}, "de") == "사람"
    assert pick({"fr": "Personne"}, "de") == "Personne"
    assert pick("Person", "ko") == "Person"
    assert pick(None) is None


def test_language_tags_are_normalised():
    assert pick({"ko": "사람", "en": "Person"}, "ko-KR") == "사람"
    assert pick({"EN": "Person"}, "en-US") == "Person"


def test_text_problem():
    assert text_problem("x") is None
    assert text_problem({"en": "x"}) is None
    assert "string" in text_problem(3)
    assert "en" in text_problem({"en": 3})
