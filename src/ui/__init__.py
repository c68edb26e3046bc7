"""The web UI: server-rendered pages (Jinja2 templates, htmx for partial updates) over the
same use cases and queries as the JSON API. Nothing here calls the API over HTTP, and no
business rule lives here: a page parses a form, calls a use case or a query, and renders."""

from evalledger.ui.app import install

__all__ = ["install"]
