"""The type system: xsd primitives and the complex types, each a value validator.

A validator returns the stored (normalised) form of a value or records an error
under the value's path. Phone numbers are stored in E.164, money as a decimal
string with its ISO-4217 currency, decimals as canonical strings (no float loss).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import email_validator
import phonenumbers

from spice.domain.errors import ErrorCollector

Validator = Callable[[Any, str, ErrorCollector], Any]

ALIASES = {
    "xsd:string": "string", "xsd:integer": "integer", "xsd:int": "integer",
    "xsd:long": "integer", "xsd:decimal": "decimal", "xsd:double": "decimal",
    "xsd:float": "decimal", "xsd:boolean": "boolean", "xsd:date": "date",
    "xsd:dateTime": "datetime", "xsd:anyURI": "url",
}
SCALAR_TYPES = frozenset({
    "string", "integer", "decimal", "boolean", "date", "datetime", "email", "phone",
    "url", "money", "coordinate", "address", "enum",
})
ARRAY = re.compile(r"^array<(.+)>$")
# ISO 4217 active codes: a closed list keeps "EURO" or "usd " from being stored.
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
""".split())
ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")


def canonical_type(name: str) -> str:
    name = ALIASES.get(name, name)
    match = ARRAY.match(name)
    if match:
        return f"array<{canonical_type(match.group(1).strip())}>"
    return name


def type_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be a type name"
    name = canonical_type(name)
    match = ARRAY.match(name)
    if match:
        return type_problem(match.group(1))
    if name in SCALAR_TYPES or name == "object":
        return None
    known = ", ".join(sorted(SCALAR_TYPES | {"object", "array<T>"}))
    return f"unknown type '{name}'; known types: {known}"


def _string(value: Any, path: str, errors: ErrorCollector) -> Any:
    if not isinstance(value, str):
        errors.add(path, "must be a string")
    return value


def _integer(value: Any, path: str, errors: ErrorCollector) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, "must be an integer")
    return value


def _decimal(value: Any, path: str, errors: ErrorCollector) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors.add(path, "must be a decimal number")
        return value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        errors.add(path, "must be a decimal number")
        return value
    if not number.is_finite():
        errors.add(path, "must be a finite number")
        return value
    return str(number)


def _boolean(value: Any, path: str, errors: ErrorCollector) -> Any:
    if not isinstance(value, bool):
        errors.add(path, "must be true or false")
    return value


def _date(value: Any, path: str, errors: ErrorCollector) -> Any:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        errors.add(path, "must be a date (YYYY-MM-DD)")
        return value


def _datetime(value: Any, path: str, errors: ErrorCollector) -> Any:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        errors.add(path, "must be an ISO 8601 date-time")
        return value
    if not isinstance(value, str):
        errors.add(path, "must be an ISO 8601 date-time string")
    return parsed.isoformat()


def _email(value: Any, path: str, errors: ErrorCollector) -> Any:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except (email_validator.EmailNotValidError, TypeError) as error:
        errors.add(path, f"must be an email address ({error})")
        return value


def _phone(value: Any, path: str, errors: ErrorCollector) -> Any:
    try:
        number = phonenumbers.parse(value, None)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except (phonenumbers.NumberParseException, TypeError):
        pass
    errors.add(path, "must be a valid phone number with country code (e.g. +82 10-1234-5678)")
    return value


def _url(value: Any, path: str, errors: ErrorCollector) -> Any:
    parsed = urlparse(value) if isinstance(value, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        errors.add(path, "must be an http(s) URL")
    return value


def _money(value: Any, path: str, errors: ErrorCollector) -> Any:
    if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
        errors.add(path, "must be an object with exactly 'amount' and 'currency'")
        return value
    amount = _decimal(value["amount"], f"{path}.amount", errors)
    if value["currency"] not in CURRENCIES:
        errors.add(f"{path}.currency", "must be an ISO 4217 currency code such as USD or KRW")
    return {"amount": amount, "currency": value["currency"]}


def _coordinate(value: Any, path: str, errors: ErrorCollector) -> Any:
    if not isinstance(value, dict) or set(value) != {"latitude", "longitude"}:
        errors.add(path, "must be an object with exactly 'latitude' and 'longitude'")
        return value
    for axis, limit in (("latitude", 90), ("longitude", 180)):
        number = value[axis]
        if isinstance(number, bool) or not isinstance(number, int | float):
            errors.add(f"{path}.{axis}", "must be a number")
        elif not -limit <= number <= limit:
            errors.add(f"{path}.{axis}", f"must be between -{limit} and {limit}")
    return value


def _address(value: Any, path: str, errors: ErrorCollector) -> Any:
    if not isinstance(value, dict):
        errors.add(path, f"must be an object with fields among {', '.join(ADDRESS_FIELDS)}")
        return value
    for key, part in value.items():
        if key not in ADDRESS_FIELDS:
            errors.add(f"{path}.{key}", f"unknown address field; known: {', '.join(ADDRESS_FIELDS)}")
        elif not isinstance(part, str):
            errors.add(f"{path}.{key}", "must be a string")
    return value


SCALAR_VALIDATORS: dict[str, Validator] = {
    "string": _string, "integer": _integer, "decimal": _decimal, "boolean": _boolean,
    "date": _date, "datetime": _datetime, "email": _email, "phone": _phone, "url": _url,
    "money": _money, "coordinate": _coordinate, "address": _address, "enum": lambda v, p, e: v,
}
