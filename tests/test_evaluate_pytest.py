"""The CI pattern: a user's pytest file gates on a statistically significant regression
against the latest run tagged "main", through the `evalledger` fixture of the plugin that
installing evalledger registers. Run in a pytest subprocess, as a CI job would."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from conftest import Service

from evalledger import evaluate

pytest_plugins = ["pytester"]

USER_TEST = textwrap.dedent('''
    import os

    def answer(question):
        if os.environ.get("BREAK_THE_BOT") and question["a"] >= 2:
            return question["a"] - question["b"]  # the planted regression
        return question["a"] + question["b"]

    def test_answers_do_not_regress(evalledger):
        result = evalledger.evaluate("sums", answer, ["exact-match"], compare_to={"tag": "main"},
                                     metadata={"tag": "candidate"})
        result.assert_no_regression()
''')


def make_dataset(service: Service) -> None:
    dataset = service.client.create_dataset("sums")
    service.client.add_items(dataset.id, [{"input": {"a": a, "b": b}, "expectedOutput": a + b}
                                          for a in range(5) for b in range(1, 5)])


def good(question: dict[str, int]) -> int:
    return question["a"] + question["b"]


def test_a_users_pytest_file_fails_on_a_planted_regression_and_passes_without(
        service: Service, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(service)
    baseline = evaluate("sums", good, ["exact-match"], url=service.url, metadata={"tag": "main"}, progress=False)
    pytester.makepyfile(test_bot=USER_TEST)

    passed = pytester.runpytest_subprocess(f"--evalledger-url={service.url}", "-p", "no:cacheprovider")
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["*evalledger runs*", f"*no regression*{service.url}/runs/*"])

    monkeypatch.setenv("BREAK_THE_BOT", "1")
    failed = pytester.runpytest_subprocess(f"--evalledger-url={service.url}", "-p", "no:cacheprovider")
    failed.assert_outcomes(failed=1)
    output = failed.stdout.str()
    assert "def assert_no_regression" not in output  # the message, not the SDK's code
    assert f"regressed against baseline {baseline.run_id}" in output
    failed.stdout.fnmatch_lines([
        "*exact-match: mean 1.000 -> 0.400 (delta -0.600), p = *, 12 of 20 items worse*",
        "*worst items:*",
        "*input={'a': ?, 'b': ?} output=* expected=*: exact-match 1.00 -> 0.00*",
    ])


def test_compare_to_a_run_id_in_process(service: Service) -> None:
    """The comparison by run id, and a candidate without regression."""
    make_dataset(service)
    baseline = evaluate("sums", good, ["exact-match"], ledger=service.ledger, progress=False)

    def better_sometimes(question: dict[str, Any]) -> int:
        return good(question)

    same = evaluate("sums", better_sometimes, ["exact-match"], ledger=service.ledger, compare_to=baseline.run_id)
    assert same.comparison is not None and same.baseline_run_id == baseline.run_id
    assert same.comparison["scorers"]["exact-match"]["verdict"] == "no-significant-change"
    same.assert_no_regression()
    with pytest.raises(LookupError, match="tag 'nightly'"):
        evaluate("sums", good, ["exact-match"], ledger=service.ledger, compare_to={"tag": "nightly"})
    with pytest.raises(ValueError, match="not compared with a baseline"):
        baseline.assert_no_regression()


def test_declaring_the_plugin_beside_the_installed_entry_point_is_harmless(pytester: pytest.Pytester) -> None:
    """The documented `pytest_plugins` line (in conftest.py) works with and without the
    entry point loaded."""
    pytester.makeconftest('pytest_plugins = ["evalledger.sdk.pytest_plugin"]')
    pytester.makepyfile(test_declared='''
        def test_fixture(evalledger):
            assert evalledger.url == "http://example.invalid"
    ''')
    for autoload in ("", "1"):
        pytester._monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", autoload)
        pytester.runpytest_subprocess("--evalledger-url=http://example.invalid", "-p", "no:cacheprovider"
                                      ).assert_outcomes(passed=1)
