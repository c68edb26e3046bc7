"""The live path of one small write, in process: 600 single-item edits, each followed by
read-your-writes (the projection catching up in the writer's thread); prints the medians
of the command and of the catch-up. The catch-up is where a read model's live path shows
(see benchmarks/README.md, 2026-11-30 late night).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/single_edit.py

EDIT_N sets how many items the dataset holds (default 1,000, added in one event).

Runs in a fresh schema, dropped afterwards."""

from __future__ import annotations

import os
import statistics
import time
import uuid

import psycopg

os.environ["EVALLEDGER_SCHEMA"] = "edit_" + uuid.uuid4().hex[:8]

from evalledger.adapters import database  # noqa: E402
from evalledger.bootstrap import build_ledger  # noqa: E402
from evalledger.domain.content import ItemContent  # noqa: E402
from evalledger.domain.datasets import ItemChange, NewItem  # noqa: E402
from evalledger.settings import Settings  # noqa: E402


def main() -> None:
    settings = Settings.from_env()
    ledger = build_ledger(settings)
    try:
        written = ledger.datasets.create_dataset(name="single edits")
        ledger.read_your_writes(written)
        dataset_id = written.aggregate_id
        written = ledger.datasets.add_items(dataset_id, [NewItem(content=ItemContent({"q": i}, i, {}))
                                                         for i in range(int(os.environ.get("EDIT_N", "1000")))])
        ledger.read_your_writes(written)
        commands, catch_ups = [], []
        for k, item in enumerate(written.items[:600]):
            change = ItemChange(item_id=item.id, input={"q": f"edited {k}"}, fields=frozenset({"input"}))
            started = time.perf_counter()
            edit = ledger.datasets.update_items(dataset_id, [change])
            saved = time.perf_counter()
            ledger.read_your_writes(edit)
            commands.append(saved - started)
            catch_ups.append(time.perf_counter() - saved)
        print(f"command median {statistics.median(commands) * 1e3:.3f} ms, "
              f"read-your-writes median {statistics.median(catch_ups) * 1e3:.3f} ms")
    finally:
        ledger.close()
        params = database.resolve(settings.database_url, settings.embedded_data_dir)
        with psycopg.connect(params.conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{settings.schema}" CASCADE')


if __name__ == "__main__":
    main()
