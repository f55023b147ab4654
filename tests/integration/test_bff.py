"""The backend-for-frontend on the real stack: everything through Korean labels."""
from tests.integration.test_api_end_to_end import create_db, unique_db

V1 = "/api/v1"


async def call(http, method, url, body=None, status=(200, 201), **headers):
    async with http.request(method, url, json=body, headers=headers) as r:
        payload = await r.json()
        assert r.status in ((status,) if isinstance(status, int) else status), (r.status, payload)
        return payload


async def test_a_class_defined_and_instantiated_through_korean_labels(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    bff = f"{worker.url}{V1}/bff/{db}"
    ko = {"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}
    company = await call(http, "POST", f"{bff}/classes", {
        "label": {"ko": "회사", "en": "Company"},
        "properties": [{"label": {"ko": "이름", "en": "name"}, "type": "문자열", "required": True}]},
        **ko)
    assert company["class"]["id"] == "Hoesa"  # derived from the Korean label
    person = await call(http, "POST", f"{bff}/classes", {
        "label": {"ko": "사람", "en": "Person"},
        "properties": [{"label": {"ko": "이름", "en": "name"}, "type": "문자열", "required": True},
                       {"label": {"ko": "생년월일", "en": "birth date"}, "type": "날짜"},
                       {"label": {"ko": "소속", "en": "works for"}, "type": "회사"}]}, **ko)
    assert person["class"]["id"] == "Saram"
    assert person["class"]["relationships"][0]["target"] == {"id": "Hoesa", "label": "회사"}

    acme = await call(http, "POST", f"{bff}/instances/회사", {"instance_id": "acme",
                                                             "data": {"이름": "에이크미"}}, **ko)
    hong = await call(http, "POST", f"{bff}/instances/사람", {
        "data": {"이름": "홍길동", "생년월일": "1990-05-01", "소속": "acme"}}, **ko)
    assert acme["instance"]["label"] == "에이크미"
    instance_id = hong["instance"]["id"]

    in_korean = await call(http, "GET", f"{bff}/instances/사람/{instance_id}", **ko)
    assert in_korean["class"] == {"id": "Saram", "label": "사람"}
    assert {p["label"]: p["value"] for p in in_korean["properties"]} == {
        "이름": "홍길동", "생년월일": "1990-05-01"}
    assert in_korean["relationships"] == [{"predicate": "sosok", "label": "소속", "targets": [
        {"id": "acme", "class": {"id": "Hoesa", "label": "회사"}, "label": "에이크미"}]}]
    in_english = await call(http, "GET", f"{bff}/instances/Person/{instance_id}?lang=en")
    assert in_english["class"]["label"] == "Person"
    assert {p["label"] for p in in_english["properties"]} == {"name", "birth date"}
    assert in_english["relationships"][0]["label"] == "works for"
    english_class = await call(http, "GET", f"{bff}/classes/사람", **{"Accept-Language": "en"})
    assert [p["label"] for p in english_class["properties"]] == ["name", "birth date"]

    # The id form sees the same instance (names from the Korean labels); search finds it.
    plain = await call(http, "GET", f"{worker.url}{V1}/instances/{db}/Saram/{instance_id}")
    assert plain["data"]["ireum"] == "홍길동" and plain["data"]["sosok"] == "acme"
    found = await call(http, "GET", f"{bff}/search?q=홍길동&class=사람", **ko)
    assert found["total"] == 1 and found["hits"][0]["id"] == instance_id
    filtered = await call(http, "GET", f"{bff}/search?class=사람&생년월일=1990-05-01", **ko)
    assert filtered["total"] == 1


async def test_unknown_and_ambiguous_labels_give_documented_errors(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    bff = f"{worker.url}{V1}/bff/{db}"
    for class_id in ("Person", "Human"):
        await call(http, "POST", f"{bff}/classes", {"id": class_id, "label": {"ko": "사람", "en": class_id},
                                                    "properties": [{"label": "name", "type": "text"}]})
    labels = await call(http, "GET", f"{bff}/labels")
    assert {"label": "사람", "kind": "class", "candidates": ["Human", "Person"]} in labels["ambiguous"]
    ambiguous = await call(http, "POST", f"{bff}/instances/사람", {"data": {"name": "x"}}, status=409)
    assert ambiguous["detail"]["code"] == "ambiguous_label"
    assert [c["id"] for c in ambiguous["detail"]["candidates"]] == ["Human", "Person"]
    unknown = await call(http, "GET", f"{bff}/classes/Persn", status=404)
    assert unknown["detail"]["code"] == "unknown_label" and "Person" in unknown["detail"]["close_matches"]
    bad_parent = await call(http, "POST", f"{bff}/classes", {"label": "Student", "parents": ["Persn"]},
                            status=422)
    assert bad_parent["detail"]["field"] == "class.parents[0]"
    assert bad_parent["detail"]["close_matches"] == ["Person"]
    bad_key = await call(http, "POST", f"{bff}/instances/Person", {"data": {"nmae": "x"}}, status=422)
    assert bad_key["detail"]["field"] == "data.nmae" and bad_key["detail"]["close_matches"] == ["name"]
    listing = await call(http, "GET", f"{worker.url}{V1}/instances/{db}/Person")
    assert listing["instances"] == []  # nothing half-written


async def test_a_renamed_label_is_in_the_index_once_the_update_is_applied(worker, http):
    db = unique_db()
    await create_db(http, worker, db)
    bff = f"{worker.url}{V1}/bff/{db}"
    await call(http, "POST", f"{bff}/classes", {"label": {"ko": "사람", "en": "Person"},
                                                "properties": [{"label": {"ko": "이름"}, "type": "text"}]})
    updated = await call(http, "PUT", f"{bff}/classes/사람", {
        "label": {"ko": "인물", "en": "Person"},
        "properties": [{"label": {"ko": "성명"}, "name": "ireum", "type": "text"}]})
    assert updated["class"]["labels"] == {"ko": "인물", "en": "Person"}
    assert (await call(http, "GET", f"{bff}/classes/인물"))["id"] == "Person"  # id from the English label
    gone = await call(http, "GET", f"{bff}/classes/사람", status=404)
    assert gone["detail"]["code"] == "unknown_label"
    entries = (await call(http, "GET", f"{bff}/labels"))["labels"]
    assert {"label": "성명", "language": "ko", "kind": "property", "id": "ireum",
            "class_id": "Person"} in entries
    await call(http, "POST", f"{bff}/instances/인물", {"instance_id": "p1", "data": {"성명": "김"}})
