"""A follower never leaves a gap in a read model: when the view's recorded position is
behind what the follower believes (another process rebuilt the view since), a batch that
would go on from the belief is refused and the follower applies what lies between first."""

from __future__ import annotations

from evalledger.bootstrap import build_ledger
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

