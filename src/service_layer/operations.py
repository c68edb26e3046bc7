"""Operating the read models: where each stands in the log, rebuilding one (in the
background, with its progress), and checking them all against the log (`audit verify`),
also in the background, since a check replays every dataset and run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from evalledger.domain.errors import ConflictError, NotFoundError
from evalledger.projections.follower import ProjectionFollower
from evalledger.projections.status import ProjectionStatus, RebuildReport, RebuildState

if TYPE_CHECKING:
    from evalledger.bootstrap import Ledger

log = logging.getLogger(__name__)


class AuditRunningError(ConflictError):
    problem_type = "audit-running"


# The answers: typed, snake_case; `api/` and the UI put them into words. A read model's status
# and its rebuilds' come from projections/status.py.


@dataclass(slots=True)
class Health:
    status: str
    projections: list[ProjectionStatus]
    database: str | None = None  # named to a caller with a valid key only


@dataclass(slots=True)
class AuditState:
    state: str  # running, done, failed
    started_at: datetime
    finished_at: datetime | None = None
    datasets: int = 0
    runs: int = 0
    checked: int = 0
    total: int | None = None
    findings: list[str] = field(default_factory=list)
    error: str | None = None


class Operations:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._audit: AuditState | None = None

    def health(self, *, with_database: bool) -> Health:
        """Each read model's lag; the database in use only for a caller with a valid key."""
        return Health("ok", [f.status() for f in self.ledger.followers],
                      self.ledger.connection.describe() if with_database else None)

    def projections(self) -> list[ProjectionStatus]:
        """Each read model's position, the log's head, the lag, and its latest rebuild."""
        rebuilds = self.ledger.rebuilds
        return [replace(f.status(), rebuild=rebuilds.latest(f.name)) for f in self.ledger.followers]

    def follower(self, name: str) -> ProjectionFollower:
        follower = next((f for f in self.ledger.followers if f.name == name), None)
        if follower is None:
            raise NotFoundError(f"no projection named {name!r}; there are: "
                                f"{', '.join(f.name for f in self.ledger.followers)}")
        return follower

    def rebuild(self, name: str) -> RebuildReport:
        """Rebuild now; the report once it is done."""
        return self.ledger.rebuilds.run(self.follower(name))

    def start_rebuild(self, name: str) -> RebuildState:
        """Start a rebuild in the background; its state at once (RebuildRunningError while
        another rebuild of the same read model runs)."""
        return self.ledger.rebuilds.start(self.follower(name))

    # -- audit verify ---------------------------------------------------------------------

    def audit_state(self) -> AuditState | None:
        with self._lock:
            return None if self._audit is None else replace(self._audit, findings=list(self._audit.findings))

    def start_audit(self) -> AuditState:
        """Check every dataset and run against the log, in a thread; refused while a check runs."""
        with self._lock:
            if self._audit is not None and self._audit.state == "running":
                raise AuditRunningError("a check of the read models is running already; wait for its result")
            self._audit = AuditState(state="running", started_at=datetime.now(UTC))
        threading.Thread(target=self._audit_in_background, name="audit-verify", daemon=True).start()
        state = self.audit_state()
        assert state is not None
        return state

    def _audit_in_background(self) -> None:
        try:
            self.verify(progress=self._note_audit)
        except Exception as error:  # noqa: BLE001 - shown on the operations page
            log.exception("audit verify failed")
            with self._lock:
                assert self._audit is not None
                self._audit.state, self._audit.error = "failed", f"{type(error).__name__}: {error}"
                self._audit.finished_at = datetime.now(UTC)
            return
        with self._lock:
            assert self._audit is not None
            self._audit.state, self._audit.finished_at = "done", datetime.now(UTC)

    def _note_audit(self, **changes: Any) -> None:
        with self._lock:
            assert self._audit is not None
            self._audit.findings.extend(str(f) for f in changes.pop("findings", ()))
            for name, value in changes.items():
                setattr(self._audit, name, value)

    def verify(self, dataset_ids: Sequence[UUID] | None = None,
               progress: Callable[..., None] | None = None) -> list[Any]:
        """What `evalledger audit verify` does: catch the read models up, then replay every
        dataset (or the ones given) and every run and compare; the differences found."""
        from evalledger.audit import all_dataset_ids, all_run_ids, verify_dataset, verify_run

        ledger = self.ledger
        for follower in ledger.followers:
            follower.catch_up()
        datasets = list(dataset_ids) if dataset_ids is not None else all_dataset_ids(ledger)
        runs = [] if dataset_ids is not None else all_run_ids(ledger)
        note = progress or (lambda **_: None)
        note(datasets=len(datasets), runs=len(runs), total=len(datasets) + len(runs))
        findings: list[Any] = []
        checked = 0
        for kind, ids, check in (("dataset", datasets, verify_dataset), ("run", runs, verify_run)):
            for aggregate_id in ids:
                found = list(check(ledger, aggregate_id))
                findings += found
                checked += 1
                note(checked=checked, findings=found)
        return findings
