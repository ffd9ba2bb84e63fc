"""Facts about the wire format's fields, stated once beside each field and derived everywhere.

A model field carries its facts as ``Annotated`` metadata (``Facts``): its label for people,
whether it is personal data, whether an object needs it when the object is sent. A paged
list's query is a table of ``ListFilter`` rows on the model it lists. From these, and from the
fields themselves, the rest of the toolkit derives what it needs: a DataFrame's columns, the
form's inputs and sections, the report's personal-data mask, the client's filter names, the
sandbox's SQL and its OpenAPI query parameters. Adding a field to a model is one edit.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.alias_generators import to_camel, to_snake

__all__ = ["Facts", "ListFilter", "facts", "field_at", "leaf_kind", "nested_model", "wire_paths"]


@dataclass(frozen=True)
class Facts:
    """What the toolkit knows about one field besides its type."""

    #: Shown to people (form labels, column headers).
    label: str
    #: Names, contact details, dates of birth, street lines: masked in shared reports.
    personal: bool = False
    #: The enclosing object is incomplete without it whenever it is sent (address parts).
    required_when_sent: bool = False
    #: The only values accepted from users (servers may know more: read leniently).
    choices: tuple[str, ...] = ()


#: How a list filter compares the field with the value given (``before``: an exclusive maximum).
Match = Literal["any_of", "equal", "equal_ci", "contains_ci", "flag", "min", "max", "before"]


@dataclass(frozen=True)
class ListFilter:
    """One query parameter of a paged list: its wire name, the field(s) it reads, how it matches.

    ``any_of`` filters take several values, as repeated query parameters (never comma-split:
    see docs/api-decisions.md#multi-value-filters).
    """

    wire: str
    paths: tuple[str, ...]
    match: Match
    type: type = str

    @property
    def python_name(self) -> str:
        """The keyword a Python caller uses (``date_of_birth_min``); the wire name works too."""
        return to_snake(self.wire)

    @property
    def many(self) -> bool:
        return self.match == "any_of"


def facts(model: type[BaseModel], name: str) -> Facts:
    """The ``Facts`` of a field; a plain label from its name when it declares none."""
    info = model.model_fields[name]
    found = next((m for m in info.metadata if isinstance(m, Facts)), None)
    return found or Facts(label=to_snake(name).replace("_", " ").capitalize())


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Address | None`` and the like, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def wire_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf field as a dotted wire path, in declaration order (``address.zipCode``)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or to_camel(name))
        inner = nested_model(info.annotation)
        paths.extend(wire_paths(inner, f"{path}.") if inner else [path])
    return paths


def field_at(model: type[BaseModel], path: str) -> tuple[type[BaseModel], str]:
    """The model that declares the field at a dotted wire path, and the field's Python name."""
    *parents, last = path.split(".")
    for part in parents:
        model = nested_model(model.model_fields[_python_name(model, part)].annotation)  # type: ignore[assignment]
    return model, _python_name(model, last)


def _python_name(model: type[BaseModel], wire: str) -> str:
    for name, info in model.model_fields.items():
        if (info.alias or to_camel(name)) == wire:
            return name
    raise KeyError(f"{model.__name__} has no field {wire!r}")


def leaf_kind(model: type[BaseModel], path: str) -> str:
    """``choice``, ``datetime``, ``date``, ``flag``, ``integer`` or ``text``: the field's kind of value."""
    owner, name = field_at(model, path)
    annotation = owner.model_fields[name].annotation
    types_ = {a for a in (annotation, *typing.get_args(annotation)) if a is not types.NoneType}
    if facts(owner, name).choices:
        return "choice"
    if dt.datetime in types_:
        return "datetime"
    if dt.date in types_:
        return "date"
    if bool in types_:
        return "flag"
    if int in types_:
        return "integer"
    return "text"
