"""A run that cannot start or go on (the database refuses a connection, say) is not given
up: the failure is logged, shown on the run (`statusReason`) and tried again after a
random, growing pause, for as long as it takes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from evalledger.domain.errors import DomainError
from evalledger.projections.run_queries import StatusReason

log = logging.getLogger(__name__)

# The longest pause between attempts to start (or go on with) a run.
RETRY_MAX_PAUSE = 30.0


def worth_retrying(error: BaseException) -> bool:
    """Anything that stops an execution may pass, but a refusal of the domain's (no such
    run, say), which would only be refused again, and a cancellation (stop())."""
    return isinstance(error, Exception) and not isinstance(error, DomainError)


class RunRetries:
    """The retry policy of deferring and executing runs, and why each run waits meanwhile."""

    def __init__(self, max_pause: float = RETRY_MAX_PAUSE) -> None:
        self.max_pause = max_pause
        # Why a run is not going on, while it waits to be tried again (`statusReason`).
        self.waiting: dict[UUID, StatusReason] = {}

    def retrying(self, run_id: UUID) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(worth_retrying),
            wait=wait_random_exponential(multiplier=0.25, max=self.max_pause),
            before_sleep=lambda state: self._note_waiting(run_id, state),
            reraise=True,
        )

    def _note_waiting(self, run_id: UUID, state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        pause = state.next_action.sleep
        now = datetime.now(UTC)
        reason = f"{type(error).__name__}: {error}".strip()
        log.warning("run %s could not start or go on (attempt %d): %s; trying again in %.1f s",
                    run_id, state.attempt_number, reason, pause, exc_info=error if state.attempt_number == 1 else None)
        previous = self.waiting.get(run_id)
        self.waiting[run_id] = StatusReason(
            reason=reason, attempts=max(state.attempt_number, previous.attempts if previous else 0),
            since=previous.since if previous else now, next_attempt_at=now + timedelta(seconds=pause))
