"""pytest plugin (installed with evalledger, entry point `pytest11`; else
`pytest_plugins = ["evalledger.sdk.pytest_plugin"]` in the top conftest.py): the `evalledger` fixture makes a
regression gate one test function:

    def test_qa_bot_does_not_regress(evalledger):
        result = evalledger.evaluate("qa", answer, ["exact-match"], compare_to={"tag": "main"})
        result.assert_no_regression()

Where the service is: `--evalledger-url`, the `evalledger_url` ini option, or
EVALLEDGER_URL (none: the database in process, as evaluate() does). No progress bar
(pytest captures output); the terminal summary lists each run's link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from evalledger.sdk.evaluate import evaluate
from evalledger.sdk.result import EvalResult

_RUNS = pytest.StashKey[list[tuple[str, EvalResult]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("evalledger")
    group.addoption("--evalledger-url", default=None, help="URL of the evalledger service evaluate() records runs in")
    parser.addini("evalledger_url", "URL of the evalledger service evaluate() records runs in", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUNS] = []


class Evaluator:
    """`evaluate()` with the session's service and without a progress bar."""

    def __init__(self, url: str | None, node_id: str, runs: list[tuple[str, EvalResult]]) -> None:
        self.url = url
        self.node_id = node_id
        self.runs = runs

    def evaluate(self, dataset: Any, task: Callable[..., Any], scorers: Sequence[Any] = (),
                 **options: Any) -> EvalResult:
        options.setdefault("progress", False)
        if self.url and not {"url", "settings", "ledger"} & set(options):
            options["url"] = self.url
        result = evaluate(dataset, task, scorers, **options)
        self.runs.append((self.node_id, result))
        return result


@pytest.fixture
def evalledger(request: pytest.FixtureRequest) -> Iterator[Evaluator]:
    config = request.config
    url = config.getoption("--evalledger-url") or config.getini("evalledger_url") or None
    yield Evaluator(url, request.node.nodeid, config.stash[_RUNS])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    runs = config.stash.get(_RUNS, [])
    if not runs:
        return
    terminalreporter.section("evalledger runs")
    for node_id, result in runs:
        terminalreporter.write_line(f"{node_id}: {result!r}")
