"""Dataset use cases (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from evalledger.domain.applications import Datasets, Written
from evalledger.projections.dataset_queries import DatasetQueries


@dataclass
class DatasetUseCases:
    datasets: Datasets
    queries: DatasetQueries
    read_your_writes: Any  # Callable[[Written], None]

    def _settled(self, written: Written) -> Written:
        self.read_your_writes(written)
        return written

    def create_dataset(
        self,
        *,
        name: str,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        input_schema: dict[str, Any] | None = None,
        expected_output_schema: dict[str, Any] | None = None,
        actor: str,
        reason: str | None = None,
    ) -> dict[str, Any]:
        written = self._settled(self.datasets.create_dataset(
            name=name, description=description, metadata=metadata or {}, input_schema=input_schema,
            expected_output_schema=expected_output_schema, actor=actor, reason=reason,
        ))
        return self.queries.get_dataset(written.aggregate_id)

    def change_details(self, dataset_id: UUID, changes: dict[str, Any], *, actor: str,
                       reason: str | None = None) -> dict[str, Any]:
        self._settled(self.datasets.change_details(dataset_id, changes, actor=actor, reason=reason))
        return self.queries.get_dataset(dataset_id)

    def delete_dataset(self, dataset_id: UUID, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        written = self._settled(self.datasets.delete_dataset(dataset_id, actor=actor, reason=reason))
        return {"datasetId": dataset_id, "version": written.dataset_version, "deleted": True}
