"""The one place typed answers become camelCase JSON: a response model's encoder.

The layers below `api/` answer with typed snake_case objects (dataclasses of the queries and
use cases). `encode(Model, obj)` reads from `obj` the attributes `Model` declares and names
them as `Model` does on the wire (its camelCase aliases), recursing into the fields typed with
another response model; `orjson` then writes the dict. The encoder of each model is generated
once as straight-line code: validating and dumping through pydantic (model_validate with
from_attributes, or a TypeAdapter's dump_json) costs several times more per item, which
matters on the item and result pages (see benchmarks/README.md). The models stay the contract:
they are what OpenAPI documents and what the contract tests check the answers against.

A field marked `Annotated[..., ABSENT_IF_NONE]` is left out of the answer when its value is
None (e.g. a diff entry's `before` for an added item), rather than written as null; one marked
`PresentWhen("flag")` is there only when the object's `flag` is true (a run's live progress
counters, null or not). One marked `AS_RECORDED` holds JSON as the events recorded it (a
result's scores, with whatever keys their scorer or reviewer added) and is written as it is.
A model's `wire_sources` compute a field's value from the object; a value typed with another
response model is then encoded by that model.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from evalledger.api.encoding import JSONBody


class _AbsentIfNone:
    def __repr__(self) -> str:
        return "ABSENT_IF_NONE"


ABSENT_IF_NONE = _AbsentIfNone()


class _AsRecorded:
    def __repr__(self) -> str:
        return "AS_RECORDED"


AS_RECORDED = _AsRecorded()


@dataclass(frozen=True)
class PresentWhen:
    """The field is written only when the object's attribute `flag` is true."""

    flag: str


_ENCODERS: dict[type[BaseModel], Callable[[Any], dict[str, Any]]] = {}


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("one" | "list" | "dict", Model) when a field holds a response model, a list of them or
    a dict of them by name."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "one", annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _nested(arg)
            if found:
                return found
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "list", args[0]
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return "dict", args[1]
    return None


def _one(enc: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else enc(value)


def _many(enc: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else [enc(x) for x in value]


def _by_name(enc: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else {k: enc(v) for k, v in value.items()}


_WRAPPERS = {"_one": _one, "_many": _many, "_by_name": _by_name}


def encoder(model: type[BaseModel]) -> Callable[[Any], dict[str, Any]]:
    """The function that turns an object with `model`'s fields (as attributes) into its wire dict."""
    found = _ENCODERS.get(model)
    if found is not None:
        return found
    if not model.__pydantic_complete__:  # a model naming one defined after it: its fields are known once rebuilt
        model.model_rebuild()
    namespace: dict[str, Any] = dict(_WRAPPERS)
    present: list[str] = []  # the leading fields always written, in one dict display
    rest: list[str] = []  # the fields from the first one written only sometimes on, in the model's order
    for name, field in model.model_fields.items():
        alias = field.serialization_alias or field.alias or name
        value = f"o.{name}"
        source = getattr(model, "wire_sources", {}).get(name)
        if source is not None:  # a value the model computes from the object (e.g. a path as a string)
            namespace[f"src_{name}"] = source
            value = f"src_{name}(o)"
        nested = None if any(m is AS_RECORDED for m in field.metadata) else _nested(field.annotation)
        if nested:
            kind, inner = nested
            namespace[f"enc_{name}"] = _Lazy(inner)
            value = f"_{'one' if kind == 'one' else 'many' if kind == 'list' else 'by_name'}(enc_{name}, {value})"
        when = next((f"o.{m.flag}" for m in field.metadata if isinstance(m, PresentWhen)), None)
        if when is None and any(m is ABSENT_IF_NONE for m in field.metadata):
            when = f"o.{name} is not None"
        if when is not None:
            rest += [f"    if {when}:", f"        d[{alias!r}] = {value}"]
        elif rest:
            rest.append(f"    d[{alias!r}] = {value}")
        else:
            present.append(f"{alias!r}: {value}")
    body = ["def encode(o):", f"    d = {{{', '.join(present)}}}", *rest, "    return d"]
    exec("\n".join(body), namespace)  # noqa: S102 - code generated from the model's own field names
    _ENCODERS[model] = namespace["encode"]
    return namespace["encode"]


class _Lazy:
    """A nested model's encoder, built on first use (models may refer to each other)."""

    __slots__ = ("model", "fn")

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.fn: Callable[[Any], dict[str, Any]] | None = None

    def __call__(self, obj: Any) -> dict[str, Any]:
        if self.fn is None:
            self.fn = encoder(self.model)
        return self.fn(obj)


def encode(model: type[BaseModel], obj: Any) -> dict[str, Any]:
    return encoder(model)(obj)


def encode_by_name(model: type[BaseModel], values: dict[str, Any] | None) -> dict[str, Any] | None:
    """A dict of typed answers by name (a scorer's id, say) as `model` writes each."""
    return None if values is None else {name: encoder(model)(value) for name, value in values.items()}


def answer(model: type[BaseModel], obj: Any = None, status_code: int = 200, **fields: Any) -> Response:
    """The response for `obj` (or for the given fields) as `model` puts it on the wire."""
    return JSONBody(encoder(model)(obj if obj is not None else types.SimpleNamespace(**fields)),
                    status_code=status_code)
