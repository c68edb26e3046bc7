"""Operating the read models: where each stands in the log, rebuilding one (in the
background, with its progress), and checking them all against the log (`audit verify`),
also in the background, since a check replays every dataset and run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from evalledger.domain.errors import ConflictError, NotFoundError
from evalledger.projections.follower import ProjectionFollower
from evalledger.projections.rebuild import Rebuilds

if TYPE_CHECKING:
    from evalledger.bootstrap import Ledger

log = logging.getLogger(__name__)


class AuditRunningError(ConflictError):
    problem_type = "audit-running"


class Operations:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._audit: dict[str, Any] | None = None

    @property
    def rebuilds(self) -> Rebuilds:
        # A ledger built without a Rebuilds (e.g. by a script) still rebuilds, untracked.
        return self.ledger.rebuilds or Rebuilds(self.ledger.session_connection)

    def projections(self) -> list[dict[str, Any]]:
        """Each read model's position, the log's head, the lag, and its latest rebuild."""
        rebuilds = self.ledger.rebuilds
        return [{**follower.status(), "rebuild": None if rebuilds is None else rebuilds.latest(follower.name)}
                for follower in self.ledger.followers]

    def follower(self, name: str) -> ProjectionFollower:
        follower = next((f for f in self.ledger.followers if f.name == name), None)
        if follower is None:
            raise NotFoundError(f"no projection named {name!r}; there are: "
                                f"{', '.join(f.name for f in self.ledger.followers)}")
        return follower

    def rebuild(self, name: str) -> dict[str, Any]:
        """Rebuild now; the report once it is done."""
        return self.rebuilds.run(self.follower(name))

    def start_rebuild(self, name: str) -> dict[str, Any]:
        """Start a rebuild in the background; its state at once (RebuildRunningError while
        another rebuild of the same read model runs)."""
        return {"projection": name, **self.rebuilds.start(self.follower(name))}

    # -- audit verify ---------------------------------------------------------------------

    def audit_state(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._audit is None else {**self._audit, "findings": list(self._audit["findings"])}

    def start_audit(self) -> dict[str, Any]:
        """Check every dataset and run against the log, in a thread; refused while a check runs."""
        with self._lock:
            if self._audit is not None and self._audit["state"] == "running":
                raise AuditRunningError("a check of the read models is running already; wait for its result")
            self._audit = {"state": "running", "startedAt": datetime.now(UTC).isoformat(), "finishedAt": None,
                           "datasets": 0, "runs": 0, "checked": 0, "total": None, "findings": [], "error": None}
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
                self._audit.update(state="failed", error=f"{type(error).__name__}: {error}",
                                   finishedAt=datetime.now(UTC).isoformat())
            return
        with self._lock:
            assert self._audit is not None
            self._audit.update(state="done", finishedAt=datetime.now(UTC).isoformat())

    def _note_audit(self, **changes: Any) -> None:
        with self._lock:
            assert self._audit is not None
            findings = changes.pop("findings", ())
            self._audit["findings"].extend(str(f) for f in findings)
            self._audit.update(changes)

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
