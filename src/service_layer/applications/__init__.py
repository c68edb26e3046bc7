"""Applications: their methods are the commands. They load an aggregate, ask it to
decide, and save the events it produced.

All applications share one event store (`evalledger_events`), so the notification log
orders dataset and run events in one sequence: one subscription feeds every projection,
and the audit feed is one ordered log.

Aggregates are cached in memory (a 100,000-item dataset takes a while to replay) and
are *not* deep-copied out of the cache: a command holds the dataset's lock, decides
before it changes anything, and evicts the cached copy whenever something goes wrong
after a change, so the cache never holds state that was not saved. A write from
another process is picked up by the repository's fast-forward (one indexed query).
"""

from evalledger.service_layer.applications.datasets import Datasets
from evalledger.service_layer.applications.ledger import EVENT_STORE_NAME, LedgerApplication, Written
from evalledger.service_layer.applications.runs import Runs

# The package's public surface: callers import these from here, not from its modules.
__all__ = ["EVENT_STORE_NAME", "Datasets", "LedgerApplication", "Runs", "Written"]
