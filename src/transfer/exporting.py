"""Items out as CSV, JSON or JSONL, streamed a page at a time.

CSV columns are input, expectedOutput, metadata, externalId (the import's default
mapping): strings are written as they are, objects and arrays as JSON, other values as
JSON text, null as an empty cell. Items whose input and expected output are strings,
objects or arrays re-import to identical items, and export again byte for byte.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from evalledger.read_ahead import read_ahead

CSV_COLUMNS = ("input", "expectedOutput", "metadata", "externalId")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "jsonl": "application/x-ndjson"}


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _record(item: Any, with_ids: bool) -> dict[str, Any]:
    record = {"input": item.input, "expectedOutput": item.expected_output, "metadata": item.metadata,
              "externalId": item.external_id}
    return {"id": item.id, **record} if with_ids else record


def export_items(pages: Iterable[list[Any]], file_format: str, *, with_ids: bool = False) -> Iterator[bytes]:
    pages = read_ahead(pages)
    if file_format == "csv":
        yield from _csv(pages, with_ids)
    elif file_format == "jsonl":
        for page in pages:
            yield b"".join(orjson.dumps(_record(item, with_ids)) + b"\n" for item in page)
    else:
        yield b"["
        first = True
        for page in pages:
            for item in page:
                yield (b"" if first else b",") + orjson.dumps(_record(item, with_ids))
                first = False
        yield b"]"


def _csv(pages: Iterable[list[Any]], with_ids: bool) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((("id",) if with_ids else ()) + CSV_COLUMNS)
    for page in pages:
        for item in page:
            cells = [_csv_cell(item.input), _csv_cell(item.expected_output),
                     _csv_cell(item.metadata or {}), _csv_cell(item.external_id)]
            writer.writerow(([str(item.id)] if with_ids else []) + cells)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


RESULT_COLUMNS = ("itemId", "repetition", "status", "input", "expectedOutput", "output", "error", "latencyMs",
                  "attempt", "traceId", "scores", "spanId", "traceUrl")
# Each scorer gets these CSV columns, named `<scorerId>.<field>`, in place of the JSON `scores` list.
SCORE_FIELDS = ("score", "reason", "error")


def export_results(pages: Iterable[list[dict[str, Any]]], file_format: str,
                   scorer_ids: Iterable[str] = ()) -> Iterator[bytes]:
    """Run results as JSONL, or as CSV: one column per field (JSON cells for structured
    values) and, for each of `scorer_ids` (every scorer with a score in the run, known
    before the first row is written), its score, reason and error in columns of their own,
    as a spreadsheet wants them; a result without that scorer leaves them empty."""
    pages = read_ahead(pages)
    if file_format == "jsonl":
        for page in pages:
            yield b"".join(orjson.dumps({k: r.get(k) for k in RESULT_COLUMNS}) + b"\n" for r in page)
        return
    scorers = list(dict.fromkeys(scorer_ids))
    fields = [k for k in RESULT_COLUMNS if k != "scores"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields + [f"{scorer}.{field}" for scorer in scorers for field in SCORE_FIELDS])
    for page in pages:
        for result in page:
            by_scorer = {score["scorerId"]: score for score in result["scores"] or []}
            writer.writerow(
                [_csv_cell(str(result[k]) if k == "itemId" else result.get(k)) for k in fields]
                + [_csv_cell(by_scorer.get(scorer, {}).get(field)) for scorer in scorers for field in SCORE_FIELDS]
            )
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()
