"""How item content travels inside events: the one place that encodes and decodes it.

Events never hold an item's `input`, `expectedOutput` and `metadata` directly; they hold
whatever `encode_content` returned. Today that is a plain JSON object. Erasure by
crypto-shredding (content encrypted with a per-item key that a purge destroys) wraps
these two functions and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = Any


@dataclass(frozen=True, slots=True)
class ItemContent:
    input: JSON
    expected_output: JSON
    metadata: dict[str, JSON]


def encode_content(content: ItemContent) -> dict[str, JSON]:
    return {
        "input": content.input,
        "expectedOutput": content.expected_output,
        "metadata": content.metadata,
    }


def decode_content(encoded: dict[str, JSON]) -> ItemContent:
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
