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
None (e.g. a diff entry's `before` for an added item), rather than written as null.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from evalledger.api.encoding import JSONBody


class _AbsentIfNone:
    def __repr__(self) -> str:
        return "ABSENT_IF_NONE"


ABSENT_IF_NONE = _AbsentIfNone()

_ENCODERS: dict[type[BaseModel], Callable[[Any], dict[str, Any]]] = {}


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("one" | "list", Model) when a field holds a response model or a list of them."""
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
    return None


def encoder(model: type[BaseModel]) -> Callable[[Any], dict[str, Any]]:
    """The function that turns an object with `model`'s fields (as attributes) into its wire dict."""
    found = _ENCODERS.get(model)
    if found is not None:
        return found
    namespace: dict[str, Any] = {}
    present: list[str] = []  # the leading fields always written, in one dict display
    rest: list[str] = []  # the fields from the first one absent-if-None on, in the model's order
    for name, field in model.model_fields.items():
        alias = field.serialization_alias or field.alias or name
        value = f"o.{name}"
        source = getattr(model, "wire_sources", {}).get(name)
        if source is not None:  # a value the model computes from the object (e.g. a path as a string)
            namespace[f"src_{name}"] = source
            value = f"src_{name}(o)"
        nested = _nested(field.annotation)
        if nested:
            kind, inner = nested
            namespace[f"enc_{name}"] = _Lazy(inner)
            value = (f"(None if o.{name} is None else enc_{name}(o.{name}))" if kind == "one"
                     else f"(None if o.{name} is None else [enc_{name}(x) for x in o.{name}])")
        if any(m is ABSENT_IF_NONE for m in field.metadata):
            rest += [f"    if o.{name} is not None:", f"        d[{alias!r}] = {value}"]
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


def answer(model: type[BaseModel], obj: Any = None, status_code: int = 200, **fields: Any) -> Response:
    """The response for `obj` (or for the given fields) as `model` puts it on the wire."""
    return JSONBody(encoder(model)(obj if obj is not None else types.SimpleNamespace(**fields)),
                    status_code=status_code)
