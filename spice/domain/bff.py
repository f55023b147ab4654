"""Label-form requests to id-form commands, and id-form documents to views for people.

Pure: the web layer passes in the label index (spice.domain.labels) and the
current class when there is one.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spice.domain.errors import DomainError, ErrorCollector, FieldError, ValidationFailed
from spice.domain.labels import (
    LabelIndex,
    Resolver,
    labels_by_language,
    members_of,
    normalise_label,
)
from spice.domain.naming import class_id_from_label, property_name_from_label
from spice.domain.text import MultiText, pick
from spice.domain.types import canonical_type, type_problem

# Type names people may write instead of the type system's own names.
TYPE_LABELS = {
    "text": "string", "string": "string", "문자열": "string", "텍스트": "string", "글": "string",
    "number": "decimal", "숫자": "decimal", "실수": "decimal", "integer": "integer",
    "whole number": "integer", "정수": "integer", "date": "date", "날짜": "date",
    "date and time": "datetime", "datetime": "datetime", "날짜시간": "datetime", "일시": "datetime",
    "yes/no": "boolean", "boolean": "boolean", "참거짓": "boolean", "불리언": "boolean",
    "email": "email", "이메일": "email", "phone": "phone", "전화번호": "phone",
    "link": "url", "url": "url", "링크": "url", "주소링크": "url", "money": "money", "금액": "money",
    "address": "address", "주소": "address", "coordinate": "coordinate", "좌표": "coordinate",
    "위치": "coordinate", "choice": "enum", "선택": "enum", "열거": "enum",
}
DISPLAY_NAMES = ("label", "name", "title", "display_name")
DISPLAY_LABELS = {normalise_label(x) for x in ("name", "title", "label", "이름", "제목", "명칭")}
CLASS_FIELDS = {"id", "label", "description", "parents", "abstract", "properties", "relationships"}
PROPERTY_FIELDS = {"name", "label", "description", "type", "required", "default", "constraints",
                   "properties", "cardinality"}
RELATIONSHIP_FIELDS = {"predicate", "label", "description", "target", "cardinality",
                       "inverse_predicate", "required"}


def _label_in(text: MultiText | None, language: str) -> str | None:
    """The label to derive an id from: the request's language first, then the fallbacks."""
    return pick(text, language)


def _check_fields(item: Any, allowed: set[str], path: str, errors: ErrorCollector) -> bool:
    if not isinstance(item, dict):
        errors.add(path, "must be an object")
        return False
    for key in sorted(set(item) - allowed):
        errors.add(f"{path}.{key}", "unknown field")
    return True


def _list_of(body: Mapping[str, Any], key: str, errors: ErrorCollector, what: str) -> list[Any]:
    raw = body.get(key, [])
    if not isinstance(raw, list):
        errors.add(f"class.{key}", f"must be a list{what}")
        return []
    return raw


def _names_itself(ref: Any, own: tuple[str, str | None]) -> bool:
    """A class may refer to itself (by id or label) before it exists."""
    own_id, own_label = own
    return ref == own_id or (isinstance(ref, str) and own_label is not None
                             and normalise_label(ref) == normalise_label(own_label))


def _resolve(index: LabelIndex, ref: Any, field: str, errors: list[DomainError]) -> str | None:
    """Resolve a class label, collecting the error instead of raising it."""
    try:
        return index.resolve_class(ref, field)
    except DomainError as error:
        errors.append(error)
        return None


def resolve_type(type_ref: Any, index: LabelIndex, field: str, own: tuple[str, str | None],
                 ) -> tuple[str, str | None]:
    """('type', name) for a value type, ('class', class_id) for a class given by label."""
    if not isinstance(type_ref, str) or not type_ref.strip():
        raise ValidationFailed(FieldError(field, "must be a type name or a class label"))
    if type_problem(type_ref) is None:
        return "type", canonical_type(type_ref)
    localised = TYPE_LABELS.get(normalise_label(type_ref))
    if localised:
        return "type", localised
    if _names_itself(type_ref, own):
        return "class", own[0]
    return "class", index.resolve_class(type_ref, field)


def class_from_labels(body: Mapping[str, Any], index: LabelIndex, language: str,
                      current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The id-form class of a label-form request. `current` is the stored class on
    update: members matched by name or label keep their names."""
    errors = ErrorCollector()
    label_errors: list[DomainError] = []
    _check_fields(body, CLASS_FIELDS, "class", errors)
    errors.raise_if_any()
    label = body.get("label")
    display = _label_in(label, language) if label is not None else None
    if current is not None:
        class_id = str(current["id"])
    elif body.get("id") is not None:
        class_id = str(body["id"])
    elif display:
        class_id = class_id_from_label(display, taken=set(index.classes))
    else:
        raise ValidationFailed(FieldError("class.label", "give a label (or an id) for the class"))
    out: dict[str, Any] = {"id": class_id}
    for key in ("label", "description", "abstract"):
        if key in body:
            out[key] = body[key]
    parents = _list_of(body, "parents", errors, " of class labels or ids")
    resolved_parents = [_resolve(index, ref, f"class.parents[{i}]", label_errors)
                        for i, ref in enumerate(parents)]
    out["parents"] = [p for p in resolved_parents if p is not None]

    old_members = Resolver(members_of(current) if current is not None else [], "property")
    taken: set[str] = set()
    properties: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    own = (class_id, display)
    for i, prop in enumerate(_list_of(body, "properties", errors, "")):
        path = f"class.properties[{i}]"
        if not _check_fields(prop, PROPERTY_FIELDS, path, errors):
            continue
        name = _member_name(prop, "name", old_members, taken, language, path, errors)
        if name is None:
            continue
        try:
            kind, resolved = resolve_type(prop.get("type"), index, f"{path}.type", own)
        except DomainError as error:
            label_errors.append(error)
            continue
        if kind == "class":
            # A property whose type is a class is a relationship to that class.
            rel = {"predicate": name, "target": resolved,
                   "cardinality": prop.get("cardinality", "n:1")}
            for key in ("label", "description", "required"):
                if key in prop:
                    rel[key] = prop[key]
            relationships.append(rel)
        else:
            item = {k: v for k, v in prop.items() if k != "cardinality"}
            item.update(name=name, type=resolved)
            properties.append(item)
    for i, rel in enumerate(_list_of(body, "relationships", errors, "")):
        path = f"class.relationships[{i}]"
        if not _check_fields(rel, RELATIONSHIP_FIELDS, path, errors):
            continue
        name = _member_name(rel, "predicate", old_members, taken, language, path, errors)
        target = rel.get("target")
        resolved_target = class_id if _names_itself(target, own) else _resolve(
            index, target, f"{path}.target", label_errors)
        if name is None or resolved_target is None:
            continue
        relationships.append({**rel, "predicate": name, "target": resolved_target})
    errors.raise_if_any()
    if label_errors:
        raise label_errors[0]
    out["properties"], out["relationships"] = properties, relationships
    return out


def _member_name(item: Mapping[str, Any], key: str, old: Resolver, taken: set[str],
                 language: str, path: str, errors: ErrorCollector) -> str | None:
    """The given name, else the stored member with the same label, else one made from
    the label."""
    name = item.get(key)
    if name is None:
        label = item.get("label")
        if label is None:
            errors.add(f"{path}.label", f"give a label (or a {key})")
            return None
        for text in labels_by_language(label).values():
            found = old.lookup(text)
            if len(found) == 1 and found[0].id not in taken:
                name = found[0].id
                break
        else:
            display = _label_in(label, language) or ""
            name = property_name_from_label(display, taken)
    if name in taken:
        errors.add(f"{path}.{key}", f"'{name}' is used twice")
        return None
    taken.add(str(name))
    return str(name)


def data_from_labels(data: Any, index: LabelIndex, class_id: str) -> dict[str, Any]:
    """Instance data keyed by property labels (or names) → keyed by names."""
    if not isinstance(data, dict):
        raise ValidationFailed(FieldError("data", "must be an object of property values"))
    members = index.member_resolver(class_id)
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = members.resolve(key, f"data.{key}")
        if name in out:
            raise ValidationFailed(FieldError(f"data.{key}", f"'{name}' is given twice"))
        out[name] = value
    return out


def _named(text: MultiText | None, language: str, fallback: str) -> str:
    return pick(text, language) or fallback


def class_ref(index: LabelIndex, class_id: str, language: str) -> dict[str, Any]:
    cls = index.classes.get(class_id)
    return {"id": class_id, "label": _named(cls.get("label") if cls else None, language, class_id)}


def class_view(index: LabelIndex, class_id: str, language: str) -> dict[str, Any]:
    cls = index.classes[class_id]
    view: dict[str, Any] = {
        "id": class_id, "label": _named(cls.get("label"), language, class_id),
        "labels": labels_by_language(cls.get("label")),
        "description": pick(cls.get("description"), language),
        "abstract": bool(cls.get("abstract")),
        "parents": [class_ref(index, p, language) for p in cls.get("parents", [])],
        "properties": [], "relationships": []}
    for lineage_cls in index.lineage(class_id):
        inherited = lineage_cls["id"] != class_id
        for prop in lineage_cls.get("properties", []):
            view["properties"].append({
                "name": prop["name"], "label": _named(prop.get("label"), language, prop["name"]),
                "type": prop["type"], "required": bool(prop.get("required")),
                **({"inherited_from": lineage_cls["id"]} if inherited else {})})
        for rel in lineage_cls.get("relationships", []):
            view["relationships"].append({
                "predicate": rel["predicate"],
                "label": _named(rel.get("label"), language, rel["predicate"]),
                "target": class_ref(index, rel["target"], language),
                "cardinality": rel.get("cardinality", "n:1"),
                **({"inherited_from": lineage_cls["id"]} if inherited else {})})
    return view


def display_label(index: LabelIndex, class_id: str, instance_id: str, data: Mapping[str, Any],
                  language: str) -> str:
    """What to call an instance: its name-like property, else its first string value,
    else its id."""
    props = [p for cls in index.lineage(class_id) for p in cls.get("properties", [])]
    for prop in props:
        labels = {normalise_label(x) for x in labels_by_language(prop.get("label")).values()}
        if (prop["name"] in DISPLAY_NAMES or labels & DISPLAY_LABELS) and data.get(prop["name"]):
            return str(pick(data[prop["name"]], language) if isinstance(data[prop["name"]], dict)
                       else data[prop["name"]])
    for prop in props:
        if prop["type"] == "string" and isinstance(data.get(prop["name"]), str):
            return str(data[prop["name"]])
    return instance_id


def instance_view(index: LabelIndex, class_id: str, instance_id: str, data: Mapping[str, Any],
                  language: str, targets: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """`targets` maps (class_id, instance_id) of related instances to their display labels."""
    props = {p["name"]: p for cls in index.lineage(class_id) for p in cls.get("properties", [])}
    rels = {r["predicate"]: r for cls in index.lineage(class_id) for r in cls.get("relationships", [])}
    view: dict[str, Any] = {
        "id": instance_id, "class": class_ref(index, class_id, language),
        "label": display_label(index, class_id, instance_id, data, language),
        "properties": [], "relationships": []}
    for name, value in data.items():
        if name in rels:
            rel = rels[name]
            values = value if isinstance(value, list) else [value]
            view["relationships"].append({
                "predicate": name, "label": _named(rel.get("label"), language, name),
                "targets": [{"id": v, "class": class_ref(index, rel["target"], language),
                             "label": targets.get((rel["target"], str(v)), str(v))} for v in values]})
        else:
            prop = props.get(name, {})
            view["properties"].append({"name": name, "label": _named(prop.get("label"), language, name),
                                       "value": value})
    return view
