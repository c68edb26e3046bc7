"""The Run aggregate: one execution of a pinned dataset version against a target, scored.

Life: created (pending) -> started (running) -> results recorded, in batches ->
completed | failed | cancelled. A run without a target is caller-driven: the caller
submits results itself (as upserts per item and repetition) and finalizes.

The aggregate keeps only what its decisions need: the status, and for each recorded
(item, repetition) whether it succeeded. Results themselves live in the events (and the
read model), never in memory, so a 100,000-item run stays small.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate

from evalledger.domain.audited import AuditedEvent
from evalledger.domain.errors import ConflictError, DomainError, InvalidRequestError, NotFoundError

JSON = Any

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})


class RunFinishedError(ConflictError):
    problem_type = "run-finished"


class RunNotCallerDrivenError(DomainError):
    """Results can only be submitted to runs without a target (400)."""

    problem_type = "run-has-target"


class RunNotFoundError(NotFoundError):
    problem_type = "run-not-found"


class ResultNotFoundError(NotFoundError):
    problem_type = "result-not-found"


class RunNotFinishedError(ConflictError):
    """Results are reviewed once the run has finished: until then a result may still be
    replaced, and a review would judge an output that is gone (409)."""

    problem_type = "run-not-finished"


VERDICTS = ("pass", "fail")


@dataclass(frozen=True, slots=True)
class RunSettings:
    max_concurrency: int = 8
    item_timeout_ms: int = 60_000
    max_retries: int = 2
    repetitions: int = 1

    def as_wire(self) -> dict[str, int]:
        return {
            "maxConcurrency": self.max_concurrency,
            "itemTimeoutMs": self.item_timeout_ms,
            "maxRetries": self.max_retries,
            "repetitions": self.repetitions,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, int]) -> RunSettings:
        return cls(
            max_concurrency=wire["maxConcurrency"],
            item_timeout_ms=wire["itemTimeoutMs"],
            max_retries=wire["maxRetries"],
            repetitions=wire["repetitions"],
        )


# What makes a run reproducible and findable, kept in its metadata under these keys: the
# model, the prompt ({"template", "version"}), the code version (a git commit) and
# free-form tags. Runs are listed and filtered by them (run_queries.list_runs).
REPRODUCIBILITY_KEYS = ("model", "prompt", "codeVersion", "tags")


def prompt_version(template: str) -> str:
    """A prompt template's version when none is given: a digest of its text, so runs with
    the same template share it."""
    return "sha256:" + hashlib.sha256(template.encode()).hexdigest()[:12]


def described_metadata(metadata: dict[str, JSON] | None, *, model: str | None = None,
                       prompt: str | dict[str, JSON] | None = None, code_version: str | None = None,
                       tags: list[str] | None = None) -> dict[str, JSON]:
    """A run's metadata with what makes it reproducible (REPRODUCIBILITY_KEYS) added. A
    prompt is a template text or {"template", "version"} (no version: a digest of the
    template). A key the metadata already holds with another value is refused."""
    merged = dict(metadata or {})
    if isinstance(prompt, str):
        prompt = {"template": prompt}
    if prompt is not None:
        prompt = {k: v for k, v in prompt.items() if v is not None}
        if isinstance(prompt.get("template"), str) and "version" not in prompt:
            prompt["version"] = prompt_version(prompt["template"])
    given = {"model": model, "prompt": prompt, "codeVersion": code_version,
             "tags": list(dict.fromkeys(tags)) if tags is not None else None}
    for key, value in given.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            raise InvalidRequestError(f"{key} is given twice, as {key} and as metadata.{key}, with different values",
                                      errors=[{"field": key, "message": "differs from metadata." + key}])
        merged[key] = value
    return merged


def expected_results(total_items: int, settings: dict[str, JSON]) -> int:
    """How many results a run of `total_items` with these (wire) settings expects: one per
    item and repetition. The aggregate and the runs read model both count with this."""
    return total_items * int(settings.get("repetitions", 1))  # type: ignore[arg-type]


def result_key(result: dict[str, JSON]) -> str:
    return f"{result['itemId']}#{result.get('repetition', 0)}"


def result_fingerprint(result: dict[str, JSON]) -> bytes:
    """A digest of a result as recorded, so an identical resubmission can be recognised
    without keeping results in memory."""
    return hashlib.blake2b(orjson.dumps(result, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def declared_scorer_ids(scorers: list[JSON]) -> list[str]:
    """The scorer ids a run was created with, in order: a name, or a spec's `id` (else its `name`)."""
    ids = []
    for spec in scorers:
        if isinstance(spec, str):
            ids.append(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("id") or spec.get("name"), str):
            ids.append(spec.get("id") or spec["name"])
    return ids


class Run(Aggregate):
    # Every event class states its version (`class_version`); see AuditedEvent for upcasting.
    class Event(AuditedEvent):
        pass

    class Created(Event, Aggregate.Created):
        class_version = 2
        dataset_id: str
        dataset_version: int
        target: dict[str, JSON] | None
        scorers: list[JSON]
        settings: dict[str, int]
        name: str
        metadata: dict[str, JSON]
        total_items: int

    class Started(Event):
        class_version = 2

        def apply(self, run: Run) -> None:
            run.status = RUNNING

    class ResultsRecorded(Event):
        class_version = 2

        # Each: itemId, repetition, output, error, latencyMs, attempts, traceId,
        # startedAt, scores: [{scorerId, score, reason, error}]
        results: list[dict[str, JSON]]

        def apply(self, run: Run) -> None:
            if run.status == PENDING:
                run.status = RUNNING
            for result in self.results:
                key = result_key(result)
                run.outcomes[key] = result.get("error") is None
                if run.target is None:  # only caller-driven runs take upserts
                    run.fingerprints[key] = result_fingerprint(result)

    class Completed(Event):
        class_version = 2

        succeeded: int
        failed: int
        skipped: int

        def apply(self, run: Run) -> None:
            run.status = COMPLETED

    class Failed(Event):
        class_version = 2

        succeeded: int
        failed: int
        skipped: int
        error: str | None

        def apply(self, run: Run) -> None:
            run.status = FAILED

    class Cancelled(Event):
        class_version = 2

        succeeded: int
        failed: int
        skipped: int

        def apply(self, run: Run) -> None:
            run.status = CANCELLED

    class ResultReviewed(Event):
        """A person's judgment of one result. Each field left None keeps what earlier reviews
        said; a score per scorer overrides the automatic one (None: back to it), a criterion
        is a score of the reviewer's own that no scorer gives."""

        class_version = 1

        item_id: str
        repetition: int
        verdict: str | None  # "pass" | "fail"
        scores: list[dict[str, JSON]]  # [{scorerId, score}]
        criteria: list[dict[str, JSON]]  # [{name, score}]
        comment: str | None
        flagged: bool | None

    def __init__(
        self,
        dataset_id: str,
        dataset_version: int,
        target: dict[str, JSON] | None,
        scorers: list[JSON],
        settings: dict[str, int],
        name: str,
        metadata: dict[str, JSON],
        total_items: int,
    ) -> None:
        self.dataset_id = dataset_id
        self.dataset_version = dataset_version
        self.target = target
        self.scorers = scorers
        self.settings = settings
        self.name = name
        self.metadata = metadata
        self.total_items = total_items
        self.status = PENDING
        self.outcomes: dict[str, bool] = {}  # "itemId#repetition" -> succeeded
        self.fingerprints: dict[str, bytes] = {}  # caller-driven: "itemId#repetition" -> result digest

    @classmethod
    def create(
        cls,
        *,
        run_id: UUID,
        dataset_id: UUID,
        dataset_version: int,
        target: dict[str, JSON] | None,
        scorers: list[JSON],
        settings: RunSettings,
        name: str,
        metadata: dict[str, JSON],
        total_items: int,
        actor: str,
        reason: str | None,
    ) -> Run:
        return cls._create(
            cls.Created,
            id=run_id,
            dataset_id=str(dataset_id),
            dataset_version=dataset_version,
            target=target,
            scorers=scorers,
            settings=settings.as_wire(),
            name=name,
            metadata=metadata,
            total_items=total_items,
            actor=actor,
            reason=reason,
        )

    # -- what it is ---------------------------------------------------------------------

    @property
    def caller_driven(self) -> bool:
        return self.target is None

    @property
    def run_settings(self) -> RunSettings:
        return RunSettings.from_wire(self.settings)

    @property
    def expected_results(self) -> int:
        return expected_results(self.total_items, self.settings)

    def counts(self) -> tuple[int, int, int]:
        succeeded = sum(1 for ok in self.outcomes.values() if ok)
        failed = len(self.outcomes) - succeeded
        return succeeded, failed, max(0, self.expected_results - len(self.outcomes))

    def is_recorded(self, item_id: str, repetition: int) -> bool:
        return f"{item_id}#{repetition}" in self.outcomes

    # -- commands -------------------------------------------------------------------------

    def start(self, *, actor: str) -> None:
        self.check_open()
        if self.status == PENDING:
            self.trigger_event(self.Started, actor=actor, reason=None)

    def record_results(self, results: list[dict[str, JSON]], *, upsert: bool, actor: str) -> int:
        """Record a batch. Target-driven runs keep the first result for a key (so a resumed
        run never records twice); caller-driven runs replace it (upsert), except with an
        identical result, which records nothing. Returns how many results were recorded.
        So a run with a target records each key once (the runs view relies on it)."""
        self.check_open()
        if upsert and not self.caller_driven:
            raise RunNotCallerDrivenError(f"run {self.id} has a target; its results are not replaced")
        if upsert:
            in_batch: dict[str, bytes] = {}
            changed = []
            for result in results:
                key, fingerprint = result_key(result), result_fingerprint(result)
                if in_batch.get(key, self.fingerprints.get(key)) != fingerprint:
                    in_batch[key] = fingerprint
                    changed.append(result)
            results = changed
        else:
            results = [r for r in results if result_key(r) not in self.outcomes]
        if results:
            self.trigger_event(self.ResultsRecorded, results=results, actor=actor, reason=None)
        return len(results)

    def finish(self, *, actor: str, error: str | None = None) -> None:
        """Completed, unless every result failed or the run could not go on (`error`)."""
        self.check_open()
        succeeded, failed, skipped = self.counts()
        if error is not None or (succeeded == 0 and failed > 0):
            self.trigger_event(
                self.Failed, succeeded=succeeded, failed=failed, skipped=skipped, error=error, actor=actor,
                reason=None,
            )
        else:
            self.trigger_event(
                self.Completed, succeeded=succeeded, failed=failed, skipped=skipped, actor=actor, reason=None
            )

    def finalize(self, *, actor: str) -> None:
        """A caller-driven run's finish: finalizing a run that finished this way again
        records nothing (a retried request gets the same answer); a cancelled run refuses."""
        if self.status in (COMPLETED, FAILED):
            return
        self.finish(actor=actor)

    def cancel(self, *, actor: str, reason: str | None) -> None:
        self.check_open()
        succeeded, failed, skipped = self.counts()
        self.trigger_event(
            self.Cancelled, succeeded=succeeded, failed=failed, skipped=skipped, actor=actor, reason=reason
        )

    def review(self, *, item_id: str, repetition: int, verdict: str | None, scores: dict[str, float | None],
               criteria: dict[str, float | None], comment: str | None, flagged: bool | None,
               actor: str, reason: str | None) -> None:
        """Record a review of a finished run's recorded result (scorer ids are checked by the
        caller, who can see which scorers the result has)."""
        if self.status not in FINISHED:
            raise RunNotFinishedError(f"run {self.id} is {self.status}; review its results once it has finished")
        if not self.is_recorded(item_id, repetition):
            raise ResultNotFoundError(f"run {self.id} has no result for item {item_id}, repetition {repetition}")
        if verdict is not None and verdict not in VERDICTS:
            raise InvalidRequestError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
        for name, score in (*scores.items(), *criteria.items()):
            if score is not None and not 0.0 <= score <= 1.0:
                raise InvalidRequestError(f"score of {name!r} must be between 0 and 1; got {score}")
        if verdict is None and not scores and not criteria and comment is None and flagged is None:
            raise InvalidRequestError("a review needs a verdict, a score, a criterion, a comment or a flag")
        self.trigger_event(
            self.ResultReviewed, item_id=item_id, repetition=repetition, verdict=verdict,
            scores=[{"scorerId": k, "score": v} for k, v in scores.items()],
            criteria=[{"name": k, "score": v} for k, v in criteria.items()],
            comment=comment, flagged=flagged, actor=actor, reason=reason,
        )

    def check_open(self) -> None:
        """Refuse (409) once the run has finished."""
        if self.status in FINISHED:
            raise RunFinishedError(f"run {self.id} is {self.status}; it accepts no more changes")
