"""Routes for datasets, their items, versions, diffs and event streams."""


from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request

from evalledger.api import models
from evalledger.api.encoding import JSONBody
from evalledger.api.paging import After, Page, pagination, per_page as per_page_param
from evalledger.api.routing import Route
from evalledger.api.security import Actor, PrincipalDep, declare
from evalledger.bootstrap import Ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.domain.errors import InvalidRequestError
from evalledger.service_layer.events import stream_page

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


def ledger(request: Request) -> Ledger:
    return request.app.state.ledger


LedgerDep = Annotated[Ledger, Depends(ledger)]
Reason = Annotated[
    str | None, Header(alias="X-Change-Reason", max_length=2000, description="Why (audit trail).")
]


def utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def build_router(max_per_page: int, max_batch_items: int) -> APIRouter:
    router = APIRouter(prefix="/api/datasets", tags=["datasets"], responses=PROBLEMS, route_class=Route)
    PerPage = per_page_param(max_per_page)
    Version = Annotated[int | None, Query(ge=0, description="Dataset version (default: current)")]
    AsOf = Annotated[
        models.Timestamp | None, Query(alias="asOf", description="ISO timestamp: the version current at that instant")
    ]

    def check_batch(count: int) -> None:
        if count > max_batch_items:
            raise InvalidRequestError(f"a batch may hold at most {max_batch_items} items; got {count}")

    # -- datasets ---------------------------------------------------------------------------

    @router.get("", response_model=models.DatasetList, summary="List datasets (newest first)")
    def list_datasets(ledger: LedgerDep, principal: PrincipalDep, page: Page = 0, per_page: PerPage = 10) -> Any:
        """The key's project's datasets that are not deleted (an instance key: every project's), newest first,
        a page at a time."""
        rows, total = ledger.dataset_queries.list_datasets(page, per_page, principal.project_id)
        return {"datasets": rows, "pagination": pagination(total, page, per_page)}

    @router.post("", status_code=201, response_model=models.DatasetWritten, summary="Create a dataset (version 0)")
    def create_dataset(body: models.DatasetCreate, ledger: LedgerDep, principal: PrincipalDep, actor: Actor,
                       reason: Reason = None) -> Any:
        """A new, empty dataset at version 0, in the key's project. `inputSchema` and `expectedOutputSchema` (JSON
        Schemas) are checked against every item added later."""
        return ledger.dataset_use_cases.create_dataset(
            name=body.name, description=body.description, metadata=body.metadata, input_schema=body.input_schema,
            expected_output_schema=body.expected_output_schema,
            project_id=ledger.access.project_of_slug(principal, body.project), actor=actor, reason=reason,
        )

    @router.get("/{dataset_id:uuid}", response_model=models.Dataset, summary="Get a dataset")
    def get_dataset(dataset_id: UUID, ledger: LedgerDep) -> Any:
        """The dataset's details, its current version and its item count."""
        return ledger.dataset_queries.get_dataset(dataset_id)

    @router.put("/{dataset_id:uuid}", response_model=models.DatasetWritten,
                summary="Replace a dataset's details (does not change its version)")
    def replace_dataset(dataset_id: UUID, body: models.DatasetReplace, ledger: LedgerDep,
                        actor: Actor, reason: Reason = None) -> Any:
        """Sets every detail (name, description, metadata, schemas); those left out take their defaults. A new
        schema must hold for the current items (else 422)."""
        return ledger.dataset_use_cases.change_details(dataset_id, body.model_dump(by_alias=True), actor=actor,
                                                       reason=reason)

    @router.patch("/{dataset_id:uuid}", response_model=models.DatasetWritten,
                  summary="Change some of a dataset's details (does not change its version)")
    def patch_dataset(dataset_id: UUID, body: models.DatasetPatch, ledger: LedgerDep,
                      actor: Actor, reason: Reason = None) -> Any:
        """Changes only the details given; `null` clears a schema. Details are not versioned: the version stays."""
        changes = body.model_dump(by_alias=True, include=body.model_fields_set)
        return ledger.dataset_use_cases.change_details(dataset_id, changes, actor=actor, reason=reason)

    @router.delete("/{dataset_id:uuid}", response_model=models.DatasetDeleted,
                   summary="Delete a dataset (its events stay in the store)")
    def delete_dataset(dataset_id: UUID, ledger: LedgerDep, actor: Actor,
                       reason: Reason = None) -> Any:
        """The dataset disappears from the API; its events stay in the store (see `/api/events`)."""
        return ledger.dataset_use_cases.delete_dataset(dataset_id, actor=actor, reason=reason)

    # -- items ------------------------------------------------------------------------------

    @router.get("/{dataset_id:uuid}/items", response_model=models.ItemList,
                summary="List items at a version (default current), in creation order")
    def list_items(
        dataset_id: UUID,
        ledger: LedgerDep,
        page: Page = 0,
        per_page: PerPage = 10,
        version: Version = None,
        as_of: AsOf = None,
        search: Annotated[str | None, Query(max_length=500, description="Case-insensitive substring of the JSON "
                                            "text of input or expectedOutput (or of a string in them)")] = None,
        external_id: Annotated[str | None, Query(alias="externalId", min_length=1, max_length=256,
                                                 description="Only the item with this externalId")] = None,
    ) -> JSONBody:
        """The items of one version (default: the current one, or the one current at `asOf`), in the order they
        were added. `search` keeps items whose input or expected output contains the text (case-insensitive,
        in their JSON text or in a string inside it); `externalId` keeps the one item with that id."""
        queries = ledger.dataset_queries
        at = queries.resolve_version(dataset_id, version, utc(as_of))
        rows, total = queries.list_items(dataset_id, at, page, per_page, search or None, external_id=external_id)
        return JSONBody({"items": rows, "version": at, "pagination": pagination(total, page, per_page)})

    def new_item(body: models.ItemCreate) -> NewItem:
        return NewItem(
            content=ItemContent(input=body.input, expected_output=body.expected_output, metadata=body.metadata),
            external_id=body.external_id,
        )

    @router.post("/{dataset_id:uuid}/items", status_code=201, response_model=models.ItemWritten,
                 summary="Add one item (one new version)")
    def add_item(dataset_id: UUID, body: models.ItemCreate, ledger: LedgerDep, actor: Actor,
                 reason: Reason = None) -> Any:
        """Adds one item; the dataset moves to a new version, which the answer names with the stored item."""
        return ledger.dataset_use_cases.add_item(
            dataset_id, input=body.input, expected_output=body.expected_output, metadata=body.metadata,
            external_id=body.external_id, actor=actor, reason=reason,
        )

    @router.post("/{dataset_id:uuid}/items/batch", status_code=201, response_model=models.ItemsWritten,
                 summary="Add many items (one new version for the whole batch)")
    def add_items(dataset_id: UUID, body: models.ItemsBatchCreate, ledger: LedgerDep,
                  actor: Actor, reason: Reason = None) -> JSONBody:
        """Adds up to the batch limit of items at once, all in one new version; all or nothing."""
        check_batch(len(body.items))
        answer = ledger.dataset_use_cases.add_items(dataset_id, [new_item(item) for item in body.items], actor=actor,
                                                    reason=reason)
        return JSONBody(answer, status_code=201)

    @router.delete("/{dataset_id:uuid}/items/batch", response_model=models.ItemsDeleted,
                   summary="Delete many items (one new version)")
    def delete_items(dataset_id: UUID, body: models.ItemsBatchDelete, ledger: LedgerDep,
                     actor: Actor, reason: Reason = None) -> Any:
        """Deletes the named items in one new version; the items stay readable at earlier versions."""
        check_batch(len(body.item_ids))
        return ledger.dataset_use_cases.delete_items(dataset_id, body.item_ids, actor=actor, reason=reason)

    @router.get("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.Item, summary="Get an item at a version")
    def get_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, version: Version = None,
                 as_of: AsOf = None) -> Any:
        """One item as it was at a version (default: the current one, or the one current at `asOf`)."""
        queries = ledger.dataset_queries
        at = queries.resolve_version(dataset_id, version, utc(as_of))
        return queries.get_item(dataset_id, item_id, at)

    @router.patch("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.ItemWritten,
                  summary="Change some fields of an item (one new version, none if nothing changes)")
    def patch_item(dataset_id: UUID, item_id: UUID, body: models.ItemPatch, ledger: LedgerDep,
                   actor: Actor, reason: Reason = None) -> Any:
        """Changes only the fields given, in one new version; when nothing changes, no version is made (`changed:
        false`)."""
        fields = {name: getattr(body, name) for name in body.model_fields_set}
        return ledger.dataset_use_cases.update_item(dataset_id, item_id, fields, actor=actor, reason=reason)

    @router.delete("/{dataset_id:uuid}/items/{item_id:uuid}", response_model=models.ItemsDeleted,
                   summary="Delete an item (one new version)")
    def delete_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor,
                    reason: Reason = None) -> Any:
        """Deletes one item in a new version; it stays readable at earlier versions."""
        return ledger.dataset_use_cases.delete_items(dataset_id, [item_id], actor=actor, reason=reason)

    @router.delete("/{dataset_id:uuid}/items/{item_id:uuid}/purge", response_model=models.ItemPurged,
                   openapi_extra=declare("admin"),
                   summary="Erase an item's content from every version, export and run result")
    def purge_item(dataset_id: UUID, item_id: UUID, ledger: LedgerDep, actor: Actor,
                   reason: Reason = None) -> Any:
        """Crypto-shredding: the item's key is destroyed, so its content can no longer be
        read from any event, at any version, by the API, an export, a rebuild or a database
        dump. Its id, externalId, versions, counts and run scores stay. Later updates of the
        item are refused (409 `item-purged`); it can still be deleted. Idempotent; works on
        deleted items and deleted datasets too."""
        return ledger.dataset_use_cases.purge_item(dataset_id, item_id, actor=actor, reason=reason)

    @router.get("/{dataset_id:uuid}/items/{item_id:uuid}/history", response_model=models.ItemHistory,
                summary="Every revision of an item, newest first, deletions included")
    def item_history(dataset_id: UUID, item_id: UUID, ledger: LedgerDep) -> Any:
        """Every revision of the item, newest first, including its deletion; each names the versions it held for."""
        ledger.dataset_queries.dataset_row(dataset_id)
        return {"itemId": item_id, "history": ledger.dataset_queries.item_history(dataset_id, item_id)}

    # -- versions, diffs, events ----------------------------------------------------------

    @router.get("/{dataset_id:uuid}/versions", response_model=models.VersionList,
                summary="Versions, newest first, with what each changed")
    def list_versions(dataset_id: UUID, ledger: LedgerDep, page: Page = 0, per_page: PerPage = 10) -> Any:
        """The dataset's versions, newest first, with who made each, why, and how many items it added, changed
        and removed."""
        rows, total = ledger.dataset_queries.list_versions(dataset_id, page, per_page)
        return {"versions": rows, "pagination": pagination(total, page, per_page)}

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
        per_page: PerPage = 100,
    ) -> JSONBody:
        """Items added, removed and changed between two versions (`from`/`to`, or the versions current at
        `fromAsOf`/`toAsOf`); changed items list each changed field with its value before and after."""
        queries = ledger.dataset_queries
        if from_version is None and from_as_of is None:
            raise InvalidRequestError("give `from` (a version) or `fromAsOf` (a timestamp)")
        a = queries.resolve_version(dataset_id, from_version, utc(from_as_of))
        b = queries.resolve_version(dataset_id, to_version, utc(to_as_of))
        return JSONBody(queries.diff(dataset_id, a, b, page, per_page))

    @router.get("/{dataset_id:uuid}/events", response_model=models.EventList,
                summary="The dataset's own event stream, oldest first: the audit trail")
    def list_events(
        dataset_id: UUID,
        ledger: LedgerDep,
        page: Page = 0,
        per_page: PerPage = 50,
        after: After = None,
        types: Annotated[list[str] | None, Query(alias="type", description="Only these event types")] = None,
        since: Annotated[models.Timestamp | None, Query(description="Only events at or after this time")] = None,
        until: Annotated[models.Timestamp | None, Query(description="Only events before this time")] = None,
    ) -> JSONBody:
        """The dataset's events, oldest first: who changed what, when and why. Page by `page` or by position
        (`after`), filter by `type` and time."""
        total = ledger.dataset_queries.dataset_row(dataset_id)["aggregate_version"]
        return JSONBody({**stream_page(ledger.datasets.events, dataset_id, total, page, per_page, after, types,
                                    utc(since), utc(until)),
                        "pagination": pagination(total, page, per_page)})

    return router
