"""The OpenAPI document: valid OpenAPI 3.1, stable operation ids, typed parameters,
request bodies and answers from the models, security on every non-public operation."""
from openapi_spec_validator import validate

from spice.web.routes import openapi

PUBLIC = {"/livez", "/readyz", "/health", "/api/v1/health", "/openapi.json", "/dashboard", "/docs",
          "/docs/assets/{name}",
          "/api/v1/schemas", "/api/v1/schemas/{name}"}


def operations(document):
    return [(path, method, op) for path, item in document["paths"].items()
            for method, op in item.items()]


def test_the_document_is_valid_openapi():
    validate(openapi())


def test_operation_ids_are_unique_and_named_after_the_operation():
    ids = [op["operationId"] for _, _, op in operations(openapi())]
    assert len(ids) == len(set(ids))
    assert all(i[0].islower() and "_" not in i for i in ids)
    assert openapi()["paths"]["/api/v1/database/create"]["post"]["operationId"] == "createDatabase"


def test_every_operation_has_a_tag_answers_and_errors_with_a_schema():
    document = openapi()
    for path, method, op in operations(document):
        assert op["tags"], (path, method)
        success = [code for code in op["responses"] if code.startswith(("2", "101"))]
        assert len(success) == 1, (path, method)
        for code, answer in op["responses"].items():
            assert answer.get("content") or code == "101", (path, method, code)
            if not code.startswith(("2", "101")):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


def test_security_is_declared_and_public_operations_opt_out():
    document = openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["bearer"]["scheme"] == "bearer"
    for path, method, op in operations(document):
        assert (op.get("security") == []) == (path in PUBLIC), (path, method)


def test_writes_document_their_bodies_parameters_and_headers():
    document = openapi()
    create = document["paths"]["/api/v1/instances/{db}/async/{class_id}/create"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/InstanceCreate"}
    assert create["responses"]["202"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Accepted"}
    names = {(p["in"], p["name"]) for p in create["parameters"]}
    assert {("path", "db"), ("path", "class_id"), ("query", "expected_seq"),
            ("header", "Idempotency-Key"), ("header", "If-Match")} <= names
    db = next(p for p in create["parameters"] if p["name"] == "db")
    assert db["schema"]["pattern"]
    sync = document["paths"]["/api/v1/ontology/{db}/sync/create"]["post"]
    timeout = next(p for p in sync["parameters"] if p["name"] == "timeout")
    assert timeout["schema"]["minimum"] == 0.1 and timeout["schema"]["maximum"] == 600
    assert "408" in sync["responses"]
    schemas = document["components"]["schemas"]
    assert "OntologyClass" in schemas and "Property" in schemas
    assert schemas["InstanceCreate"]["required"] == ["instance_id", "data"]
