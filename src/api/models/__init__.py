"""The wire format as pydantic models: request bodies (validated on the way in) and
response bodies (documented in OpenAPI, put on the wire by api/wire.py, and used by
`evalledger.Client` to type what it returns), one module per resource. camelCase on the
wire, snake_case in Python."""

from evalledger.api.models.access import *  # noqa: F403
from evalledger.api.models.analysis import *  # noqa: F403
from evalledger.api.models.base import *  # noqa: F403
from evalledger.api.models.datasets import *  # noqa: F403
from evalledger.api.models.operations import *  # noqa: F403
from evalledger.api.models.runs import *  # noqa: F403
