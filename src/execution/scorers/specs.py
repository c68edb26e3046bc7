"""Building a run's scorers from their specs: built-ins by name, then the registry's user
scorers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process

from evalledger.domain.errors import InvalidRequestError
from evalledger.execution.scorers.builtin import (
    BuiltinScorer,
    Contains,
    ExactMatch,
    NumericCloseness,
    Regex,
    Similarity,
)
from evalledger.execution.scorers.builtin_json import JsonEquals, JsonSchemaValid, JsonSubset
from evalledger.execution.scorers.contract import Scorer, ScoreInput, ScoreOutput, to_score_output
from evalledger.execution.scorers.judge import LlmJudge
from evalledger.execution.scorers.values import show

if TYPE_CHECKING:
    from evalledger.execution.registry import Registered, Registry


BUILTINS: dict[str, type[BuiltinScorer]] = {
    cls.name: cls
    for cls in (ExactMatch, Contains, Regex, JsonEquals, JsonSubset, JsonSchemaValid, Similarity,
                NumericCloseness, LlmJudge)
}


# -- user scorers ---------------------------------------------------------------------------------


class RegisteredScorer:
    """A user's scorer function from the registry. Sync functions run in an off-loop thread
    so they cannot stall the event loop; the answer goes through `to_score_output`."""

    timeout_ms: int | None = None

    def __init__(self, scorer_id: str, entry: Registered) -> None:
        self.id = scorer_id
        self.name = entry.name
        self.entry = entry

    async def score(self, x: ScoreInput) -> ScoreOutput:
        answer = await self.entry.call(x.input, x.output, x.expected_output, x.metadata)
        return to_score_output(answer, f"scorer {self.name!r}")

    async def aclose(self) -> None:
        """Nothing to release."""


# -- building -------------------------------------------------------------------------------------

_SPEC_KEYS = {"name", "id", "options", "timeoutMs"}
MAX_SCORER_TIMEOUT_MS = 3_600_000


def build_scorer(spec: str | dict[str, Any], registry: Registry | None, *,
                 http_allowlist: Sequence[str] = ()) -> Scorer:
    """The scorer a spec describes: a name, or {"name", "id"?, "options"?, "timeoutMs"?}.
    Built-ins first, then the registry's scorers. InvalidRequestError (422) for an unknown
    name, a malformed spec or bad options; `http_allowlist` holds the base URLs the LLM
    judge may call."""
    name, scorer_id, options, timeout_ms = _read_spec(spec)
    builtin = BUILTINS.get(name)
    built: BuiltinScorer | RegisteredScorer
    if builtin is not None:
        built = builtin(scorer_id, options, http_allowlist)
    else:
        entry = registry.scorers.get(name) if registry is not None else None
        if entry is None:
            raise InvalidRequestError(_unknown_scorer(name, registry))
        if options:
            raise InvalidRequestError(f"scorer {name!r} is a registered function and takes no options, "
                                      f"got {', '.join(repr(k) for k in options)}")
        built = RegisteredScorer(scorer_id, entry)
    built.timeout_ms = timeout_ms
    return built


def _read_spec(spec: Any) -> tuple[str, str, dict[str, Any], int | None]:
    """(name, id, options, timeoutMs) of a spec, checked."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise InvalidRequestError(f"a scorer is a name or an object with 'name', 'id' and 'options', not {show(spec)}")
    name, scorer_id, options = spec.get("name"), spec.get("id"), spec.get("options")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"a scorer needs a 'name' (e.g. 'exact-match'): {show(spec)}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise InvalidRequestError(f"scorer {name!r}: unknown key(s) {', '.join(repr(u) for u in unknown)}; "
                                  f"a scorer has 'name', 'id', 'options' and 'timeoutMs' (put settings in 'options')")
    if scorer_id is None:
        scorer_id = name
    if not isinstance(scorer_id, str) or not scorer_id or len(scorer_id) > 200:
        raise InvalidRequestError(f"scorer {name!r}: 'id' must be a string of 1 to 200 characters")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidRequestError(f"scorer {name!r}: 'options' must be an object, not {show(options)}")
    timeout_ms = spec.get("timeoutMs")
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int)
                                   or not 1 <= timeout_ms <= MAX_SCORER_TIMEOUT_MS):
        raise InvalidRequestError(f"scorer {name!r}: 'timeoutMs' must be a whole number of milliseconds from 1 to "
                                  f"{MAX_SCORER_TIMEOUT_MS:,}, not {show(timeout_ms)}")
    return name, scorer_id, options, timeout_ms


def _unknown_scorer(name: str, registry: Registry | None) -> str:
    available = list(BUILTINS) + sorted(registry.scorers if registry is not None else ())
    guess = process.extractOne(name, available, scorer=fuzz.ratio, score_cutoff=75)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"unknown scorer {name!r}{hint}; available: {', '.join(available)}"


def describe_builtin_scorers() -> list[dict[str, Any]]:
    """Each built-in's name, description and options (name, type, default, meaning,
    required, choices), for `GET /api/scorers`."""
    return [cls.describe() for cls in BUILTINS.values()]
