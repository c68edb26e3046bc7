"""Domain errors. Each names what went wrong in the caller's terms; the API maps the
class to an HTTP status and a stable problem type."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a command was refused and nothing was changed."""

    problem_type = "domain-error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(DomainError):
    problem_type = "not-found"


class DatasetNotFoundError(NotFoundError):
    problem_type = "dataset-not-found"


class ItemNotFoundError(NotFoundError):
    problem_type = "item-not-found"


class VersionNotFoundError(NotFoundError):
    problem_type = "version-not-found"


class ConflictError(DomainError):
    problem_type = "conflict"


class ExternalIdTakenError(ConflictError):
    problem_type = "external-id-taken"


class InvalidRequestError(DomainError):
    """Well-formed input that breaks a rule (422)."""

    problem_type = "invalid-request"


class SchemaViolationError(InvalidRequestError):
    """Items do not satisfy the dataset's JSON Schemas. `errors` lists each failure."""

    problem_type = "schema-violation"


class InvalidSchemaError(InvalidRequestError):
    problem_type = "invalid-schema"


class ItemPurgedError(ConflictError):
    """The item's content was purged: it can be deleted, never changed again (409)."""

    problem_type = "item-purged"


class UnavailableError(DomainError):
    """The command could not be carried out now, for reasons that pass (503 with
    `Retry-After: retry_after`); nothing was changed, so sending it again is safe."""

    problem_type = "unavailable"
    retry_after = 1


class WriteContentionError(UnavailableError):
    """Other writers (in other processes) kept saving the same aggregate first, until the
    command's deadline for retrying passed."""

    problem_type = "write-contention"
