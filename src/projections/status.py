"""Where a read model stands, and how its rebuilds go: the typed answers the follower and the
rebuilds give (snake_case; `api/` and the UI put them into words)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class RebuildReport:
    """A finished rebuild: the log position it reached and how fast it got there."""

    projection: str
    position: int
    events: int
    seconds: float
    events_per_second: int | None


@dataclass(slots=True)
class RebuildState:
    """A rebuild under way or ended (`state`: running, done, failed)."""

    state: str
    started_at: datetime
    position: int
    head: int | None
    finished_at: datetime | None
    report: RebuildReport | None
    error: str | None
    projection: str | None = None  # named when the state answers a start, not inside a projection's status


@dataclass(slots=True)
class ProjectionStatus:
    """A read model's position in the log, the log's head and the lag between them."""

    name: str
    position: int
    head: int
    lag: int
    running: bool
    leader: bool
    last_error: str | None
    rebuild: RebuildState | None = None
