"""Scorers: how a run judges each output. A score is a number from 0 to 1.

A scorer is built once per run from its spec — a name (`"exact-match"`) or
`{"name": "exact-match", "id": "answer-exact", "options": {"field": "answer"}}` — so
options are checked, regexes compiled and JSON Schemas prepared once, not per item; a
bad spec is refused at build time with an `InvalidRequestError` (a 422) that names the
scorer and the option. The `id` (default: the name) keys the scores in results, so one
scorer can be used twice with different options. `timeoutMs` (default: the run's item
timeout) bounds each of its calls; the runner records a scorer that overruns it as
`score: null` with a timed-out error.

At score time a scorer answers a `ScoreOutput`, or raises when the item cannot be scored
(the expected output lacks what the scorer compares with, the LLM judge is unreachable,
a user scorer returned 1.5); the runner records `score: null` with the error text.

Rules shared by the built-ins:

- `field` (a dot path like `answer` or `a.b.0`) is applied to both the output and the
  expected output before comparing. A string holding a JSON object or array (optionally
  in a ```json fence, as LLMs write it) is parsed on the way down. An output without the
  path scores 0 with a reason; an expected output without it (or null) raises.
- When the target failed (`ScoreInput.error` is set) there is no output to judge: every
  built-in scores 0 with the target's error as the reason, without calling anything.
- Built-ins that do no I/O are plain computations: no per-call set-up, and no thread hop
  unless a value is large (`values.is_large`); then they run in an off-loop thread, so the run's
  event loop goes on and the scorer's timeout applies. Their cost is bounded: regular
  expressions are RE2 (linear time), similarity compares bounded texts.

User scorers come from the registry (`registry.scorers[name]`): functions of
`(input, output, expected_output, metadata)`, sync (run in an off-loop thread) or async,
answering a float, a bool, a `ScoreOutput` or `{"score": ..., "reason": ...}`.

Every scorer has `async def aclose()`; only the LLM judge holds a resource (its HTTP
client), the others' is a no-op, so the runner can close them all alike.
"""

from evalledger.execution.scorers.contract import Scorer, ScoreInput, ScoreOutput, to_score_output
from evalledger.execution.scorers.judge import JudgeUnavailableError
from evalledger.execution.scorers.specs import RegisteredScorer, build_scorer, describe_builtin_scorers

# The package's public surface: the runner, the SDK, the API and the tests import these names
# from here and need not know which module of the package holds them.
__all__ = [
    "JudgeUnavailableError",
    "RegisteredScorer",
    "ScoreInput",
    "ScoreOutput",
    "Scorer",
    "build_scorer",
    "describe_builtin_scorers",
    "to_score_output",
]
