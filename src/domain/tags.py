"""Version tags: a name for a dataset version (`golden`), and the refusals about them."""

from __future__ import annotations

import re

from evalledger.domain.errors import ConflictError, InvalidRequestError, NotFoundError

# A version tag's name: a letter, then letters, digits, '.', '_' or '-' (`golden`,
# `release-2026-12`); never only digits, so it cannot be taken for a version number.
TAG_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,99}$"
_TAG = re.compile(TAG_PATTERN)


class TagNotFoundError(NotFoundError):
    problem_type = "tag-not-found"


class TagExistsError(ConflictError):
    """The tag names another version; moving it must be asked for (409)."""

    problem_type = "tag-exists"


def check_tag_name(tag: str) -> None:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidRequestError(
            f"{tag!r} is not a tag name: a letter, then up to 99 letters, digits, '.', '_' or '-' "
            "(e.g. golden, release-2026-12)", errors=[{"field": "tag", "message": "invalid tag name"}])
