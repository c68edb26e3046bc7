"""A Python client for the evalledger HTTP API, over httpx, typed with the API's models.

    from evalledger import Client
    with Client("http://127.0.0.1:8000") as client:
        dataset = client.create_dataset(name="qa")
        client.add_item(dataset.id, input={"question": "2+2?"}, expected_output={"answer": "4"})

Every failed call raises `ApiError` carrying the problem details the server sent. The calls
are grouped by what they act on, one module each; `Client` has them all.
"""

from __future__ import annotations

from evalledger.client.datasets import DatasetCalls
from evalledger.client.runs import RunCalls
from evalledger.client.service import ServiceCalls
from evalledger.client.transfer import TransferCalls
from evalledger.client.transport import LOOPBACK, ApiError, find_api_key

__all__ = ["LOOPBACK", "ApiError", "Client", "find_api_key"]


class Client(ServiceCalls, DatasetCalls, TransferCalls, RunCalls):
    pass
