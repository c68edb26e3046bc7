"""A follower never leaves a gap in a read model: when the view's recorded position is
behind what the follower believes (another process rebuilt the view since), a batch that
would go on from the belief is refused and the follower applies what lies between first."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from evalledger.bootstrap import build_ledger
from evalledger.domain.errors import DatasetNotFoundError
from evalledger.settings import Settings


def test_a_write_after_the_view_moved_back_brings_in_what_lies_between(settings: Settings) -> None:
    ledger = build_ledger(settings)
    try:
        [follower] = [f for f in ledger.followers if f.name == "datasets"]
        ledger.read_your_writes(ledger.datasets.create_dataset(name="applied"))
        # Written and applied, as far as this process knows, to tables another process has
        # since replaced by a rebuild that had not seen it: the view's position is before it.
        lost = ledger.datasets.create_dataset(name="between")
        assert lost.notification_id is not None
        with follower.paused():
            follower._position = lost.notification_id  # noqa: SLF001 - what the process believes
        # The next write lines up with that belief; applied as it is, it would skip "between".
        ledger.read_your_writes(written := ledger.datasets.create_dataset(name="after"))

        assert follower.position() == written.notification_id
        assert ledger.dataset_queries.get_dataset(lost.aggregate_id).name == "between"
        assert ledger.dataset_queries.get_dataset(written.aggregate_id).name == "after"
    finally:
        ledger.close()



def test_a_batch_that_fails_leaves_no_rows_and_no_position(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A batch sends its own BEGIN and COMMIT (view.py, `_batch_transaction`): a failure
    among its last writes rolls all of it back, rows and position, and the next write
    brings in what it had failed to apply."""
    ledger = build_ledger(settings)
    try:
        [follower] = [f for f in ledger.followers if f.name == "datasets"]
        view = follower.view
        ledger.read_your_writes(ledger.datasets.create_dataset(name="before"))
        position = follower.position()
        write_rows = view.write_rows

        def failing(curs: Any, state: Any) -> list[Any]:  # the rows, then a statement that fails
            return [*write_rows(curs, state), (b"SELECT 1/0", None)]

        view.write_rows = failing  # type: ignore[method-assign]
        lost = ledger.datasets.create_dataset(name="lost")
        with caplog.at_level(logging.WARNING):
            ledger.read_your_writes(lost)  # logged, not raised: the event is stored
        assert "division by zero" in caplog.text
        assert follower.position() == position
        with pytest.raises(DatasetNotFoundError):
            ledger.dataset_queries.get_dataset(lost.aggregate_id)

        view.write_rows = write_rows  # type: ignore[method-assign]
        ledger.read_your_writes(after := ledger.datasets.create_dataset(name="after"))
        assert follower.position() == after.notification_id
        assert ledger.dataset_queries.get_dataset(lost.aggregate_id).name == "lost"
    finally:
        ledger.close()
