"""Roles, JWT verification (HS256 and RS256), metrics rendering, trace context: pure logic."""
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from spice import tracing
from spice.observability import JsonFormatter, log_context
from spice.settings import Settings
from spice.stores.keys import KEY_FORMAT, check_grants, new_key
from spice.web.auth import Access, Principal, authorize, verify_jwt
from spice.web.errors import HttpError

pytestmark = pytest.mark.unit


def test_roles_rank_per_database_and_star():
    editor = Principal("e", {"shop": "editor"})
    assert editor.may(Access.WRITE, "shop") and editor.may(Access.READ, "shop")
    assert not editor.may(Access.WRITE, "other") and not editor.may(Access.READ, "other")
    assert not editor.may(Access.ADMIN, "shop") and not editor.may(Access.OPS, None)
    viewer_all = Principal("v", {"*": "viewer", "shop": "admin"})
    assert viewer_all.may(Access.READ, "any") and not viewer_all.may(Access.WRITE, "any")
    assert viewer_all.may(Access.ADMIN, "shop") and viewer_all.may(Access.OPS, None)
    assert not viewer_all.may(Access.ADMIN, None)  # creating databases takes a '*' admin
    assert not Principal("a", {"_system": "admin"}).may(Access.WRITE, "_system")
    assert Principal("root", {"*": "admin"}).may(Access.WRITE, "_system")
    with pytest.raises(HttpError) as caught:
        authorize(editor, Access.WRITE, "other")
    assert caught.value.status == 403 and "editor" in caught.value.message


def test_keys_are_well_formed_and_grants_checked():
    key_id, key = new_key()
    assert KEY_FORMAT.match(key).group(1) == key_id
    with pytest.raises(ValueError, match="role for 'shop'"):
        check_grants({"shop": "owner"})
    with pytest.raises(ValueError):
        check_grants({})


def test_hs256_tokens():
    settings = Settings(auth_jwt_secret="s" * 32)
    later = time.time() + 60
    token = jwt.encode({"sub": "ann", "roles": {"shop": "editor"}, "exp": later}, "s" * 32,
                       algorithm="HS256")
    principal = verify_jwt(token, settings)
    assert principal.name == "jwt:ann" and principal.grants == {"shop": "editor"}
    assert principal.via == "jwt" and principal.bucket == "jwt:ann"
    # A subject cannot pass for an API key's actor: tokens have a namespace of their own.
    posing = jwt.encode({"sub": "key:local-admin", "exp": later}, "s" * 32, algorithm="HS256")
    assert verify_jwt(posing, settings).name == "jwt:key:local-admin"
    for bad in (jwt.encode({"sub": "x", "exp": later}, "t" * 32, algorithm="HS256"),
                jwt.encode({"sub": "x", "roles": {}}, "s" * 32, algorithm="HS256"),  # no exp
                jwt.encode({"roles": {}, "exp": later}, "s" * 32, algorithm="HS256"),
                jwt.encode({"sub": "x", "roles": {"a": "god"}, "exp": later}, "s" * 32,
                           algorithm="HS256"),
                jwt.encode({"sub": "x", "exp": time.time() - 1}, "s" * 32, algorithm="HS256"),
                "not-a-token"):
        with pytest.raises(HttpError) as caught:
            verify_jwt(bad, settings)
        assert caught.value.status == 401


def test_hs256_secrets_shorter_than_32_bytes_are_refused():
    with pytest.raises(ValueError, match="must be at least 32 bytes"):
        Settings(auth_jwt_secret="s" * 31)


def test_rs256_tokens_with_a_configured_public_key(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pub.pem").write_bytes(pem)
    token = jwt.encode({"sub": "svc", "roles": {"*": "viewer"}, "aud": "spice",
                        "exp": time.time() + 60}, private, algorithm="RS256")
    for key in (pem.decode(), str(tmp_path / "pub.pem")):
        settings = Settings(auth_jwt_algorithm="RS256", auth_jwt_public_key=key,
                            auth_jwt_audience="spice")
        assert verify_jwt(token, settings).grants == {"*": "viewer"}
    hs = jwt.encode({"sub": "svc", "exp": time.time() + 60}, "x" * 32,
                    algorithm="HS256")  # algorithm confusion refused
    with pytest.raises(HttpError):
        verify_jwt(hs, Settings(auth_jwt_algorithm="RS256", auth_jwt_public_key=pem.decode()))


def test_json_logs_carry_the_command_and_event_ids():
    record = logging.LogRecord("spice", logging.INFO, __file__, 1, "applied %s", ("x",), None)
    with log_context("cmd-1", "evt-1"):
        line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "applied x" and line["command_id"] == "cmd-1" and line["event_id"] == "evt-1"
    assert "command_id" not in json.loads(JsonFormatter().format(record))


def test_traceparent_is_continued_or_started():
    incoming = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    continued = tracing.from_headers({"traceparent": incoming})
    assert tracing.trace_id(continued) == "a" * 32 and continued != incoming
    assert tracing.valid(tracing.from_headers({"traceparent": "garbage"}))
    assert not tracing.valid("00-" + "0" * 32 + "-" + "b" * 16 + "-01")


def test_new_trace_ids_are_valid_and_distinct():
    started = [tracing.new_traceparent() for _ in range(2000)]
    assert all(tracing.valid(t) for t in started)
    assert len({tracing.trace_id(t) for t in started}) == 2000
