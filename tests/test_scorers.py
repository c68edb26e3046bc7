"""Scorers: how a run judges each output. Each test tells one thing a scorer does, with
the same specs a user would send (`"exact-match"`, `{"name": ..., "options": {...}}`).

The LLM judge is tested against a real OpenAI-compatible HTTP server on a local socket
(tests/llm_server.py). pytest-asyncio is not used: each test drives its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from llm_server import LLMServer, chat_completion
from rapidfuzz import fuzz

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.registry import Registry
from evalledger.execution.scorers import (
    JudgeUnavailableError,
    Scorer,
    ScoreInput,
    ScoreOutput,
    build_scorer,
    describe_builtin_scorers,
)
from evalledger.execution.targets import TransientError

# -- helpers --------------------------------------------------------------------------------------


def case(output: Any, expected: Any = None, *, input: Any = None, error: str | None = None,
         metadata: dict[str, Any] | None = None) -> ScoreInput:
    return ScoreInput(input=input, output=output, expected_output=expected, metadata=metadata or {}, error=error)


def score_all(scorer: Scorer, *cases: ScoreInput) -> list[ScoreOutput]:
    """Score the cases one after another in one event loop, then close the scorer."""

    async def run() -> list[ScoreOutput]:
        try:
            return [await scorer.score(x) for x in cases]
        finally:
            await scorer.aclose()  # type: ignore[attr-defined]

    return asyncio.run(run())


def score(spec: str | dict[str, Any], output: Any, expected: Any = None, *, registry: Registry | None = None,
          allowlist: tuple[str, ...] = (), **more: Any) -> ScoreOutput:
    scorer = build_scorer(spec, registry, http_allowlist=allowlist)
    return score_all(scorer, case(output, expected, **more))[0]


def unscorable(spec: str | dict[str, Any], output: Any, expected: Any = None, **more: Any) -> str:
    """The message of the error a scorer raises for an item it cannot score."""
    with pytest.raises(ValueError) as raised:
        score(spec, output, expected, **more)
    return str(raised.value)


def refused(spec: Any, registry: Registry | None = None, allowlist: tuple[str, ...] = ()) -> str:
    """The message of the 422 refusing to build a scorer."""
    with pytest.raises(InvalidRequestError) as raised:
        build_scorer(spec, registry, http_allowlist=allowlist)
    return raised.value.detail


def on(field: str, name: str = "exact-match", **options: Any) -> dict[str, Any]:
    return {"name": name, "options": {"field": field, **options}}


# -- specs and ids --------------------------------------------------------------------------------


def test_a_scorer_is_named_and_its_id_defaults_to_the_name_or_is_given() -> None:
    plain = build_scorer("exact-match", None)
    assert (plain.id, plain.name) == ("exact-match", "exact-match")
    named = build_scorer({"name": "exact-match", "id": "answer-exact", "options": {"field": "answer"}}, None)
    assert (named.id, named.name) == ("answer-exact", "exact-match")


def test_bad_specs_are_refused_at_build_time_with_the_scorer_and_option_named() -> None:
    assert "unknown scorer 'no-such-scorer'" in refused("no-such-scorer")
    assert "did you mean 'exact-match'" in refused("exact-matc")
    assert "'caseSensitiv'" in refused({"name": "exact-match", "options": {"caseSensitiv": False}})
    message = refused({"name": "exact-match", "options": {"caseSensitive": "no"}})
    assert "'exact-match'" in message and "'caseSensitive'" in message and "true or false" in message
    assert "'field'" in refused(on("a..b"))
    assert "'options'" in refused({"name": "exact-match", "field": "answer"})  # settings belong in options
    assert "'options' must be an object" in refused({"name": "exact-match", "options": ["answer"]})
    assert "'id'" in refused({"name": "exact-match", "id": ""})
    assert "needs a 'name'" in refused({"options": {}})
    assert "a scorer is a name" in refused(42)


def test_every_built_in_is_described_with_its_options() -> None:
    described = {d["name"]: d for d in describe_builtin_scorers()}
    assert set(described) == {"exact-match", "contains", "regex", "json-equals", "json-subset", "json-schema",
                              "similarity", "numeric-closeness", "llm-judge"}
    for entry in described.values():
        assert entry["description"]
        for option in entry["options"]:
            assert {"name", "type", "default", "meaning", "required"} <= set(option)
    exact = {o["name"]: o for o in described["exact-match"]["options"]}
    assert (exact["caseSensitive"]["type"], exact["caseSensitive"]["default"]) == ("boolean", True)
    similarity = {o["name"]: o for o in described["similarity"]["options"]}
    assert similarity["method"]["choices"] == ["ratio", "partial-ratio", "token-sort-ratio", "token-set-ratio"]
    assert {o["name"] for o in described["llm-judge"]["options"] if o["required"]} == {"baseUrl", "model", "rubric"}
    json.dumps(described)  # served as is by GET /api/scorers


# -- exact-match ----------------------------------------------------------------------------------


def test_exact_match_compares_strings_trimmed_and_case_sensitively_by_default() -> None:
    assert score("exact-match", "Paris", "Paris") == ScoreOutput(1.0)
    assert score("exact-match", "  Paris\n", "Paris").score == 1.0
    different = score("exact-match", "paris", "Paris")
    assert different.score == 0.0 and different.reason == "expected 'Paris', got 'paris'"
    assert score({"name": "exact-match", "options": {"caseSensitive": False}}, "paris", "Paris").score == 1.0
    assert score({"name": "exact-match", "options": {"trim": False}}, "Paris ", "Paris").score == 0.0


def test_exact_match_compares_anything_else_as_json_values() -> None:
    assert score("exact-match", {"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1.0}).score == 1.0
    assert score("exact-match", True, 1).score == 0.0  # JSON true is not the number 1
    assert score("exact-match", "42", 42).score == 0.0  # a string is not a number
    assert score("exact-match", None, "Paris").score == 0.0


def test_a_field_path_picks_the_same_value_on_both_sides() -> None:
    assert score(on("answer"), {"answer": "a1", "extra": 1}, {"answer": "a1"}).score == 1.0
    assert score(on("a.b.0"), {"a": {"b": ["x", "y"]}}, {"a": {"b": ["x"]}}).score == 1.0
    # A string holding JSON — what LLM targets answer, fenced or not — is parsed on the way down.
    assert score(on("answer"), '{"answer": "a1"}', {"answer": "a1"}).score == 1.0
    assert score(on("answer"), '```json\n{"answer": "a1"}\n```', {"answer": "a1"}).score == 1.0


def test_an_output_without_the_field_scores_zero_with_a_reason() -> None:
    assert score(on("answer"), "wrong", {"answer": "a1"}) == ScoreOutput(0.0, "the output has no value at 'answer'")
    assert score(on("a.b.3"), {"a": {"b": ["x"]}}, {"a": {"b": [1, 2, 3, 4]}}).score == 0.0


def test_an_expected_output_without_the_field_cannot_be_scored() -> None:
    assert "no value at 'answer'" in unscorable(on("answer"), {"answer": "a1"}, {"other": 1})
    assert "no value" in unscorable("exact-match", "a1", None)


def test_when_the_target_failed_a_built_in_scores_zero_and_says_why() -> None:
    failed = score("exact-match", None, "Paris", error="TimeoutError: took too long")
    assert failed.score == 0.0 and "the target failed (TimeoutError: took too long)" in (failed.reason or "")


# -- contains, regex ------------------------------------------------------------------------------


def test_contains_looks_for_the_expected_output_ignoring_case_by_default() -> None:
    assert score("contains", "The capital is PARIS.", "paris").score == 1.0
    missing = score("contains", "The capital is Lyon.", "Paris")
    assert missing.score == 0.0 and "not found" in (missing.reason or "")
    assert score({"name": "contains", "options": {"caseSensitive": True}}, "PARIS", "Paris").score == 0.0
    assert score(on("answer", "contains"), {"answer": "it is Paris"}, {"answer": "Paris"}).score == 1.0


def test_contains_looks_for_a_given_value_without_needing_an_expected_output() -> None:
    spec = {"name": "contains", "options": {"value": "sorry"}}
    assert score(spec, "Sorry, I cannot help.", None).score == 1.0
    assert score(spec, "Here you go.", None).score == 0.0
    assert "'value'" in refused({"name": "contains", "options": {"value": 42}})


def test_regex_searches_the_output_with_a_pattern_compiled_once() -> None:
    spec = {"name": "regex", "options": {"pattern": r"^\d{4}-\d{2}-\d{2}$"}}
    assert score(spec, "2024-05-01").score == 1.0
    no_match = score(spec, "May 1st")
    assert no_match.score == 0.0 and "no match" in (no_match.reason or "")
    assert score({"name": "regex", "options": {"pattern": "paris", "flags": "i"}}, "PARIS").score == 1.0
    assert score({"name": "regex", "options": {"pattern": "^b", "flags": "m"}}, "a\nb").score == 1.0
    assert score({"name": "regex", "options": {"pattern": '"n": 3'}}, {"n": 3}).score == 0.0  # compact JSON text
    assert score({"name": "regex", "options": {"pattern": '"n":3'}}, {"n": 3}).score == 1.0
    assert score({"name": "regex", "options": {"pattern": "^a", "field": "x"}}, {"x": "abc"}).score == 1.0


def test_regex_refuses_a_missing_or_broken_pattern_and_unknown_flags() -> None:
    assert "needs the option 'pattern'" in refused("regex")
    assert "not a valid regular expression" in refused({"name": "regex", "options": {"pattern": "(unclosed"}})
    assert "'flags'" in refused({"name": "regex", "options": {"pattern": "a", "flags": "x"}})


# -- JSON -----------------------------------------------------------------------------------------


def test_json_equals_compares_json_values_parsing_a_string_output() -> None:
    assert score("json-equals", {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}).score == 1.0
    assert score("json-equals", '{"a": 1}', {"a": 1}).score == 1.0
    assert score("json-equals", "42", 42).score == 1.0
    assert score("json-equals", '{"a": 1}', '{"a": 1}').score == 1.0  # equal strings are equal
    assert score("json-equals", {"ok": True}, {"ok": 1}).score == 0.0
    differs = score("json-equals", {"a": {"b": 2}, "c": 3}, {"a": {"b": 1}, "c": 3})
    assert differs == ScoreOutput(0.0, "differs at a.b")
    assert score(on("result", "json-equals"), {"result": [1, 2]}, {"result": [1, 2], "x": 0}).score == 1.0


def test_json_subset_scores_the_fraction_of_expected_values_found() -> None:
    expected = {"name": "Ada", "address": {"city": "London", "zip": "N1"}, "tags": ["a", "b"]}
    full = {"name": "Ada", "age": 36, "address": {"city": "London", "zip": "N1", "street": "x"},
            "tags": ["a", "b", "c"]}
    assert score("json-subset", full, expected) == ScoreOutput(1.0)
    partial = score("json-subset", {"name": "Ada", "address": {"city": "Paris"}, "tags": ["b", "a"]}, expected)
    assert partial.score == pytest.approx(1 / 5)  # name; not city, zip, tags.0, tags.1
    assert partial.reason == "missing or different: address.city, address.zip, tags.0, tags.1"
    assert score("json-subset", json.dumps(full), expected).score == 1.0  # JSON in a string is parsed


def test_json_subset_treats_an_empty_object_or_list_as_a_value_to_find() -> None:
    assert score("json-subset", {"items": []}, {"items": []}).score == 1.0
    assert score("json-subset", {"items": [1]}, {"items": []}).score == 1.0
    assert score("json-subset", {}, {"items": []}) == ScoreOutput(0.0, "missing or different: items")


def test_json_schema_validates_the_output_against_a_schema_prepared_once() -> None:
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"},
                                                                        "n": {"type": "integer"}}}
    spec = {"name": "json-schema", "options": {"schema": schema}}
    assert score(spec, {"answer": "a1"}) == ScoreOutput(1.0)
    assert score(spec, '{"answer": "a1"}').score == 1.0
    invalid = score(spec, {"n": "x"})
    assert invalid.score == 0.0
    assert invalid.reason == "$: 'answer' is a required property; $.n: 'x' is not of type 'integer'"
    assert score(spec, "not json").score == 0.0


def test_json_schema_refuses_a_missing_or_invalid_schema() -> None:
    assert "needs the option 'schema'" in refused("json-schema")
    message = refused({"name": "json-schema", "options": {"schema": {"type": "nonsense"}}})
    assert "not a valid JSON Schema" in message


# -- similarity, numbers --------------------------------------------------------------------------


def test_similarity_is_the_rapidfuzz_measure_from_zero_to_one() -> None:
    assert score("similarity", "the cat sat", "the cat sat").score == 1.0
    assert score("similarity", "kitten", "sitting").score == pytest.approx(fuzz.ratio("kitten", "sitting") / 100)
    assert score({"name": "similarity", "options": {"method": "token-sort-ratio"}}, "sat cat the",
                 "the cat sat").score == 1.0
    assert score({"name": "similarity", "options": {"method": "partial-ratio"}}, "cat",
                 "the cat sat").score == 1.0


def test_similarity_with_a_threshold_passes_or_fails() -> None:
    spec = {"name": "similarity", "options": {"threshold": 0.8}}
    passed = score(spec, "colour", "color")
    assert passed.score == 1.0 and passed.reason == "similarity 0.909 (threshold 0.8)"
    assert score(spec, "red", "color").score == 0.0
    assert "'method'" in refused({"name": "similarity", "options": {"method": "jaro"}})
    assert "'threshold'" in refused({"name": "similarity", "options": {"threshold": 80}})


def test_numeric_closeness_within_an_absolute_or_relative_tolerance() -> None:
    assert score("numeric-closeness", 42, 42).score == 1.0
    assert score("numeric-closeness", 42.5, 42).score == 0.0
    assert score({"name": "numeric-closeness", "options": {"tolerance": 0.5}}, 42.5, 42).score == 1.0
    relative = {"name": "numeric-closeness", "options": {"relativeTolerance": 0.01}}
    assert score(relative, 1009, 1000).score == 1.0
    assert score(relative, 1011, 1000).score == 0.0
    assert score(on("total", "numeric-closeness"), {"total": 3}, {"total": 3.0}).score == 1.0


def test_numeric_closeness_reads_numbers_from_text() -> None:
    assert score("numeric-closeness", " 42 ", 42).score == 1.0
    assert score("numeric-closeness", "1,234.5", "1234.5").score == 1.0
    worked = score("numeric-closeness", "3 apples and 4 pears make 7.", 7)
    assert worked.score == 1.0 and "read 7 from the text" in (worked.reason or "")
    none = score("numeric-closeness", "no idea", 7)
    assert none.score == 0.0 and "no number" in (none.reason or "")
    assert score("numeric-closeness", True, 1).score == 0.0  # a bool is not a number
    assert "not a number" in unscorable("numeric-closeness", 7, "seven")


def test_numeric_closeness_in_smooth_mode_falls_off_linearly() -> None:
    smooth = {"name": "numeric-closeness", "options": {"mode": "smooth", "scale": 10}}
    assert score(smooth, 100, 100).score == 1.0
    assert score(smooth, 97, 100).score == pytest.approx(0.7)
    assert score(smooth, 80, 100).score == 0.0
    with_tolerance = {"name": "numeric-closeness", "options": {"mode": "smooth", "scale": 10, "tolerance": 2}}
    assert score(with_tolerance, 97, 100).score == pytest.approx(0.9)
    assert "needs the option 'scale'" in refused({"name": "numeric-closeness", "options": {"mode": "smooth"}})
    assert "'scale'" in refused({"name": "numeric-closeness", "options": {"scale": 10}})
    assert "'tolerance'" in refused({"name": "numeric-closeness", "options": {"tolerance": -1}})
    assert "'mode'" in refused({"name": "numeric-closeness", "options": {"mode": "fuzzy"}})


# -- user scorers ---------------------------------------------------------------------------------


def user_scorers() -> Registry:
    """A registry of the kind a user's module fills with @scorer."""
    registry = Registry()

    @registry.scorer
    def polite(input: Any, output: Any, expected_output: Any, metadata: Any) -> bool:
        return "please" in str(output).lower()

    @registry.scorer(name="length-ratio")
    def length_ratio(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
        return min(1.0, len(output) / len(expected_output))

    @registry.scorer(name="graded")
    async def graded(input: Any, output: Any, expected_output: Any, metadata: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"score": 0.5, "reason": f"half marks for {input['q']} in {metadata['split']}"}

    @registry.scorer(name="explained")
    async def explained(input: Any, output: Any, expected_output: Any, metadata: Any) -> ScoreOutput:
        return ScoreOutput(0.25, "a quarter")

    @registry.scorer(name="in-a-thread")
    def in_a_thread(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
        return 1.0 if threading.current_thread() is not threading.main_thread() else 0.0

    @registry.scorer(name="too-high")
    def too_high(input: Any, output: Any, expected_output: Any, metadata: Any) -> float:
        return 1.5

    @registry.scorer(name="forgot-return")
    def forgot_return(input: Any, output: Any, expected_output: Any, metadata: Any) -> None:
        pass

    return registry


def test_user_scorers_may_answer_a_bool_a_number_a_dict_or_a_score_output() -> None:
    registry = user_scorers()
    assert score("polite", "Please wait", registry=registry) == ScoreOutput(1.0)
    assert score("polite", "Wait", registry=registry) == ScoreOutput(0.0)
    assert score("length-ratio", "abc", "abcdef", registry=registry) == ScoreOutput(0.5)
    assert score("graded", "x", input={"q": "q1"}, metadata={"split": "test"}, registry=registry) == ScoreOutput(
        0.5, "half marks for q1 in test")
    assert score("explained", "x", registry=registry) == ScoreOutput(0.25, "a quarter")


def test_sync_user_scorers_run_in_a_worker_thread_so_the_event_loop_keeps_going() -> None:
    assert score("in-a-thread", "x", registry=user_scorers()).score == 1.0


def test_a_user_scorer_answering_outside_zero_to_one_or_nothing_is_an_error() -> None:
    registry = user_scorers()
    with pytest.raises(ValueError, match="'too-high' returned 1.5; a score must be a number from 0 to 1"):
        score("too-high", "x", registry=registry)
    with pytest.raises(ValueError, match="'forgot-return' returned None"):
        score("forgot-return", "x", registry=registry)


def test_user_scorers_are_found_by_name_may_be_renamed_and_take_no_options() -> None:
    registry = user_scorers()
    scorer = build_scorer({"name": "polite", "id": "politeness"}, registry)
    assert (scorer.id, scorer.name) == ("politeness", "polite")
    assert "takes no options" in refused({"name": "polite", "options": {"x": 1}}, registry)
    assert "available: exact-match" in refused("rude", registry) and "polite" in refused("rude", registry)


# -- llm-judge ------------------------------------------------------------------------------------


def judge_spec(base_url: str, **options: Any) -> dict[str, Any]:
    return {"name": "llm-judge", "options": {"baseUrl": base_url, "model": "judge-1",
                                             "rubric": "The answer names the capital of France.", **options}}


def answering(content: str, status: int = 200) -> Any:
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if status != 200:
            return status, {"error": {"message": "the judge is having a bad day"}}
        return 200, chat_completion(content)

    return respond


def judged(llm: LLMServer, output: Any, **options: Any) -> ScoreOutput:
    return score(judge_spec(llm.base_url, **options), output, "Paris", input={"q": "capital of France?"},
                 allowlist=(llm.base_url,))


def test_the_llm_judge_sends_the_rubric_and_the_case_and_reads_the_verdict() -> None:
    with LLMServer(answering('{"score": 0.9, "reason": "names Paris"}')) as llm:
        assert judged(llm, "It is Paris.") == ScoreOutput(0.9, "names Paris")
    [request] = llm.requests
    assert (request["model"], request["temperature"]) == ("judge-1", 0.0)
    system, user = request["messages"]
    assert system["role"] == "system" and "The answer names the capital of France." in system["content"]
    assert '"score"' in system["content"] and '"reason"' in system["content"]
    assert user["role"] == "user"
    assert json.loads(user["content"]) == {"input": {"q": "capital of France?"}, "expectedOutput": "Paris",
                                           "output": "It is Paris."}


def test_the_llm_judge_finds_the_verdict_in_fences_or_prose() -> None:
    with LLMServer(answering('```json\n{"score": 1, "reason": "correct"}\n```')) as llm:
        assert judged(llm, "Paris") == ScoreOutput(1.0, "correct")
    with LLMServer(answering('Thinking {about it}... Verdict: {"score": 0, "reason": "wrong city"} done.')) as llm:
        assert judged(llm, "Lyon") == ScoreOutput(0.0, "wrong city")


def test_a_judge_answer_without_a_valid_score_is_an_error() -> None:
    with LLMServer(answering("I think it is quite good.")) as llm:
        with pytest.raises(ValueError, match="holds no JSON object"):
            judged(llm, "Paris")
        llm.responder = answering('{"reason": "fine"}')
        with pytest.raises(ValueError, match="has no score"):
            judged(llm, "Paris")
        llm.responder = answering('{"score": 7, "reason": "out of ten"}')
        with pytest.raises(ValueError, match="a score must be a number from 0 to 1"):
            judged(llm, "Paris")


def test_judge_overload_and_server_errors_raise_a_transient_error_with_the_status() -> None:
    with LLMServer(answering("", status=500)) as llm:
        with pytest.raises(JudgeUnavailableError, match="HTTP 500") as raised:
            judged(llm, "Paris")
        assert isinstance(raised.value, TransientError)
        llm.responder = answering("", status=429)
        with pytest.raises(JudgeUnavailableError, match="HTTP 429"):
            judged(llm, "Paris")
        llm.responder = answering("", status=401)
        with pytest.raises(ValueError, match="HTTP 401"):  # not worth retrying
            judged(llm, "Paris")
    with pytest.raises(JudgeUnavailableError, match="cannot reach"):
        judged(llm, "Paris")  # the server is gone


def test_the_llm_judge_sends_the_api_key_named_by_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALLEDGER_SECRET_JUDGE_TEST_KEY", "sk-test-123")
    with LLMServer(answering('{"score": 1, "reason": "ok"}')) as llm:
        judged(llm, "Paris", apiKeyEnv="EVALLEDGER_SECRET_JUDGE_TEST_KEY")
        judged(llm, "Paris")
    with_key, without_key = ({k.lower(): v for k, v in h.items()} for h in llm.headers)
    assert with_key["authorization"] == "Bearer sk-test-123"
    assert "authorization" not in without_key


def test_the_llm_judge_takes_only_secrets_and_does_not_tell_which_variables_exist(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only EVALLEDGER_SECRET_* variables the operator set; the refusal reads the same
    whether the variable exists or not."""
    monkeypatch.setenv("JUDGE_TEST_PLAIN", "set")
    monkeypatch.delenv("JUDGE_TEST_UNSET", raising=False)
    monkeypatch.delenv("EVALLEDGER_SECRET_JUDGE_TEST_UNSET", raising=False)
    url = "http://127.0.0.1:9/v1"
    answers = {name: refused(judge_spec(url, apiKeyEnv=name), allowlist=(url,))
               for name in ("JUDGE_TEST_PLAIN", "JUDGE_TEST_UNSET", "EVALLEDGER_SECRET_JUDGE_TEST_UNSET")}
    assert all("EVALLEDGER_SECRET_" in message for message in answers.values())
    assert len({message.replace(name, "NAME") for name, message in answers.items()}) == 1


def test_the_llm_judge_reuses_one_client_and_skips_items_whose_target_failed() -> None:
    with LLMServer(answering('{"score": 1, "reason": "ok"}')) as llm:
        scorer = build_scorer(judge_spec(llm.base_url), None, http_allowlist=(llm.base_url,))

        async def run() -> tuple[Any, Any, ScoreOutput]:
            await scorer.score(case("Paris", "Paris"))
            first = scorer.client()  # type: ignore[attr-defined]
            await scorer.score(case("Paris", "Paris"))
            second = scorer.client()  # type: ignore[attr-defined]
            failed = await scorer.score(case(None, "Paris", error="RuntimeError: boom"))
            await scorer.aclose()  # type: ignore[attr-defined]
            return first, second, failed

        first, second, failed = asyncio.run(run())
    assert first is second and first.is_closed
    assert failed.score == 0.0 and "the target failed (RuntimeError: boom)" in (failed.reason or "")
    assert len(llm.requests) == 2  # the failed item was not sent to the judge


def test_the_llm_judge_needs_its_options_and_an_allowed_url() -> None:
    allowed = ("http://127.0.0.1",)
    assert "needs the option 'rubric'" in refused(
        {"name": "llm-judge", "options": {"baseUrl": "http://127.0.0.1/v1", "model": "m"}}, allowlist=allowed)
    message = refused(judge_spec("https://judge.example.com/v1"), allowlist=allowed)
    assert "'llm-judge'" in message and "not on the allowlist" in message and "EVALLEDGER_HTTP_ALLOWLIST" in message
    assert "not on the allowlist" in refused(judge_spec("http://127.0.0.1/v1"))  # an empty allowlist allows nothing
    assert "'temperature'" in refused(judge_spec("http://127.0.0.1/v1", temperature=5), allowlist=allowed)


# -- cost -----------------------------------------------------------------------------------------


def test_built_ins_without_io_are_cheap_enough_for_thousands_of_items_a_second() -> None:
    scorer = build_scorer({"name": "exact-match", "options": {"field": "answer"}}, None)
    cases = [case({"answer": f"a{i}"} if i % 2 == 0 else "wrong", {"answer": f"a{i}"}) for i in range(10_000)]

    async def run() -> tuple[float, list[ScoreOutput]]:
        started = time.perf_counter()
        scores = [await scorer.score(x) for x in cases]
        return time.perf_counter() - started, scores

    elapsed, scores = asyncio.run(run())
    assert sum(s.score or 0.0 for s in scores) == 5_000
    assert elapsed < 0.5, f"10,000 exact-match scores took {elapsed:.3f}s"
