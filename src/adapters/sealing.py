"""Item content sealed in stored events with per-item keys (crypto-shredding).

`SealingMapper` is the application's eventsourcing `Mapper`. Domain events in memory hold
plain content; on the way to the event store the mapper seals, with the item's own key
(`item_keys.py`), everything in an event that is or may have copied item content:

- `Dataset.ItemsAdded` / `ItemsUpdated`: each item entry's `content` becomes
  `{"sealed": TOKEN}`; the id, externalId and source stay in the clear.
- `Run.ResultsRecorded`: each result's `output`, `error`, `retryErrors` and its scores'
  `reason` and `error` are sealed together into the result's `sealed` TOKEN (their places
  hold null); whether there was an error stays in the clear (`hasError`), as do scores,
  latencies and counts, so run statistics survive a purge.

TOKEN is base64 of a 12-byte random nonce and the AES-256-GCM ciphertext of the JSON
value, authenticated with the item id (a token cannot be moved to another item).

On the way back, tokens are opened. Where an item's key was destroyed, its content reads
as `content.PURGED_CONTENT` and its copied texts as `content.PURGED_TEXT` — the same
values the projections write when they see `Dataset.ItemsPurged`, so a rebuilt read
model is identical to the one that lived through the purge.
"""

from __future__ import annotations

import binascii
from functools import partial
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder

from evalledger.domain.content import PURGED_CONTENT, PURGED_TEXT, Sealed
from evalledger.domain.datasets import Dataset
from evalledger.domain.errors import ItemPurgedError
from evalledger.domain.runs import Run
from evalledger.adapters.item_keys import ItemKeys, new_nonce

# What a purged item's content opens as: PURGED_CONTENT's three JSON texts.
_PURGED_CONTENT_JSON = (orjson.dumps(PURGED_CONTENT.input), orjson.dumps(PURGED_CONTENT.expected_output),
                        orjson.dumps(PURGED_CONTENT.metadata))
_RESULT_TEXTS = ("output", "error", "retryErrors")
_SCORE_TEXTS = ("reason", "error")


def seal(cipher: AESGCM, item_id: str, value: Any) -> str:
    nonce = new_nonce()
    return binascii.b2a_base64(nonce + cipher.encrypt(nonce, orjson.dumps(value), item_id.encode()),
                               newline=False).decode("ascii")


def open_sealed(cipher: AESGCM, item_id: str, token: str) -> Any:
    raw = binascii.a2b_base64(token)
    return orjson.loads(cipher.decrypt(raw[:12], raw[12:], item_id.encode()))


def seal_content(cipher: AESGCM, item_id: str, content: dict[str, Any]) -> str:
    """Item content is sealed as its three JSON texts joined by newlines (JSON from orjson
    never holds a raw newline), so that it opens into the read model's three columns
    without being parsed and written again."""
    plain = b"\n".join((orjson.dumps(content["input"]), orjson.dumps(content.get("expectedOutput")),
                        orjson.dumps(content.get("metadata"))))
    nonce = new_nonce()
    return binascii.b2a_base64(nonce + cipher.encrypt(nonce, plain, item_id.encode()), newline=False).decode("ascii")


def _content_json(plain: bytes) -> tuple[bytes, bytes, bytes]:
    """The input, expectedOutput and metadata JSON texts of opened item content."""
    if b"\n" in plain:
        input_json, expected_json, metadata_json = plain.split(b"\n")
        return input_json, expected_json, metadata_json
    # Sealed before content was sealed in parts: one JSON object.
    content = orjson.loads(plain)
    return (orjson.dumps(content["input"]), orjson.dumps(content.get("expectedOutput")),
            orjson.dumps(content.get("metadata")))


class SealingMapper(Mapper):
    def __init__(self, transcoder: Transcoder, keys: ItemKeys | None = None) -> None:
        super().__init__(transcoder=transcoder)
        self.keys = keys  # set by the application once its datastore exists

    # -- to the store -------------------------------------------------------------------

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls = type(domain_event)
        if cls is Dataset.ItemsAdded or cls is Dataset.ItemsUpdated:
            domain_event = _with(domain_event, items=self._seal_items(domain_event))
        elif cls is Run.ResultsRecorded:
            domain_event = _with(domain_event, results=self._seal_results(domain_event.results))
        return super().to_stored_event(domain_event)

    def _seal_items(self, event: Any) -> list[dict[str, Any]]:
        dataset_id = str(event.originator_id)
        ids = [entry["id"] for entry in event.items]
        self._keys.ensure(dataset_id, ids)
        ciphers = self._keys.ciphers(ids, dataset_id=dataset_id)
        sealed = []
        for entry in event.items:
            cipher = ciphers.get(entry["id"])
            if cipher is None:
                raise ItemPurgedError(f"item {entry['id']} was purged; its content cannot be written again")
            sealed.append({**entry, "content": {"sealed": seal_content(cipher, entry["id"], entry["content"])}})
        return sealed

    def _seal_results(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ciphers = self._keys.ciphers({result["itemId"] for result in results})
        sealed = []
        for result in results:
            item_id = result["itemId"]
            if item_id not in ciphers or result.get("purged"):
                # An item that never had a key (written before keys existed), or a result
                # already stripped of its texts because its item was purged.
                sealed.append(result)
                continue
            cipher = ciphers[item_id]
            if cipher is None:
                raise ItemPurgedDuringWrite(item_id)
            scores = result.get("scores") or []
            texts = {name: result.get(name) for name in _RESULT_TEXTS}
            texts["scores"] = [{name: score.get(name) for name in _SCORE_TEXTS} for score in scores]
            clear = {**result, **dict.fromkeys(name for name in _RESULT_TEXTS if name in result)}
            if "scores" in result:
                clear["scores"] = [
                    {**score, **dict.fromkeys(name for name in _SCORE_TEXTS if name in score),
                     "hasError": score.get("error") is not None}
                    for score in scores
                ]
            clear["hasError"] = result.get("error") is not None
            clear["sealed"] = seal(cipher, item_id, texts)
            sealed.append(clear)
        return sealed

    # -- from the store -----------------------------------------------------------------

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = super().to_domain_event(stored_event)
        cls = type(event)
        if cls is Dataset.ItemsAdded or cls is Dataset.ItemsUpdated:
            state = vars(event)
            state["items"] = self._open_items(str(event.originator_id), state["items"])
        elif cls is Run.ResultsRecorded:
            state = vars(event)
            state["results"] = self._open_results(state["results"])
        elif cls is Dataset.ItemPurged:
            # Every process that follows the log reads this event: each forgets the key it
            # may have cached (the purging process already has).
            self._keys.forget(event.item_id)
        return event

    def _open_items(self, dataset_id: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sealed content becomes a `Sealed` stand-in, decrypted when first looked at (a
        replay decrypts nothing it does not read). The key is looked up when it is opened,
        so content opened after a purge reads as purged; the dataset's keys are cached
        now, so that opening later rarely needs the database."""
        self._keys.preload(dataset_id)
        open_content = self._open_content
        for entry in entries:
            token = entry["content"].get("sealed")
            if token is not None:
                entry["content"] = Sealed(partial(open_content, dataset_id, entry["id"], token), len(token))
        return entries

    def _open_content(self, dataset_id: str, item_id: str, token: str) -> tuple[bytes, bytes, bytes]:
        """Sealed item content's three JSON texts (a rebuild opens every revision: kept to
        one call here)."""
        key = self.keys.key(item_id, dataset_id)  # type: ignore[union-attr]
        if key is None:
            return _PURGED_CONTENT_JSON
        raw = binascii.a2b_base64(token)
        return _content_json(AESGCM(key).decrypt(raw[:12], raw[12:], item_id.encode()))

    def _open_results(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        sealed_ids = {result["itemId"] for result in results if "sealed" in result}
        if not sealed_ids:
            return results
        ciphers = self._keys.ciphers(sealed_ids)
        for result in results:
            if "sealed" not in result:
                continue
            token = result.pop("sealed")
            has_error = result.pop("hasError")
            scores = result.get("scores") or []
            cipher = ciphers.get(result["itemId"])
            if token is None or cipher is None:
                score_errors = [score.pop("hasError") for score in scores]
                _make_purged(result, has_error, score_errors)
                continue
            texts = open_sealed(cipher, result["itemId"], token)
            for name in _RESULT_TEXTS:
                if name in result:
                    result[name] = texts[name]
            for score, score_texts in zip(scores, texts["scores"], strict=True):
                score.pop("hasError")
                for name in _SCORE_TEXTS:
                    if name in score:
                        score[name] = score_texts[name]
        return results

    @property
    def _keys(self) -> ItemKeys:
        if self.keys is None:
            raise RuntimeError("the mapper has no key store yet")
        return self.keys


class ItemPurgedDuringWrite(ItemPurgedError):
    """Results for an item whose key was destroyed reached the store with their texts:
    the caller strips them (`strip_purged_results`) and saves again."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"item {item_id} was purged while its results were being recorded")
        self.item_id = item_id


def strip_purged_results(keys: ItemKeys, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results, with those of purged items stripped of every text that may have
    copied the item's content (run statistics stay)."""
    ciphers = keys.ciphers({result["itemId"] for result in results})
    stripped = []
    for result in results:
        item_id = result["itemId"]
        if item_id in ciphers and ciphers[item_id] is None and not result.get("purged"):
            result = {**result, "scores": [dict(score) for score in result.get("scores") or []]}
            _make_purged(result, result.get("error") is not None,
                         [score.get("error") is not None for score in result["scores"]])
        stripped.append(result)
    return stripped


def _make_purged(result: dict[str, Any], has_error: bool, score_errors: list[bool]) -> None:
    """Turn a result (in place) into what it reads as once its item is purged. The runs
    projection's fold writes the same values (projections/runs_fold.py)."""
    for name in _RESULT_TEXTS:
        if name in result:
            result[name] = None
    if "retryErrors" in result:
        result["retryErrors"] = []
    result["error"] = PURGED_TEXT if has_error else None
    for score, score_error in zip(result.get("scores") or [], score_errors, strict=True):
        score["reason"] = None
        score["error"] = PURGED_TEXT if score_error else None
    result["purged"] = True


def _with(event: Any, **changes: Any) -> Any:
    """A shallow copy of a (frozen) domain event with some attributes replaced; the event
    in memory keeps its plain content."""
    copy = object.__new__(type(event))
    object.__setattr__(copy, "__dict__", {**vars(event), **changes})
    return copy
