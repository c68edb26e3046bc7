"""What a key may see: objects of its own project only (instance keys see every project).

An object of another project answers exactly as one that does not exist (404, the same
detail), so ids of other projects can't be probed. Entry points call these checks for every
dataset or run id a request names, in its path or in its body."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from evalledger.domain.access import Principal
from evalledger.domain.errors import DatasetNotFoundError, InvalidRequestError
from evalledger.domain.runs import RunNotFoundError
from evalledger.projections.dataset_queries import DatasetQueries
from evalledger.projections.run_queries import RunQueries


@dataclass
class Scope:
    dataset_queries: DatasetQueries
    run_queries: RunQueries

    def dataset(self, principal: Principal, dataset_id: UUID) -> UUID | None:
        """The dataset's project, when the key may see it; else the dataset is not found.
        (An unknown id passes for instance keys: the route answers its own 404.)"""
        project = self.dataset_queries.project_of_dataset(dataset_id)
        if principal.is_instance:
            return project
        if project is None or not principal.sees(project):
            raise DatasetNotFoundError(f"dataset {dataset_id} not found")
        return project

    def run(self, principal: Principal, run_id: UUID) -> UUID | None:
        project = self.run_queries.project_of_run(run_id)
        if principal.is_instance:
            return project
        if project is None or not principal.sees(project):
            raise RunNotFoundError(f"run {run_id} not found")
        return project

    def runs_of_one_project(self, principal: Principal, run_ids: Iterable[UUID | None]) -> None:
        """Every run visible to the key, and all of one project (runs of two projects are
        never compared)."""
        projects = {self.run(principal, run_id) for run_id in run_ids if run_id is not None}
        projects.discard(None)
        if len(projects) > 1:
            raise InvalidRequestError("these runs belong to different projects; runs are compared within a project")
