"""Applications: their methods are the commands. They load an aggregate, ask it to
decide, and save the events it produced. `ledger` holds what they share (one event store,
the aggregate cache, the retry of a command that lost a race); `datasets` and `runs` the
commands of each aggregate. The applications run on PostgreSQL in the service and on the
library's in-memory persistence in the fast tests.
"""

from evalledger.service_layer.applications.datasets import Datasets
from evalledger.service_layer.applications.ledger import EVENT_STORE_NAME, LedgerApplication, Written
from evalledger.service_layer.applications.runs import Runs

# The package's public surface: callers import these from here, not from its modules.
__all__ = ["EVENT_STORE_NAME", "Datasets", "LedgerApplication", "Runs", "Written"]
