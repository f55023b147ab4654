"""A database's ontology as a whole: inheritance, effective properties, instance validation."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spice.domain import ids
from spice.domain.errors import ErrorCollector, FieldError, ValidationFailed
from spice.domain.ontology import OntologyClass, Property, Relationship
from spice.domain.values import validate_object


@dataclass(frozen=True)
class Schema:
    classes: Mapping[str, OntologyClass]

    def ancestors(self, class_id: str) -> list[str]:
        """Nearest first, each once (diamonds are fine); unknown parents are skipped."""
        order: list[str] = []
        seen = {class_id}
        frontier = list(self.classes[class_id].parents) if class_id in self.classes else []
        while frontier:
            parent = frontier.pop(0)
            if parent in seen or parent not in self.classes:
                continue
            seen.add(parent)
            order.append(parent)
            frontier.extend(self.classes[parent].parents)
        return order

    def lineage(self, class_id: str) -> list[OntologyClass]:
        """The class and its ancestors, furthest ancestor first, so children override."""
        return [self.classes[c] for c in reversed([class_id, *self.ancestors(class_id)])]

    def effective_properties(self, class_id: str) -> list[Property]:
        merged: dict[str, Property] = {}
        for cls in self.lineage(class_id):
            merged.update({p.name: p for p in cls.properties})
        return list(merged.values())

    def effective_relationships(self, class_id: str) -> list[Relationship]:
        merged: dict[str, Relationship] = {}
        for cls in self.lineage(class_id):
            merged.update({r.predicate: r for r in cls.relationships})
        return list(merged.values())

    def subclasses(self, class_id: str) -> list[str]:
        return sorted(c.id for c in self.classes.values() if class_id in c.parents)

    def referrers(self, class_id: str) -> list[str]:
        return sorted(c.id for c in self.classes.values()
                      if c.id != class_id and any(r.target == class_id for r in c.relationships))

    def validate_instance(self, class_id: str, data: Any, path: str = "data") -> dict[str, Any]:
        """Validate instance data against the class and everything it inherits.

        Relationship values are instance ids (a list for the many side); whether
        those instances exist is for the store to check, not the pure domain.
        """
        cls = self.classes.get(class_id)
        if cls is None:
            raise ValidationFailed(FieldError("class_id", f"class '{class_id}' does not exist"))
        if cls.abstract:
            raise ValidationFailed(FieldError("class_id", f"class '{class_id}' is abstract"))
        if not isinstance(data, dict):
            raise ValidationFailed(FieldError(path, "must be an object"))
        relationships = {r.predicate: r for r in self.effective_relationships(class_id)}
        errors = ErrorCollector()
        props_part = {k: v for k, v in data.items() if k not in relationships}
        stored = validate_object(self.effective_properties(class_id), props_part, path, errors)
        for predicate, rel in relationships.items():
            value = data.get(predicate)
            field = f"{path}.{predicate}"
            if value is None:
                if rel.required:
                    errors.add(field, "is required")
                continue
            targets = value if rel.many else [value]
            if rel.many and not isinstance(value, list):
                errors.add(field, f"must be a list of instance ids ({rel.cardinality})")
                continue
            for i, target in enumerate(targets):
                problem = ids.instance_id_problem(target)
                if problem:
                    errors.add(f"{field}[{i}]" if rel.many else field, f"instance id {problem}")
            stored[predicate] = value
        errors.raise_if_any()
        return stored
