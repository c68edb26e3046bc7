"""Which target failures are retried: `is_transient` knows the built-in, httpx, requests
and OpenAI SDK errors that mean "try again", and a user marks their own with
`TransientError` or `transient = True`. In memory, plus one run over HTTP."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import httpx
import pytest
from conftest import Service
from waiting import wait_until

from evalledger.domain.runs import FINISHED
from evalledger.execution.registry import registry
from evalledger.execution.targets import TargetTimeoutError, TransientError, is_transient


def status_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/x")
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=httpx.Response(status, request=request))


def test_built_in_and_httpx_failures_worth_retrying_are_transient() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:1/x")
    for error in (TimeoutError("slow"), ConnectionError("reset"), ConnectionRefusedError(), ConnectionResetError(),
                  httpx.ConnectTimeout("t", request=request), httpx.ReadTimeout("t", request=request),
                  httpx.ConnectError("c", request=request), httpx.ReadError("r", request=request),
                  httpx.RemoteProtocolError("p", request=request),
                  status_error(429), status_error(500), status_error(503), TransientError("x"),
                  TargetTimeoutError("x")):
        assert is_transient(error), error
    for error in (ValueError("bad input"), RuntimeError("bug"), KeyError("k"), status_error(400), status_error(404),
                  status_error(401), httpx.UnsupportedProtocol("ftp", request=request)):
        assert not is_transient(error), error


def test_openai_sdk_errors_are_recognised_by_name_or_status_without_the_sdk() -> None:
    # Classes shaped like the OpenAI SDK's (openai is not a dependency).
    class APIError(Exception):
        pass

    class APIStatusError(APIError):
        def __init__(self, status_code: int) -> None:
            super().__init__(f"status {status_code}")
            self.status_code = status_code

    class RateLimitError(APIStatusError):
        pass

    class InternalServerError(APIStatusError):
        pass

    class BadRequestError(APIStatusError):
        pass

    class APIConnectionError(APIError):
        pass

    class APITimeoutError(APIConnectionError):
        pass

    assert is_transient(RateLimitError(429)) and is_transient(InternalServerError(500))
    assert is_transient(APIConnectionError()) and is_transient(APITimeoutError())
    assert is_transient(APIStatusError(502)) and is_transient(APIStatusError(429))
    assert not is_transient(BadRequestError(400)) and not is_transient(APIStatusError(404))
    assert not is_transient(APIError())


def test_requests_errors_are_recognised_when_requests_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests is not installed here: a module with its exception hierarchy stands in."""
    exceptions = types.ModuleType("requests.exceptions")

    class RequestException(OSError):
        def __init__(self, *args: Any, response: Any = None) -> None:
            super().__init__(*args)
            self.response = response

    class HTTPError(RequestException):
        pass

    class ConnectionError(RequestException):  # noqa: A001 - requests' own name
        pass

    class Timeout(RequestException):
        pass

    class ReadTimeout(Timeout):
        pass

    for cls in (RequestException, HTTPError, ConnectionError, Timeout, ReadTimeout):
        setattr(exceptions, cls.__name__, cls)
    requests = types.ModuleType("requests")
    requests.exceptions = exceptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "requests", requests)

    class Response:
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code

    assert is_transient(ConnectionError("refused")) and is_transient(ReadTimeout("slow"))
    assert is_transient(HTTPError("503", response=Response(503))) and is_transient(HTTPError(response=Response(429)))
    assert not is_transient(HTTPError("404", response=Response(404))) and not is_transient(RequestException("bad url"))


def test_a_user_marks_their_own_error_with_a_transient_attribute() -> None:
    class QuotaExceeded(Exception):
        transient = True

    class NotRetryableTimeout(TimeoutError):
        transient = False  # the error's own say is final

    assert is_transient(QuotaExceeded())
    assert not is_transient(NotRetryableTimeout())
    error = RuntimeError("flaky backend")
    error.transient = True  # type: ignore[attr-defined]
    assert is_transient(error)


_calls: dict[str, int] = {}
_calls_lock = threading.Lock()


@registry.target(name="transient-timeout-once", kind="agent")
def timeout_once(input: Any, context: Any) -> Any:
    with _calls_lock:
        _calls[context.item_id] = _calls.get(context.item_id, 0) + 1
        first = _calls[context.item_id] == 1
    if first:
        raise TimeoutError("the backend did not answer in time")
    return input


def test_a_target_raising_the_built_in_timeout_error_once_is_retried(service: Service) -> None:
    dataset = service.client.create_dataset("transient")
    service.client.add_items(dataset.id, [{"input": {"n": n}, "expectedOutput": {"n": n}} for n in range(3)])
    run = service.client.create_run(dataset.id, target={"type": "registered", "name": "transient-timeout-once"},
                                    scorers=["exact-match"], max_retries=2)
    state = wait_until(lambda: (shown := service.client.get_run(run.id)).status in FINISHED and shown,
                       "the run to finish")
    assert state.status == "completed" and state.succeeded_count == 3
    for result in service.client.list_results(run.id).results:
        assert result.error is None and result.attempt == 2
        assert result.retry_errors == ["TimeoutError: the backend did not answer in time"]
        assert result.scores[0].score == 1.0
