"""Run use cases the entry points share: start, cancel, and compare a baseline with one
candidate or several (the rule for several: each is compared with the baseline, and the
answer regresses when any of them does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from evalledger.analysis.comparison import CompareOptions, RunComparer
from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import RunSettings
from evalledger.execution.service import RunService


@dataclass
class RunUseCases:
    run_service: RunService
    comparer: RunComparer

    def create_run(self, dataset_id: UUID, *, target: dict[str, Any] | None, scorers: list[Any],
                   settings: RunSettings, version: int | None = None, name: str = "",
                   metadata: dict[str, Any] | None = None, run_id: UUID | None = None, actor: str = "anonymous",
                   reason: str | None = None) -> dict[str, Any]:
        """Pin the version, check the definition, record the run and launch it (see RunService)."""
        return self.run_service.create_run(dataset_id, target=target, scorers=scorers, settings=settings,
                                           version=version, name=name, metadata=metadata, run_id=run_id,
                                           actor=actor, reason=reason)

    def cancel_run(self, run_id: UUID, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        return self.run_service.cancel_run(run_id, actor=actor, reason=reason)

    def compare(self, baseline: UUID, *, candidate: UUID | None = None, candidates: list[UUID] | None = None,
                options: CompareOptions | None = None) -> dict[str, Any]:
        """One candidate: its comparison. Several: each one's, and whether any regressed."""
        if (candidate is None) == (candidates is None):
            raise InvalidRequestError("give either runIdB (one candidate) or candidates (several)")
        options = options or CompareOptions()
        if candidate is not None:
            return self.comparer.compare(baseline, candidate, options)
        comparisons = [self.comparer.compare(baseline, b, options) for b in candidates or []]
        return {"runIdA": baseline, "hasRegression": any(c["hasRegression"] for c in comparisons),
                "comparisons": comparisons}
