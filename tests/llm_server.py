"""A small OpenAI-compatible chat-completions server for tests: a real socket, not a
patched client. Tests decide what it answers and read what it was asked."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from json_endpoint import QuietHandler, answer_json, serve, stop, url_of

# Given the parsed request body, return (status, body dict); the default echoes the
# last user message.
Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def chat_completion(content: str, *, model: str = "test-model", completion_id: str = "chatcmpl-test") -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def echo_last_user_message(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return 200, chat_completion(users[-1]["content"] if users else "", model=body.get("model", "test-model"))


class LLMServer:
    """`with LLMServer() as llm:` serves on `llm.base_url` (ending in /v1); `llm.requests`
    holds every request body received; set `llm.responder` to change the answers."""

    def __init__(self, responder: Responder = echo_last_user_message) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.read_body() or b"{}")
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    status, answer = 404, {"error": {"message": f"no route {self.path}"}}
                else:
                    status, answer = server.responder(body)
                answer_json(self, status, answer)

        self.handler = Handler

    @property
    def base_url(self) -> str:
        return url_of(self.httpd, "/v1")

    def __enter__(self) -> LLMServer:
        self.httpd = serve(self.handler)
        return self

    def __exit__(self, *_: object) -> None:
        stop(self.httpd)
