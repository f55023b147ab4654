"""Databases, ontology classes, their properties and relationships."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from spice.domain import ids
from spice.domain.errors import ErrorCollector
from spice.domain.patterns import compile_pattern
from spice.domain.text import MultiText, text_problem
from spice.domain.types import canonical_type, type_problem

Cardinality = Literal["1:1", "1:n", "n:1", "n:m"]
MANY = ("1:n", "n:m")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: Any) -> Any:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Constraints(Strict):
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: list[Any] | None = None
    min_items: int | None = None
    max_items: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Constraints:
        for low, high in (("minimum", "maximum"), ("min_length", "max_length"),
                          ("min_items", "max_items")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is greater than {high} ({hi})")
        if self.pattern is not None:
            compile_pattern(self.pattern)  # ValueError names what RE2 refuses
        if self.enum is not None and not self.enum:
            raise ValueError("enum must list at least one value")
        return self


class Property(Strict):
    name: str
    type: str
    label: MultiText | None = None
    description: MultiText | None = None
    required: bool = False
    default: Any = None
    constraints: Constraints = Constraints()
    properties: list[Property] | None = None  # the fields of an `object`

    _check_label = field_validator("label", "description")(_text)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        problem = ids.property_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("type")
    @classmethod
    def _type(cls, name: str) -> str:
        problem = type_problem(name)
        if problem:
            raise ValueError(problem)
        return canonical_type(name)

    @model_validator(mode="after")
    def _shape(self) -> Property:
        base = self.type.removeprefix("array<").removesuffix(">")
        if base == "object" and not self.properties:
            raise ValueError(f"property '{self.name}' of type object needs 'properties'")
        if base != "object" and self.properties:
            raise ValueError(f"property '{self.name}': only object types have 'properties'")
        if base == "enum" and not self.constraints.enum:
            raise ValueError(f"property '{self.name}' of type enum needs constraints.enum")
        if self.properties:
            duplicates = _duplicates(p.name for p in self.properties)
            if duplicates:
                raise ValueError(f"duplicate nested property names: {', '.join(duplicates)}")
        if self.default is not None:
            from spice.domain.values import validate_value

            errors = ErrorCollector()
            validate_value(self, self.default, f"default of {self.name}", errors)
            if errors.errors:
                raise ValueError(str(errors.errors[0]))
        return self


class Relationship(Strict):
    predicate: str
    target: str
    cardinality: Cardinality = "n:1"
    inverse_predicate: str | None = None
    label: MultiText | None = None
    description: MultiText | None = None
    required: bool = False

    _check_label = field_validator("label", "description")(_text)

    @field_validator("predicate", "inverse_predicate")
    @classmethod
    def _predicate(cls, name: str | None) -> str | None:
        problem = ids.property_name_problem(name) if name is not None else None
        if problem:
            raise ValueError(problem)
        return name

    @field_validator("target")
    @classmethod
    def _target(cls, target: str) -> str:
        problem = ids.class_id_problem(target)
        if problem:
            raise ValueError(problem)
        return target

    @property
    def many(self) -> bool:
        return self.cardinality in MANY


class OntologyClass(Strict):
    id: str
    label: MultiText | None = None
    description: MultiText | None = None
    parents: list[str] = []
    abstract: bool = False
    properties: list[Property] = []
    relationships: list[Relationship] = []

    _check_label = field_validator("label", "description")(_text)

    @field_validator("id")
    @classmethod
    def _id(cls, class_id: str) -> str:
        problem = ids.class_id_problem(class_id)
        if problem:
            raise ValueError(problem)
        return class_id

    @field_validator("parents")
    @classmethod
    def _parents(cls, parents: list[str]) -> list[str]:
        for parent in parents:
            problem = ids.class_id_problem(parent)
            if problem:
                raise ValueError(f"parent '{parent}' {problem}")
        duplicates = _duplicates(parents)
        if duplicates:
            raise ValueError(f"duplicate parents: {', '.join(duplicates)}")
        return parents

    @model_validator(mode="after")
    def _unique_names(self) -> OntologyClass:
        if self.id in self.parents:
            raise ValueError(f"class '{self.id}' cannot be its own parent")
        duplicates = _duplicates(p.name for p in self.properties)
        if duplicates:
            raise ValueError(f"duplicate property names: {', '.join(duplicates)}")
        duplicates = _duplicates(r.predicate for r in self.relationships)
        if duplicates:
            raise ValueError(f"duplicate relationship predicates: {', '.join(duplicates)}")
        clash = {p.name for p in self.properties} & {r.predicate for r in self.relationships}
        if clash:
            raise ValueError(f"names used as both property and relationship: {', '.join(sorted(clash))}")
        return self

    def property(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)


class Database(Strict):
    name: str
    label: MultiText | None = None
    description: MultiText | None = None

    _check_label = field_validator("label", "description")(_text)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        problem = ids.database_name_problem(name)
        if problem:
            raise ValueError(problem)
        return name


def _duplicates(names: Any) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated
