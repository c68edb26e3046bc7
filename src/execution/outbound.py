"""Where the service's outbound requests may go and which credentials they may carry, for
targets and the LLM judge alike.

URLs are checked against the operator's allowlist by `check_allowed`; redirects are not
followed (`redirect_refusal` says why). Credentials come only from environment variables
the operator names as secrets (`EVALLEDGER_SECRET_*`, see `secret_value`): a run's
definition holds the variable's name, never its value, so nothing secret is stored in
events or shown by the API.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from evalledger.domain.errors import InvalidRequestError

log = logging.getLogger(__name__)

ALLOWLIST_HINT = (
    "set EVALLEDGER_HTTP_ALLOWLIST (comma-separated base URLs, e.g. https://api.example.com/v1) "
    "or pass --allow-http to evalledger serve"
)


# -- where requests may go --------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class _Origin:
    """A URL's scheme, host, port and path, as the HTTP client will use them."""

    scheme: str
    host: str
    port: int
    path: str


def _origin(url: str) -> _Origin:
    """ValueError for a URL that is not http(s), has no host, or carries user info."""
    parsed = httpx.URL(url)  # the parser of the client that will send the request
    if parsed.scheme not in _DEFAULT_PORTS:
        raise ValueError("only http and https URLs can be called")
    if not parsed.host:
        raise ValueError("the URL has no host")
    if parsed.userinfo:
        raise ValueError("a URL may not carry user info (user:password@); use headersFromEnv or apiKeyEnv")
    if any(segment in (".", "..") for segment in parsed.path.split("/")):
        raise ValueError("the URL's path has . or .. segments")  # e.g. %2e%2e, which a server may resolve
    return _Origin(parsed.scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS[parsed.scheme], parsed.path)


@functools.lru_cache(maxsize=256)
def _allowed_origin(entry: str) -> _Origin | None:
    try:
        return _origin(entry)
    except (ValueError, httpx.InvalidURL) as error:
        log.warning("HTTP allowlist entry %r is ignored: %s", entry, error)
        return None


def _under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, on segment boundaries: /v1 covers /v1 and
    /v1/chat, not /v10."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or not prefix


def check_allowed(url: str, allowlist: Sequence[str], what: str) -> None:
    """Refuse (422) a URL the service may not call: it must have the scheme, host and port
    of an allowlist entry, and a path at or below the entry's path. No user info."""
    try:
        origin = _origin(url)
    except (ValueError, httpx.InvalidURL) as error:
        raise InvalidRequestError(f"{what}: the URL {url!r} cannot be called: {error}") from None
    for entry in allowlist:
        allowed = _allowed_origin(entry)
        if (allowed is not None and (allowed.scheme, allowed.host, allowed.port) ==
                (origin.scheme, origin.host, origin.port) and _under(origin.path, allowed.path)):
            return
    raise InvalidRequestError(f"{what}: the URL {url!r} is not on the allowlist; {ALLOWLIST_HINT}")


# -- secrets --------------------------------------------------------------------------------------

SECRET_PREFIX = "EVALLEDGER_SECRET_"
# Header names whose values are credentials: they may only come from a secret variable.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_SECRET_HEADER_WORDS = ("token", "secret", "key", "auth", "password", "cookie", "session", "credential")


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(word in lowered for word in _SECRET_HEADER_WORDS)


def check_secret_name(name: Any, what: str) -> str:
    """The name of a secret the operator offers, or 422. The answer is the same whether a
    variable of that name exists or not, so that it tells nothing about the environment."""
    if not (isinstance(name, str) and name.startswith(SECRET_PREFIX) and os.environ.get(name)):
        raise InvalidRequestError(
            f"{what} must name a secret the operator has set for this service: an environment variable "
            f"whose name starts with {SECRET_PREFIX} (e.g. {SECRET_PREFIX}OPENAI_KEY); {_show_name(name)} is not one")
    return name


def _show_name(name: Any) -> str:
    return repr(name[:100]) if isinstance(name, str) else "that"


def secret_value(name: str, what: str) -> str:
    """A secret's value at call time (the operator may have removed it since the run began)."""
    value = os.environ.get(name) if name.startswith(SECRET_PREFIX) else None
    if not value:
        raise RuntimeError(f"{what}: the secret {name!r} is no longer set in the service's environment")
    return value


def redirect_refusal(response: httpx.Response, url: str) -> str:
    return (f"HTTP {response.status_code} from {url}: redirects are not followed (one could lead off the "
            f"allowlist); call {response.headers.get('location', 'the final URL')[:200]!r} directly")
