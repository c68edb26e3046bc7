"""Credentials come only from environment variables the operator names as secrets
(EVALLEDGER_SECRET_*); a run's definition holds their names, never their values, so
nothing secret is sent where the operator did not mean it, stored in events or shown."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from conftest import AUTH, running_service, with_settings
from json_endpoint import QuietHandler, answer_json, serve, stop, url_of
from waiting import wait_until

from evalledger.settings import Settings

SECRET = "sk-very-secret-value-42"


class Endpoint:
    """Answers {"ok": true}; records the headers of each request."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        endpoint = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.read_body()
                endpoint.headers.append({k.lower(): v for k, v in self.headers.items()})
                answer_json(self, 200, {"ok": True})

        self.httpd = serve(Handler)
        self.url = url_of(self.httpd)

    def close(self) -> None:
        stop(self.httpd)


def test_only_operator_named_secrets_can_be_used_and_refusals_reveal_nothing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRETS_TEST_PLAIN", "a value that is not a secret for runs")
    monkeypatch.delenv("SECRETS_TEST_UNSET", raising=False)
    monkeypatch.delenv("EVALLEDGER_SECRET_SECRETS_TEST_UNSET", raising=False)
    endpoint = Endpoint()
    try:
        with running_service(with_settings(settings, http_allowlist=(endpoint.url,))) as service:
            dataset = service.client.create_dataset("secrets")
            service.client.add_item(dataset.id, input={"q": 1})
            details = {}
            for name in ("DATABASE_URL", "SECRETS_TEST_PLAIN", "SECRETS_TEST_UNSET",
                         "EVALLEDGER_SECRET_SECRETS_TEST_UNSET"):
                bodies = [
                    {"target": {"type": "openai", "baseUrl": f"{endpoint.url}/v1", "model": "m",
                                "promptTemplate": "{{input}}", "apiKeyEnv": name}},
                    {"scorers": [{"name": "llm-judge", "options": {"baseUrl": f"{endpoint.url}/v1", "model": "m",
                                                                   "rubric": "r", "apiKeyEnv": name}}]},
                    {"target": {"type": "http", "url": endpoint.url, "headersFromEnv": {"Authorization": name}}},
                ]
                for body in bodies:
                    response = httpx.post(headers=AUTH, url=f"{service.url}/api/datasets/{dataset.id}/runs", json=body)
                    assert response.status_code == 422, response.text
                    assert response.headers["content-type"].startswith("application/problem+json")
                    details.setdefault(json.dumps(body).replace(name, "NAME"), set()).add(
                        response.json()["detail"].replace(name, "NAME"))
            # The same answer whether the variable exists or not.
            assert all(len(answers) == 1 for answers in details.values()), details
            assert service.client.list_runs(dataset.id).pagination.total == 0
    finally:
        endpoint.close()
    assert endpoint.headers == []


def test_literal_credential_headers_are_refused_with_a_pointer_to_secrets(settings: Settings) -> None:
    with running_service(with_settings(settings, http_allowlist=("http://127.0.0.1:18191",))) as service:
        dataset = service.client.create_dataset("secret-headers")
        service.client.add_item(dataset.id, input={"q": 1})
        for header in ("Authorization", "proxy-authorization", "Cookie", "X-Api-Key", "X-Auth-Token",
                       "X-Client-Secret"):
            response = httpx.post(headers=AUTH, url=f"{service.url}/api/datasets/{dataset.id}/runs", json={
                "target": {"type": "http", "url": "http://127.0.0.1:18191/x", "headers": {header: "Bearer x"}}})
            assert response.status_code == 422, (header, response.text)
            assert "headersFromEnv" in response.json()["detail"] and "EVALLEDGER_SECRET_" in response.json()["detail"]
        assert service.client.list_runs(dataset.id).pagination.total == 0


def test_a_secret_header_is_sent_but_never_shown_stored_or_logged(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("EVALLEDGER_SECRET_SECRETS_TEST_TOKEN", f"Bearer {SECRET}")
    caplog.set_level(logging.DEBUG)
    endpoint = Endpoint()
    try:
        with running_service(with_settings(settings, http_allowlist=(endpoint.url,))) as service:
            dataset = service.client.create_dataset("secret-sent")
            service.client.add_item(dataset.id, input={"q": 1})
            run = service.client.request("POST", f"/api/datasets/{dataset.id}/runs", json={
                "target": {"type": "http", "url": f"{endpoint.url}/agent", "headers": {"X-Team": "evals"},
                           "headersFromEnv": {"Authorization": "EVALLEDGER_SECRET_SECRETS_TEST_TOKEN"}}})
            shown = wait_until(lambda: (answer := httpx.get(headers=AUTH, url=f"{service.url}/api/datasets/runs/"
                                                                 f"{run['id']}")).json()["status"] == "completed"
                               and answer, "the run to complete")
            events = httpx.get(headers=AUTH, url=f"{service.url}/api/datasets/runs/{run['id']}/events").text
            results = httpx.get(headers=AUTH, url=f"{service.url}/api/datasets/runs/{run['id']}/results").text
    finally:
        endpoint.close()
    [sent] = endpoint.headers
    assert sent["authorization"] == f"Bearer {SECRET}" and sent["x-team"] == "evals"
    assert shown.json()["target"]["headersFromEnv"] == {"Authorization": "EVALLEDGER_SECRET_SECRETS_TEST_TOKEN"}
    for text in (shown.text, events, results, caplog.text):
        assert SECRET not in text
