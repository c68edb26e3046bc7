"""Routes for dataset version tags: a name (`golden`, `release-2026-12`) for a dataset
version, that reads, runs and diffs take wherever they take a version (`?tag=golden`)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path
from starlette.responses import Response

from evalledger.api import models
from evalledger.api.datasets import PROBLEMS, Actor, LedgerDep, Reason
from evalledger.api.routing import Route
from evalledger.api.wire import answer
from evalledger.domain.datasets import TAG_PATTERN

TagPath = Annotated[str, Path(pattern=TAG_PATTERN, max_length=100, description="The tag, e.g. golden")]


router = APIRouter(prefix="/api/datasets", tags=["datasets"], responses=PROBLEMS, route_class=Route)


@router.get("/{dataset_id:uuid}/tags", response_model=models.TagList, summary="A dataset's version tags")
def list_tags(dataset_id: UUID, ledger: LedgerDep) -> Response:
    """Every tag of the dataset, by name, with the version it names and who pointed it there, when and why
    (the tag's whole story is in `/events`: VersionTagged, TagMoved, TagDeleted)."""
    return answer(models.TagList, dataset_id=dataset_id, tags=ledger.dataset_queries.list_tags(dataset_id))


@router.get("/{dataset_id:uuid}/tags/{tag}", response_model=models.DatasetTag, summary="One version tag")
def get_tag(dataset_id: UUID, tag: TagPath, ledger: LedgerDep) -> Response:
    """The version the tag names (404 `tag-not-found` when the dataset has no such tag)."""
    return answer(models.DatasetTag, ledger.dataset_queries.get_tag(dataset_id, tag))


@router.put("/{dataset_id:uuid}/tags/{tag}", response_model=models.TagWritten,
            summary="Tag a version, or move a tag (an event in the audit trail)")
def set_tag(dataset_id: UUID, tag: TagPath, body: models.TagSet, ledger: LedgerDep, actor: Actor = "anonymous",
            reason: Reason = None) -> Response:
    """Names `version` (default: the current one) with the tag. A tag that names another version is moved only
    with `move: true` (else 409 `tag-exists`); tagging a version with the tag it has changes nothing
    (`outcome: unchanged`). Tagging and moving are events of the dataset (`VersionTagged`, `TagMoved`); neither
    changes the dataset's version."""
    return answer(models.TagWritten, ledger.dataset_use_cases.tag_version(
        dataset_id, tag, version=body.version, move=body.move, actor=actor, reason=reason))


@router.delete("/{dataset_id:uuid}/tags/{tag}", response_model=models.TagDeleted, summary="Delete a version tag")
def delete_tag(dataset_id: UUID, tag: TagPath, ledger: LedgerDep, actor: Actor = "anonymous",
               reason: Reason = None) -> Response:
    """Removes the tag (a `TagDeleted` event); the version it named stays, and runs pinned through the tag keep
    their version."""
    return answer(models.TagDeleted, ledger.dataset_use_cases.delete_tag(dataset_id, tag, actor=actor, reason=reason))

