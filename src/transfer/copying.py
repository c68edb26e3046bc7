"""Copying items into another dataset whose items may already use their externalIds.

An externalId is unique within a dataset, so a copied item whose externalId the target
already uses cannot keep it. The caller chooses: `refuse` (the default: nothing is
copied, and the answer names the clashes), `skip` (those items are left out) or `drop`
(they are copied without their externalId).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from evalledger.domain.datasets import NewItem
from evalledger.domain.errors import ExternalIdTakenError

ON_CONFLICT = ("refuse", "skip", "drop")
OnConflict = Literal["refuse", "skip", "drop"]


def settle_external_ids(items: list[NewItem], taken: Mapping[str, str], target: object,
                        on_conflict: OnConflict) -> tuple[list[NewItem], list[str]]:
    """The items to copy, and the source ids of those left out. `taken`: the target's
    externalId -> item id."""
    clashes = [item for item in items if item.external_id is not None and item.external_id in taken]
    if not clashes:
        return items, []
    if on_conflict == "refuse":
        shown = ", ".join(f"{item.external_id!r} (used by item {taken[item.external_id or '']})"
                          for item in clashes[:5])
        message = (f"{len(clashes)} item(s) to copy have an externalId dataset {target} already uses: {shown}; "
                   "nothing was copied")
        raise ExternalIdTakenError(
            f"{message} (pass onConflict=skip to leave them out, or onConflict=drop to copy them without "
            "their externalId)",
            message=message,
            remedy={"parameter": "onConflict", "value": "skip|drop",
                    "purpose": "to leave them out, or to copy them without their externalId"},
            clashes=[{"external_id": item.external_id, "source_item_id": (item.source or {}).get("itemId"),
                      "target_item_id": taken[item.external_id or ""]} for item in clashes[:100]],
        )
    clashing = {id(item) for item in clashes}
    if on_conflict == "skip":
        return ([item for item in items if id(item) not in clashing],
                [str((item.source or {}).get("itemId")) for item in clashes])
    return [NewItem(content=item.content, external_id=None, source=item.source) if id(item) in clashing else item
            for item in items], []
