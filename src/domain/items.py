"""An item of a dataset: the item itself, a new one as a command asks for it, a partial update,
and the entry an event records for it (content only as `content.encode_content` gives it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalledger.domain.content import ItemContent, decode_content, encode_content

JSON = Any


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    external_id: str | None
    content: ItemContent
    source: dict[str, JSON] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item as a command asks for it, before it has an id."""

    content: ItemContent
    external_id: str | None = None
    id: str | None = None
    source: dict[str, JSON] | None = None


@dataclass(frozen=True, slots=True)
class ItemChange:
    """A partial update: only the fields named in `fields` change."""

    item_id: str
    input: JSON = None
    expected_output: JSON = None
    metadata: dict[str, JSON] | None = None
    external_id: str | None = None
    fields: frozenset[str] = frozenset()  # which of the above were given


def item_entry(item: Item) -> dict[str, JSON]:
    entry = {"id": item.id, "externalId": item.external_id, "content": encode_content(item.content)}
    if item.source is not None:
        entry["source"] = item.source
    return entry


def item_from_entry(entry: dict[str, JSON]) -> Item:
    return Item(id=entry["id"], external_id=entry.get("externalId"), content=decode_content(entry["content"]),
                source=entry.get("source"))
