"""The run application: commands on runs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Recording

from evalledger.adapters.sealing import ItemPurgedDuringWrite, strip_purged_results
from evalledger.domain.errors import ConflictError
from evalledger.domain.runs import Run, RunNotFoundError, RunSettings
from evalledger.domain.storable import ensure_storable
from evalledger.service_layer.applications.ledger import LedgerApplication, Written, last_notification_id


class Runs(LedgerApplication):
    """Commands on runs. Each run has one writer at a time (its executor, or the group
    committer for caller-driven submissions), so saves rarely conflict; when they do, the
    command is retried on the fresh aggregate."""

    def _load(self, run_id: UUID) -> Run:
        return self._get(run_id, Run, RunNotFoundError, "run")

    def get_run(self, run_id: UUID) -> Run:
        """The current aggregate (callers must not change it)."""
        with self._lock_for(run_id):
            return self._load(run_id)

    def _written(self, run: Run, recordings: list[Recording[UUID]]) -> Written:
        return Written(
            aggregate_id=run.id,
            aggregate_version=run.version,
            notification_id=last_notification_id(recordings),
            recordings=recordings,
            changed=bool(recordings),
        )

    def create_run(
        self,
        *,
        run_id: UUID,
        dataset_id: UUID,
        dataset_version: int,
        target: dict[str, Any] | None,
        scorers: list[Any],
        settings: RunSettings,
        name: str,
        metadata: dict[str, Any],
        total_items: int,
        actor: str = "anonymous",
        reason: str | None = None,
    ) -> Written:
        """Create a run; creating the same run again (same id, same definition) is a no-op,
        the same id with a different definition is a conflict."""
        ensure_storable({"target": target, "scorers": scorers, "name": name, "metadata": metadata})
        with self._lock_for(run_id):
            try:
                existing = self._load(run_id)
            except RunNotFoundError:
                existing = None
            if existing is not None:
                same = (
                    existing.dataset_id == str(dataset_id)
                    and existing.dataset_version == dataset_version
                    and existing.target == target
                    and existing.scorers == scorers
                    and existing.settings == settings.as_wire()
                    and existing.name == name
                    and existing.metadata == metadata
                )
                if not same:
                    raise ConflictError(f"run {run_id} already exists with a different definition")
                return self._written(existing, [])
            run = Run.create(
                run_id=run_id,
                dataset_id=dataset_id,
                dataset_version=dataset_version,
                target=target,
                scorers=scorers,
                settings=settings,
                name=name,
                metadata=metadata,
                total_items=total_items,
                actor=actor,
                reason=reason,
            )
            try:
                recordings = self.save(run)
            except IntegrityError:
                raise ConflictError(f"run {run_id} was created concurrently; retry to compare") from None
            return self._written(run, recordings)

    def start_run(self, run_id: UUID, *, actor: str = "runner") -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.start(actor=actor))
        return self._written(run, recordings)

    def record_results(
        self, run_id: UUID, results: list[dict[str, Any]], *, upsert: bool, actor: str = "runner"
    ) -> Written:
        # Results for items purged meanwhile keep their statistics but none of their texts.
        results = strip_purged_results(self.item_keys, results)
        try:
            run, _, recordings = self._command(
                run_id, lambda run: run.record_results(results, upsert=upsert, actor=actor)
            )
        except ItemPurgedDuringWrite:  # purged between the check and the save
            results = strip_purged_results(self.item_keys, results)
            run, _, recordings = self._command(
                run_id, lambda run: run.record_results(results, upsert=upsert, actor=actor)
            )
        return self._written(run, recordings)

    def finish_run(self, run_id: UUID, *, error: str | None = None, actor: str = "runner") -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.finish(actor=actor, error=error))
        return self._written(run, recordings)

    def finalize_run(self, run_id: UUID, *, actor: str = "anonymous") -> Written:
        """Finish a caller-driven run; again on a finished one: nothing recorded (idempotent)."""
        run, _, recordings = self._command(run_id, lambda run: run.finalize(actor=actor))
        return self._written(run, recordings)

    def cancel_run(self, run_id: UUID, *, actor: str = "anonymous", reason: str | None = None) -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.cancel(actor=actor, reason=reason))
        return self._written(run, recordings)

    def review_result(self, run_id: UUID, *, item_id: str, repetition: int, verdict: str | None,
                      scores: dict[str, float | None], criteria: dict[str, float | None], comment: str | None,
                      flagged: bool | None, actor: str = "anonymous", reason: str | None = None) -> Written:
        run, _, recordings = self._command(run_id, lambda run: run.review(
            item_id=item_id, repetition=repetition, verdict=verdict, scores=scores, criteria=criteria,
            comment=comment, flagged=flagged, actor=actor, reason=reason))
        return self._written(run, recordings)
