"""Routes for datasets, their items, versions, diffs and event streams."""


from typing import Annotated, Any

from starlette.responses import Response
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request

from evalledger.api import models
from evalledger.api.paging import Page, PerPage10, PerPage100, paged
from evalledger.api.streams import Stream, utc
from evalledger.api.wire import answer
from evalledger.api.routing import Route
from evalledger.api.security import Actor, PrincipalDep, declare
from evalledger.bootstrap import Ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.domain.errors import InvalidRequestError

PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": models.Problem, "description": description}
    for status, description in (
        (400, "Malformed JSON, or invalid or unknown query parameters"),
        (404, "Unknown dataset, item or version"),
        (409, "Conflict (externalId already used)"),
        (413, "Body over the size limit"),
        (422, "Body fails validation or the dataset's JSON Schemas"),
    )
}


async def ledger(request: Request) -> Ledger:
    # A coroutine, as it does no I/O: a plain function dependency runs in the thread pool.
    return request.app.state.ledger


LedgerDep = Annotated[Ledger, Depends(ledger)]
Reason = Annotated[
    str | None, Header(alias="X-Change-Reason", max_length=2000, description="Why (audit trail).")
]


router = APIRouter(prefix="/api/datasets", tags=["datasets"], responses=PROBLEMS, route_class=Route)
Version = Annotated[int | None, Query(ge=0, description="Dataset version (default: current)")]
AsOf = Annotated[
    models.Timestamp | None, Query(alias="asOf", description="ISO timestamp: the version current at that instant")
]
Tag = Annotated[str | None, Query(max_length=100, description="A version tag (e.g. golden): the version it names")]


def check_batch(request: Request, count: int) -> None:
    limit = request.app.state.settings.max_batch_items
    if count > limit:
        raise InvalidRequestError(f"a batch may hold at most {limit} items; got {count}")


# -- datasets -------------------------------------------------------------------------------

@router.get("", response_model=models.DatasetList, summary="List datasets (newest first)")
def list_datasets(ledger: LedgerDep, principal: PrincipalDep, page: Page = 0, per_page: PerPage10 = 10) -> Response:
    """The key's project's datasets that are not deleted (an instance key: every project's), newest first,
    a page at a time."""
    rows, total = ledger.dataset_queries.list_datasets(page, per_page, principal.project_id)
    return answer(models.DatasetList, datasets=rows, pagination=paged(total, page, per_page))


@router.post("", status_code=201, response_model=models.DatasetWritten, summary="Create a dataset (version 0)")
def create_dataset(body: models.DatasetCreate, ledger: LedgerDep, principal: PrincipalDep, actor: Actor,
                   reason: Reason = None) -> Response:
    """A new, empty dataset at version 0, in the key's project. `inputSchema` and `expectedOutputSchema` (JSON
    Schemas) are checked against every item added later."""
    created = ledger.dataset_use_cases.create_dataset(
        name=body.name, description=body.description, metadata=body.metadata, input_schema=body.input_schema,
        expected_output_schema=body.expected_output_schema,
        project_id=ledger.access.project_of_slug(principal, body.project), actor=actor, reason=reason,
    )
    return answer(models.DatasetWritten, created, 201)


@router.get("/{dataset_id:uuid}", response_model=models.Dataset, summary="Get a dataset")
def get_dataset(dataset_id: UUID, ledger: LedgerDep) -> Response:
    """The dataset's details, its current version and its item count."""
    return answer(models.Dataset, ledger.dataset_queries.get_dataset(dataset_id))


@router.put("/{dataset_id:uuid}", response_model=models.DatasetWritten,
            summary="Replace a dataset's details (does not change its version)")
def replace_dataset(dataset_id: UUID, body: models.DatasetReplace, ledger: LedgerDep,
                    actor: Actor, reason: Reason = None) -> Response:
    """Sets every detail (name, description, metadata, schemas); those left out take their defaults. A new
    schema must hold for the current items (else 422)."""
    changed = ledger.dataset_use_cases.change_details(dataset_id, body.model_dump(), actor=actor, reason=reason)
    return answer(models.DatasetWritten, changed)


@router.patch("/{dataset_id:uuid}", response_model=models.DatasetWritten,
              summary="Change some of a dataset's details (does not change its version)")
def patch_dataset(dataset_id: UUID, body: models.DatasetPatch, ledger: LedgerDep,
                  actor: Actor, reason: Reason = None) -> Response:
    """Changes only the details given; `null` clears a schema. Details are not versioned: the version stays."""
    changes = body.model_dump(include=body.model_fields_set)  # by attribute: the model maps the camelCase names
    return answer(models.DatasetWritten,
                  ledger.dataset_use_cases.change_details(dataset_id, changes, actor=actor, reason=reason))


@router.delete("/{dataset_id:uuid}", response_model=models.DatasetDeleted,
               summary="Delete a dataset (its events stay in the store)")
def delete_dataset(dataset_id: UUID, ledger: LedgerDep, actor: Actor, reason: Reason = None) -> Response:
    """The dataset disappears from the API; its events stay in the store (see `/api/events`)."""
    return answer(models.DatasetDeleted, ledger.dataset_use_cases.delete_dataset(dataset_id, actor=actor,
                                                                                 reason=reason))


# -- items ----------------------------------------------------------------------------------

@router.get("/{dataset_id:uuid}/items", response_model=models.ItemList,
            summary="List items at a version (default current), in creation order")
def list_items(
    dataset_id: UUID,
    ledger: LedgerDep,
    page: Page = 0,
    per_page: PerPage10 = 10,
    version: Version = None,
    as_of: AsOf = None,
    search: Annotated[str | None, Query(max_length=500, description="Case-insensitive substring of the JSON "
                                        "text of input or expectedOutput (or of a string in them)")] = None,
    external_id: Annotated[str | None, Query(alias="externalId", min_length=1, max_length=256,
                                             description="Only the item with this externalId")] = None,
    tag: Tag = None,
) -> Response:
    """The items of one version (default: the current one, or the one current at `asOf`), in the order they
    were added, or of the version a `tag` names. `search` keeps items whose input or expected output contains
    the text (case-insensitive, in their JSON text or in a string inside it); `externalId` keeps the one item
    with that id."""
    queries = ledger.dataset_queries
    at = queries.resolve_version(dataset_id, version, utc(as_of), tag)
    rows, total = queries.list_items(dataset_id, at, page, per_page, search or None, external_id=external_id)
    return answer(models.ItemList, items=rows, version=at, pagination=paged(total, page, per_page))


def new_item(body: models.ItemCreate) -> NewItem:
    return NewItem(
        content=ItemContent(input=body.input, expected_output=body.expected_output, metadata=body.metadata),
        external_id=body.external_id,
    )


@router.post("/{dataset_id:uuid}/items", status_code=201, response_model=models.ItemWritten,
             summary="Add one item (one new version)")
def add_item(dataset_id: UUID, body: models.ItemCreate, ledger: LedgerDep, actor: Actor,
             reason: Reason = None) -> Response:
    """Adds one item; the dataset moves to a new version, which the answer names with the stored item."""
    written = ledger.dataset_use_cases.add_item(
        dataset_id, input=body.input, expected_output=body.expected_output, metadata=body.metadata,
        external_id=body.external_id, actor=actor, reason=reason,
    )
    return answer(models.ItemWritten, written, 201)


@router.post("/{dataset_id:uuid}/items/batch", status_code=201, response_model=models.ItemsWritten,
             summary="Add many items (one new version for the whole batch)")
def add_items(dataset_id: UUID, body: models.ItemsBatchCreate, ledger: LedgerDep, request: Request,
              actor: Actor, reason: Reason = None) -> Response:
    """Adds up to the batch limit of items at once, all in one new version; all or nothing."""
    check_batch(request, len(body.items))
    written = ledger.dataset_use_cases.add_items(dataset_id, [new_item(item) for item in body.items], actor=actor,
                                                 reason=reason)
    return answer(models.ItemsWritten, written, 201)


@router.delete("/{dataset_id:uuid}/items/batch", response_model=models.ItemsDeleted,
               summary="Delete many items (one new version)")
def delete_items(dataset_id: UUID, body: models.ItemsBatchDelete, ledger: LedgerDep, request: Request,
                 actor: Actor, reason: Reason = None) -> Response:
    """Deletes the named items in one new version; the items stay readable at earlier versions."""
    check_batch(request, len(body.item_ids))
    return answer(models.ItemsDeleted, ledger.dataset_use_cases.delete_items(dataset_id, body.item_ids, actor=actor,
                                                                             reason=reason))


@router.get("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.Item, summary="Get an item at a version")
def get_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, version: Version = None,
             as_of: AsOf = None, tag: Tag = None) -> Response:
    """One item as it was at a version (default: the current one, the one current at `asOf`, or the one a
    `tag` names)."""
    queries = ledger.dataset_queries
    at = queries.resolve_version(dataset_id, version, utc(as_of), tag)
    return answer(models.Item, queries.get_item(dataset_id, item_id, at))


@router.patch("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.ItemWritten,
              summary="Change some fields of an item (one new version, none if nothing changes)")
def patch_item(dataset_id: UUID, item_id: UUID, body: models.ItemPatch, ledger: LedgerDep,
               actor: Actor, reason: Reason = None) -> Response:
    """Changes only the fields given, in one new version; when nothing changes, no version is made (`changed:
    false`)."""
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    return answer(models.ItemWritten, ledger.dataset_use_cases.update_item(dataset_id, item_id, fields, actor=actor,
                                                                           reason=reason))


@router.delete("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.ItemsDeleted,
               summary="Delete an item (one new version)")
def delete_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor,
                reason: Reason = None) -> Response:
    """Deletes one item in a new version; it stays readable at earlier versions."""
    return answer(models.ItemsDeleted, ledger.dataset_use_cases.delete_items(dataset_id, [item_id], actor=actor,
                                                                             reason=reason))


@router.delete("/{dataset_id:uuid}/items/{item_id:uuid}/purge", response_model=models.ItemPurged,
               openapi_extra=declare("admin"),
               summary="Erase an item's content from every version, export and run result")
def purge_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor,
               reason: Reason = None) -> Response:
    """Crypto-shredding: the item's key is destroyed, so its content can no longer be
    read from any event, at any version, by the API, an export, a rebuild or a database
    dump. Its id, externalId, versions, counts and run scores stay. Later updates of the
    item are refused (409 `item-purged`); it can still be deleted. Idempotent; works on
    deleted items and deleted datasets too."""
    return answer(models.ItemPurged, ledger.dataset_use_cases.purge_item(dataset_id, item_id, actor=actor,
                                                                         reason=reason))


@router.get("/{dataset_id:uuid}/items/{item_id:uuid}/history", response_model=models.ItemHistory,
            summary="Every revision of an item, newest first, deletions included")
def item_history(dataset_id: UUID, item_id: UUID, ledger: LedgerDep) -> Response:
    """Every revision of the item, newest first, including its deletion; each names the versions it held for."""
    ledger.dataset_queries.dataset_row(dataset_id)
    return answer(models.ItemHistory, item_id=item_id,
                  history=ledger.dataset_queries.item_history(dataset_id, item_id))


# -- versions, diffs, events ------------------------------------------------------------------

@router.get("/{dataset_id:uuid}/versions", response_model=models.VersionList,
            summary="Versions, newest first, with what each changed")
def list_versions(dataset_id: UUID, ledger: LedgerDep, page: Page = 0, per_page: PerPage10 = 10) -> Response:
    """The dataset's versions, newest first, with who made each, why, and how many items it added, changed
    and removed."""
    rows, total = ledger.dataset_queries.list_versions(dataset_id, page, per_page)
    return answer(models.VersionList, versions=rows, pagination=paged(total, page, per_page))


@router.get("/{dataset_id:uuid}/diff", response_model=models.Diff,
            summary="Items added, removed and changed between two versions, field by field")
def diff(
    dataset_id: UUID,
    ledger: LedgerDep,
    from_version: Annotated[int | None, Query(alias="from", ge=0)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=0)] = None,
    from_as_of: Annotated[models.Timestamp | None, Query(alias="fromAsOf")] = None,
    to_as_of: Annotated[models.Timestamp | None, Query(alias="toAsOf")] = None,
    page: Page = 0,
    per_page: PerPage100 = 100,
    from_tag: Annotated[str | None, Query(alias="fromTag", max_length=100)] = None,
    to_tag: Annotated[str | None, Query(alias="toTag", max_length=100)] = None,
) -> Response:
    """Items added, removed and changed between two versions (`from`/`to`, the versions current at
    `fromAsOf`/`toAsOf`, or the versions tags name: `fromTag`/`toTag`); changed items list each changed field
    with its value before and after."""
    queries = ledger.dataset_queries
    if from_version is None and from_as_of is None and from_tag is None:
        raise InvalidRequestError("give `from` (a version), `fromAsOf` (a timestamp) or `fromTag` (a tag)")
    a = queries.resolve_version(dataset_id, from_version, utc(from_as_of), from_tag)
    b = queries.resolve_version(dataset_id, to_version, utc(to_as_of), to_tag)
    found = queries.diff(dataset_id, a, b, page, per_page)
    return answer(models.Diff, dataset_id=found.dataset_id, from_version=found.from_version,
                  to_version=found.to_version, summary=found.summary, changes=found.changes,
                  pagination=paged(found.total, page, per_page))


@router.get("/{dataset_id:uuid}/events", response_model=models.EventList,
            summary="The dataset's own event stream, oldest first: the audit trail")
def list_events(dataset_id: UUID, ledger: LedgerDep, query: Stream) -> Response:
    """The dataset's events, oldest first: who changed what, when and why. Page by `page` or by position
    (`after`), filter by `type` and time."""
    total = ledger.dataset_queries.dataset_row(dataset_id)["aggregate_version"]
    return query.answer(ledger.datasets.events, dataset_id, total)
