"""What every event of every aggregate records besides its change: who did it and why."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class AuditedEvent(Aggregate.Event):
    """The base of each aggregate's `Event`. Version 1 of the first dataset and run events
    predates the audit log: it had no `actor` and `reason`, and is upcast on read. A class
    whose stored shape changes gets the next `class_version` and an `upcast_vN_vN+1` static
    method; stored rows are never rewritten."""

    actor: str
    reason: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("actor", "anonymous")
        state.setdefault("reason", None)
