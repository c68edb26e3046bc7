"""Per-item content keys: a big batch's keys are COPYed in, and another process (here, a
second key store with an empty cache) reads exactly the keys this one sealed with; when
another writer stored a key first, its key is the one used."""

from __future__ import annotations

from uuid import uuid4

from evalledger.bootstrap import Ledger
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.adapters.item_keys import COPY_FROM, ItemKeys


def test_a_big_batch_is_sealed_with_the_keys_another_process_reads(ledger: Ledger) -> None:
    dataset_id = ledger.datasets.create_dataset(name="keys").aggregate_id
    count = COPY_FROM + 100
    written = ledger.datasets.add_items(dataset_id, [
        NewItem(content=ItemContent(input={"q": f"question {i}", "path": "C:\\tmp"}, expected_output=i, metadata={}))
        for i in range(count)])
    ids = [item.id for item in written.items]

    elsewhere = ItemKeys(ledger.datasets.item_keys.datastore)  # an empty cache, as in another process
    assert all(elsewhere.key(item_id, str(dataset_id)) == ledger.datasets.item_keys.key(item_id, str(dataset_id))
               for item_id in ids)
    assert len({elsewhere.key(item_id, str(dataset_id)) for item_id in ids}) == count, "one key per item"

    ledger.datasets.item_keys._keys.clear()  # what this process cached is gone: read them back
    ledger.datasets.item_keys._loaded_datasets.clear()
    replayed = ledger.datasets.repository.get(dataset_id)
    assert [replayed.items[item_id].content.input["q"] for item_id in ids] == [f"question {i}" for i in range(count)]


def test_a_key_another_writer_stored_first_is_the_one_used(ledger: Ledger) -> None:
    keys = ledger.datasets.item_keys
    dataset_id = str(uuid4())
    ids = [str(uuid4()) for _ in range(COPY_FROM)]
    other = ItemKeys(keys.datastore)
    other.ensure(dataset_id, ids[:1])  # the other writer wins the race for the first item
    keys._loaded_datasets.add(dataset_id)  # as if this process had looked before the other wrote
    keys.ensure(dataset_id, ids)
    assert keys.key(ids[0], dataset_id) == other.key(ids[0], dataset_id)
    fresh = ItemKeys(keys.datastore)
    assert [fresh.key(item_id, dataset_id) for item_id in ids] == [keys.key(item_id, dataset_id) for item_id in ids]
