"""The HTTP allowlist compares parsed URLs — scheme, host, port, and the path on segment
boundaries — and refuses user info, for HTTP and OpenAI targets and the LLM judge alike
(one function, `outbound.check_allowed`). Redirects are not followed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import AUTH, running_service, with_settings
from json_endpoint import QuietHandler, answer_json, serve, stop, url_of
from waiting import wait_until

from evalledger.domain.errors import InvalidRequestError
from evalledger.domain.runs import FINISHED
from evalledger.execution.registry import Registry
from evalledger.execution.scorers import build_scorer
from evalledger.execution.outbound import check_allowed
from evalledger.execution.targets import build_target
from evalledger.settings import Settings


class Recorder:
    """A local HTTP server that answers every POST with {"ok": true} (or a redirect to
    `redirect_to`) and records the paths it was asked for."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.read_body()
                recorder.paths.append(self.path)
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer_json(self, 200, {"ok": True})

        self.httpd = serve(Handler)
        self.port = self.httpd.server_address[1]
        self.url = url_of(self.httpd)

    def close(self) -> None:
        stop(self.httpd)


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    allowed, other = Recorder(), Recorder()
    yield allowed, other
    allowed.close()
    other.close()


def allows(url: str, *allowlist: str) -> bool:
    try:
        check_allowed(url, allowlist, "test")
    except InvalidRequestError:
        return False
    return True


def test_scheme_host_and_port_must_match_exactly() -> None:
    entry = "http://127.0.0.1:18191"
    assert allows("http://127.0.0.1:18191/x", entry)
    assert allows("http://127.0.0.1:18191", entry)
    assert not allows("http://127.0.0.1:18191@127.0.0.1:18192/x", entry)  # user info: the host is :18192
    assert not allows("http://127.0.0.1:181910/", entry)
    assert not allows("http://127.0.0.1:1819/", entry)
    assert not allows("https://127.0.0.1:18191/", entry)
    assert not allows("http://127.0.0.1.evil.example:18191/", entry)
    assert not allows("http://localhost:18191/", entry)
    assert allows("HTTP://API.Example.com/v1/x", "http://api.example.com/v1")  # case-insensitive host, scheme
    assert allows("https://api.example.com:443/v1", "https://api.example.com/v1")  # the default port
    assert not allows("https://api.example.com:8443/v1", "https://api.example.com/v1")


def test_the_path_is_a_prefix_on_segment_boundaries() -> None:
    entry = "https://api.example.com/v1"
    assert allows("https://api.example.com/v1", entry)
    assert allows("https://api.example.com/v1/chat/completions", entry)
    assert not allows("https://api.example.com/v10/chat", entry)
    assert not allows("https://api.example.com/v1beta", entry)
    assert not allows("https://api.example.com/", entry)
    assert not allows("https://api.example.com/v1/../admin", entry)
    assert not allows("https://api.example.com/v1/%2e%2e/admin", entry)
    assert allows("https://api.example.com/anything", "https://api.example.com/")


def test_user_info_and_other_schemes_are_refused_even_for_an_allowed_host() -> None:
    entry = "http://127.0.0.1:18191"
    with pytest.raises(InvalidRequestError, match="user info"):
        check_allowed("http://user:pw@127.0.0.1:18191/", (entry,), "test")
    assert not allows("ftp://127.0.0.1:18191/", "ftp://127.0.0.1:18191/")
    assert not allows("http://127.0.0.1:18191/", "127.0.0.1:18191")  # an entry without a scheme never matches


def test_http_and_openai_targets_and_the_judge_all_check_the_same_way() -> None:
    allowlist = ("http://127.0.0.1:18191/v1",)
    bad = "http://127.0.0.1:18191@127.0.0.1:18192/v1"
    for build in (
        lambda url: build_target({"type": "http", "url": url}, Registry(), http_allowlist=allowlist),
        lambda url: build_target({"type": "openai", "baseUrl": url, "model": "m", "promptTemplate": "{{input}}"},
                                 Registry(), http_allowlist=allowlist),
        lambda url: build_scorer({"name": "llm-judge", "options": {"baseUrl": url, "model": "m", "rubric": "r"}},
                                 None, http_allowlist=allowlist),
    ):
        build("http://127.0.0.1:18191/v1")
        for url in (bad, "http://127.0.0.1:181910/v1", "http://127.0.0.1:18191/v10"):
            with pytest.raises(InvalidRequestError):
                build(url)


def test_a_run_to_a_url_that_only_looks_allowed_is_refused_and_sends_nothing(
        settings: Settings, servers: tuple[Recorder, Recorder]) -> None:
    allowed, other = servers
    with running_service(with_settings(settings, http_allowlist=(allowed.url,))) as service:
        dataset = service.client.create_dataset("allowlist")
        service.client.add_item(dataset.id, input={"q": 1})
        for url in (f"{allowed.url}@127.0.0.1:{other.port}/x", f"{allowed.url}0/",
                    f"http://127.0.0.1:{other.port}/"):
            for target in ({"type": "http", "url": url},
                           {"type": "openai", "baseUrl": url, "model": "m", "promptTemplate": "{{input}}"}):
                response = httpx.post(headers=AUTH, url=f"{service.url}/api/datasets/{dataset.id}/runs", json={"target": target})
                assert response.status_code == 422, (url, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
            judge = {"name": "llm-judge", "options": {"baseUrl": url, "model": "m", "rubric": "r"}}
            response = httpx.post(headers=AUTH, url=f"{service.url}/api/datasets/{dataset.id}/runs", json={"scorers": [judge]})
            assert response.status_code == 422, (url, response.text)
        assert service.client.list_runs(dataset.id).pagination.total == 0
    assert other.paths == []


def test_redirects_are_not_followed(settings: Settings) -> None:
    """An allowed endpoint that redirects elsewhere does not get the service to call there."""
    elsewhere = Recorder()
    redirecting = Recorder(redirect_to=f"{elsewhere.url}/stolen")
    try:
        with running_service(with_settings(settings, http_allowlist=(redirecting.url,))) as service:
            dataset = service.client.create_dataset("redirect")
            service.client.add_item(dataset.id, input={"q": 1})
            run = service.client.create_run(dataset.id, target={"type": "http", "url": f"{redirecting.url}/agent"},
                                            max_retries=0)
            wait_until(lambda: service.client.get_run(run.id).status in FINISHED, "the run to finish")
            [result] = service.client.list_results(run.id).results
    finally:
        elsewhere.close()
        redirecting.close()
    assert redirecting.paths == ["/agent"] and elsewhere.paths == []
    assert "307" in result.error and "redirects are not followed" in result.error
