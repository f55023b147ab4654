"""The label index of one database: every label of every class, property and
relationship, in every language it was given, mapped to ids.

Labels are compared after NFKC normalisation, case folding and whitespace
collapsing ("Birth  Date" = "birth date"). A label that names two different
things is ambiguous: resolving it is an error listing the candidates, never a
silent pick. A class or member id is accepted wherever a label is, so clients
can mix the two.
"""
from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spice.domain.errors import DomainError
from spice.domain.text import MultiText, normalise_language


def normalise_label(label: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", label).casefold().split())


def labels_by_language(text: MultiText | None) -> dict[str, str]:
    if text is None:
        return {}
    if isinstance(text, str):
        return {"": text}  # a plain string: no language given
    return {normalise_language(lang): value for lang, value in text.items()}


class UnknownLabel(DomainError):
    code = "unknown_label"
    http_status = 422

    def __init__(self, label: str, kind: str, field: str, close: list[str], *,
                 status: int = 422) -> None:
        hint = f"; close matches: {', '.join(close)}" if close else ""
        super().__init__(f"no {kind} is labelled '{label}'{hint}", field=field)
        self.label, self.kind, self.close_matches = label, kind, close
        self.http_status = status

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "label": self.label, "kind": self.kind,
                "close_matches": self.close_matches}


class AmbiguousLabel(DomainError):
    code = "ambiguous_label"
    http_status = 409

    def __init__(self, label: str, kind: str, field: str, candidates: list[dict[str, Any]]) -> None:
        ids = ", ".join(str(c["id"]) for c in candidates)
        super().__init__(f"the {kind} label '{label}' is ambiguous: it names {ids}; "
                         "use one of the ids instead", field=field)
        self.label, self.kind, self.candidates = label, kind, candidates

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "label": self.label, "kind": self.kind,
                "candidates": self.candidates}


@dataclass(frozen=True)
class Named:
    """One thing a label can name: a class, or a member (property/relationship) of one."""
    id: str
    kind: str  # class | property | relationship
    labels: Mapping[str, str]  # language → label ("" for a plain string)
    owner: str | None = None  # the class of a member

    def describe(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "kind": self.kind, "labels": dict(self.labels)}
        if self.owner:
            body["class_id"] = self.owner
        return body


class Resolver:
    """Label → id among a set of named things of one scope (a database's classes,
    or one class's members)."""

    def __init__(self, things: Iterable[Named], kind: str) -> None:
        self.kind = kind
        self.things: dict[str, Named] = {}
        self.by_label: dict[str, dict[str, Named]] = {}
        for thing in things:
            self.things[thing.id] = thing
            for label in thing.labels.values():
                self.by_label.setdefault(normalise_label(label), {})[thing.id] = thing

    def lookup(self, ref: str) -> list[Named]:
        """Every thing the reference could mean: an exact id wins over labels."""
        if ref in self.things:
            return [self.things[ref]]
        return list(self.by_label.get(normalise_label(ref), {}).values())

    def resolve(self, ref: Any, field: str, *, status: int = 422) -> str:
        if not isinstance(ref, str) or not ref.strip():
            raise UnknownLabel(str(ref), self.kind, field, [], status=status)
        found = self.lookup(ref)
        if len(found) == 1:
            return found[0].id
        if not found:
            raise UnknownLabel(ref, self.kind, field, self.close_matches(ref), status=status)
        raise AmbiguousLabel(ref, self.kind, field,
                             [t.describe() for t in sorted(found, key=lambda t: t.id)])

    def close_matches(self, ref: str, n: int = 5) -> list[str]:
        originals: dict[str, str] = {}
        for thing in self.things.values():
            for label in [thing.id, *thing.labels.values()]:
                originals.setdefault(normalise_label(label), label)
        matches = difflib.get_close_matches(normalise_label(ref), list(originals), n=n, cutoff=0.5)
        # Substring matches too ("birth" for "birth date"): what a person means by "close".
        key = normalise_label(ref)
        matches += [k for k in originals if key and key in k and k not in matches]
        return [originals[m] for m in matches[:n]]

    def ambiguous(self) -> list[dict[str, Any]]:
        return [{"label": label, "kind": self.kind,
                 "candidates": sorted(t.id for t in things.values())}
                for label, things in sorted(self.by_label.items()) if len(things) > 1]


def class_named(cls: Mapping[str, Any]) -> Named:
    return Named(cls["id"], "class", labels_by_language(cls.get("label")))


def members_of(cls: Mapping[str, Any]) -> list[Named]:
    members = [Named(p["name"], "property", labels_by_language(p.get("label")), cls["id"])
               for p in cls.get("properties", [])]
    members += [Named(r["predicate"], "relationship", labels_by_language(r.get("label")), cls["id"])
                for r in cls.get("relationships", [])]
    return members


class LabelIndex:
    """All labels of one database, built from its class documents."""

    def __init__(self, classes: Iterable[Mapping[str, Any]]) -> None:
        self.classes: dict[str, Mapping[str, Any]] = {c["id"]: c for c in classes}
        self.class_resolver = Resolver((class_named(c) for c in self.classes.values()), "class")

    def resolve_class(self, ref: Any, field: str, *, status: int = 422) -> str:
        return self.class_resolver.resolve(ref, field, status=status)

    def lineage(self, class_id: str) -> list[Mapping[str, Any]]:
        """The class and its ancestors, furthest first (children override)."""
        order: list[str] = []
        frontier = [class_id]
        while frontier:
            current = frontier.pop(0)
            if current in order or current not in self.classes:
                continue
            order.append(current)
            frontier.extend(self.classes[current].get("parents", []))
        return [self.classes[c] for c in reversed(order)]

    def member_resolver(self, class_id: str) -> Resolver:
        """Properties and relationships of the class, inherited ones included."""
        merged: dict[str, Named] = {}
        for cls in self.lineage(class_id):
            merged.update({m.id: m for m in members_of(cls)})
        return Resolver(merged.values(), "property")

    def entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for cls in sorted(self.classes.values(), key=lambda c: c["id"]):
            for thing in [class_named(cls), *members_of(cls)]:
                for language, label in sorted(thing.labels.items()):
                    entry = {"label": label, "language": language or None, "kind": thing.kind,
                             "id": thing.id}
                    if thing.owner:
                        entry["class_id"] = thing.owner
                    out.append(entry)
        return out

    def ambiguities(self) -> list[dict[str, Any]]:
        found = self.class_resolver.ambiguous()
        for class_id in sorted(self.classes):
            for item in Resolver(members_of(self.classes[class_id]), "property").ambiguous():
                found.append({**item, "class_id": class_id})
        return found
