"""The audit log beyond one dataset: a run's own events, and the global feed of every
event in log order for external consumers."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, LedgerDep
from evalledger.api.paging import MAX_POSITION, EventLimit
from evalledger.api.routing import Route
from evalledger.api.wire import answer
from evalledger.api.streams import EventType, Stream
from evalledger.api.security import PrincipalDep, declare
from evalledger.domain.errors import InvalidRequestError
from evalledger.projections.datasets import DATASET_TOPICS
from evalledger.projections.runs import RUN_TOPICS
from evalledger.service_layer.events import feed_page

TOPICS_BY_TYPE: dict[str, list[str]] = {}
for _topic in DATASET_TOPICS + RUN_TOPICS:
    TOPICS_BY_TYPE.setdefault(_topic.rsplit(".", 1)[1], []).append(_topic)


router = APIRouter(tags=["audit"], responses=PROBLEMS, route_class=Route)


@router.get("/api/datasets/runs/{run_id:uuid}/events", response_model=models.EventList,
            summary="A run's own event stream, oldest first")
def run_events(run_id: UUID, ledger: LedgerDep, query: Stream) -> Response:
    """The run's events, oldest first: its creation, start, results and end. Page by `page` or by position
    (`after`), filter by `type` and time."""
    return query.answer(ledger.runs.events, run_id, ledger.runs.get_run(run_id).version)


@router.get("/api/events", response_model=models.EventFeed,
            summary="Every event of every dataset and run, in log order (poll with `after`)")
def feed(
    ledger: LedgerDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION,
                                description="Position of the last event you have (0: from the start)")] = 0,
    limit: EventLimit = 100,
    types: Annotated[list[EventType] | None, Query(alias="type",
                                                   description="e.g. ItemsAdded, ResultsRecorded")] = None,
) -> Response:
    """Every event of every dataset and run of the key's project (an instance key: of every project) in
    commit order, for consumers that follow the log: poll with `after` set to the last `position` you have."""
    topics: list[str] = []
    for name in types or []:
        if name not in TOPICS_BY_TYPE:
            raise InvalidRequestError(f"unknown event type {name!r}; known: {', '.join(sorted(TOPICS_BY_TYPE))}")
        topics += TOPICS_BY_TYPE[name]
    return answer(models.EventFeed, feed_page(ledger.datasets, principal.project_id, after, limit, topics))


@router.get("/api/projections", response_model=models.ProjectionList,
            summary="Each read model's position in the log and its lag, and its latest rebuild")
def projections(ledger: LedgerDep) -> Response:
    """Each read model's position in the event log, its lag, whether its follower runs, and its latest
    rebuild."""
    return answer(models.ProjectionList, projections=ledger.operations.projections())


@router.post("/api/projections/{name}/rebuild", response_model=models.RebuildReport,
             responses={202: {"model": models.RebuildState, "description": "The rebuild runs in the background"}},
             summary="Rebuild a read model from the log beside the live one, then switch over",
             openapi_extra=declare("instance"),
             description="With `wait=false` the rebuild runs in the background: the answer (202) is its "
                         "state, and `GET /api/projections` shows how far it has come and how it ended. "
                         "A second rebuild of the same read model meanwhile is refused (409 rebuild-running).")
def rebuild_projection(name: str, ledger: LedgerDep,
                       wait: Annotated[bool, Query(description="Answer once the rebuild is done")] = True,
                       ) -> Response:
    if wait:
        return answer(models.RebuildReport, ledger.operations.rebuild(name))
    return answer(models.RebuildState, ledger.operations.start_rebuild(name), 202)
