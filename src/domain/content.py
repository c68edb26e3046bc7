"""How item content travels inside events: the one place that encodes and decodes it.

Events hold an item's `input`, `expectedOutput` and `metadata` as whatever
`encode_content` returned: a plain JSON object in memory. In the event store that object
is sealed with the item's own key (`sealing.py`); events read back from the store carry a
`Sealed` stand-in instead, opened only when the content is first looked at. Replaying a
dataset therefore decrypts nothing until a command, a query or the audit needs an item's
content, and a cached aggregate holds its items' content as compact tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

JSON = Any

_UNOPENED = object()


class Sealed:
    """Item content as read from the event store, not yet decrypted. `open_json()` gives
    its three JSON texts (input, expectedOutput, metadata) as they were sealed, without
    parsing them (a rebuild writes them to the read model as they are); `open()` the plain
    JSON object (`encode_content`'s shape). `size` is about how many bytes it holds."""

    __slots__ = ("_open_json", "size")

    def __init__(self, open_json: Callable[[], tuple[bytes, bytes, bytes]], size: int = 0) -> None:
        self._open_json = open_json
        self.size = size

    def open_json(self) -> tuple[bytes, bytes, bytes]:
        return self._open_json()

    def open(self) -> dict[str, JSON]:
        input_json, expected_json, metadata_json = self._open_json()
        return {"input": orjson.loads(input_json), "expectedOutput": orjson.loads(expected_json),
                "metadata": orjson.loads(metadata_json)}


class ItemContent:
    """An item's input, expected output and metadata (immutable). Built from values, or
    from a `Sealed` stand-in that is opened on first access."""

    __slots__ = ("_input", "_expected_output", "_metadata", "_sealed")

    def __init__(self, input: JSON, expected_output: JSON, metadata: dict[str, JSON]) -> None:  # noqa: A002
        self._input, self._expected_output, self._metadata = input, expected_output, metadata
        self._sealed: Sealed | None = None

    @classmethod
    def unopened(cls, sealed: Sealed) -> ItemContent:
        content = cls(_UNOPENED, None, {})
        content._sealed = sealed
        return content

    def _open(self) -> None:
        sealed = self._sealed
        if sealed is not None:
            encoded = sealed.open()
            self._expected_output = encoded.get("expectedOutput")
            self._metadata = encoded.get("metadata") or {}
            self._input = encoded["input"]
            self._sealed = None

    @property
    def input(self) -> JSON:
        if self._sealed is not None:
            self._open()
        return self._input

    @property
    def expected_output(self) -> JSON:
        if self._sealed is not None:
            self._open()
        return self._expected_output

    @property
    def metadata(self) -> dict[str, JSON]:
        if self._sealed is not None:
            self._open()
        return self._metadata

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemContent):
            return NotImplemented
        return (self.input, self.expected_output, self.metadata) == (other.input, other.expected_output, other.metadata)

    __hash__ = None  # type: ignore[assignment]  # holds dicts, as before

    def __repr__(self) -> str:
        if self._sealed is not None:
            return "ItemContent(<sealed>)"
        return f"ItemContent(input={self._input!r}, expected_output={self._expected_output!r}, metadata={self._metadata!r})"


def encode_content(content: ItemContent) -> dict[str, JSON]:
    return {
        "input": content.input,
        "expectedOutput": content.expected_output,
        "metadata": content.metadata,
    }


def decode_content(encoded: dict[str, JSON] | Sealed) -> ItemContent:
    if isinstance(encoded, Sealed):
        return ItemContent.unopened(encoded)
    return ItemContent(
        input=encoded["input"],
        expected_output=encoded.get("expectedOutput"),
        metadata=encoded.get("metadata") or {},
    )


# What an item's content reads as once it has been purged (its key destroyed): no input,
# no expected output, empty metadata. Texts that may have copied it (a run result's
# error, a scorer's reason) read as PURGED_TEXT where there was one, else null.
PURGED_CONTENT = ItemContent(input=None, expected_output=None, metadata={})
PURGED_TEXT = "[purged]"
