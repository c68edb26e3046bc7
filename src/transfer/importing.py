"""Reading CSV, JSON and JSONL files into items, with row-numbered errors.

Files are read from disk as a stream (CSV and JSONL a row at a time; a JSON array is
parsed once), as strictly as request bodies: an integer beyond 64 bits stays exact, so the
row is refused by name as it would be by `POST .../items`, never stored as a float. Nothing is written here: `read_items` returns the items and every problem
found, and the caller decides (reject, or skip the invalid rows).

CSV columns map to roles — `input`, `expectedOutput`, `metadata`, `externalId` or
`ignore`. Several columns mapped to one role make an object keyed by column name; a
single column gives its value. Cells holding a JSON object or array are parsed (a cell
that looks like one but is not valid JSON is kept as text, with a warning); empty cells
are null. Without a mapping, columns named input / expectedOutput / metadata / externalId
take those roles and the rest are ignored. Row numbers count the header as row 1.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalledger.api.strict_json import strict_loads
from evalledger.domain import schemas
from evalledger.domain.content import ItemContent
from evalledger.domain.datasets import NewItem
from evalledger.domain.storable import problems

ROLES = ("input", "expectedOutput", "metadata", "externalId", "ignore")
FORMATS = ("csv", "json", "jsonl")
MAX_ERRORS = 1000

csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class Remedy:
    """How to get past a refusal: an import parameter and a value for it. Kept apart from
    the message so each client words it in its own syntax (the API as `name=value`, the
    CLI as its option)."""

    parameter: str  # the API's query parameter, e.g. "skipInvalid"
    value: str
    purpose: str  # e.g. "to import the valid rows"

    def as_query(self) -> str:
        return f"pass {self.parameter}={self.value} {self.purpose}"


class ImportFileError(ValueError):
    """The file as a whole cannot be read (wrong format, encoding, shape)."""

    def __init__(self, message: str, remedy: Remedy | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} ({self.remedy.as_query()})" if self.remedy else self.message


@dataclass(frozen=True, slots=True)
class RowProblem:
    """What is wrong with a row (or, as a warning, what was done to it): the row's number, the
    field (empty for the whole row) and what."""

    row: int
    field: str
    message: str


@dataclass
class ImportReport:
    format: str
    rows: int = 0
    items: list[tuple[int, NewItem]] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    invalid_rows: set[int] = field(default_factory=set)

    def problem(self, row: int, field_name: str, message: str) -> None:
        self.invalid_rows.add(row)
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowProblem(row, field_name, message))

    def warn(self, row: int, field_name: str, message: str) -> None:
        if len(self.warnings) < MAX_ERRORS:
            self.warnings.append(RowProblem(row, field_name, message))


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """`column=role` pairs (from `?map=question=input&map=answer=expectedOutput`)."""
    mapping = {}
    for pair in pairs:
        column, sep, role = pair.rpartition("=")
        if not sep or not column:
            raise ImportFileError(f"mapping {pair!r} is not column=role")
        if role not in ROLES:
            raise ImportFileError(f"mapping {pair!r}: role must be one of {', '.join(ROLES)}")
        mapping[column] = role
    return mapping


def detect_format(filename: str | None, given: str | None) -> str:
    if given:
        if given not in FORMATS:
            raise ImportFileError(f"format must be one of {', '.join(FORMATS)}, not {given!r}")
        return given
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix == "ndjson":
        return "jsonl"
    raise ImportFileError("cannot tell the file's format from its name",
                          Remedy("format", "csv|json|jsonl", "to name it"))


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines, decoded as UTF-8 (a BOM is allowed); binary or other encodings are refused."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    with path.open("rb") as raw:
        pending = ""
        offset = 0
        while chunk := raw.read(1 << 20):
            if b"\x00" in chunk:
                raise ImportFileError("the file is binary (it contains NUL bytes), not text")
            try:
                pending += decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise ImportFileError(
                    f"the file is not UTF-8 text (byte {offset + error.start}); save it as UTF-8 and retry"
                ) from None
            offset += len(chunk)
            lines = pending.splitlines(keepends=True)
            pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
            yield from lines
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending


def _cell(value: str, row: int, column: str, report: ImportReport) -> Any:
    if value == "":
        return None
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return strict_loads(stripped)
        except json.JSONDecodeError as error:
            report.warn(row, column, f"looks like JSON but is not ({error}); kept as text")
    return value


def _csv_rows(path: Path, mapping: dict[str, str], report: ImportReport) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(_text_lines(path))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the CSV file is empty") from None
    except csv.Error as error:
        raise ImportFileError(f"the CSV header cannot be read: {error}") from None
    if len(set(header)) != len(header):
        raise ImportFileError("the CSV header repeats a column name")
    unknown = sorted(set(mapping) - set(header))
    if unknown:
        raise ImportFileError(f"the mapping names columns the file does not have: {', '.join(unknown)}")
    roles = {column: mapping.get(column, column if column in ROLES else "ignore") for column in header}
    for column in header:
        if column not in mapping and roles[column] == "ignore":  # dropped without being asked to: say so
            report.warn(1, column, "the column is not mapped to a role, so its values were not imported "
                                   "(map it to metadata to keep them, or to ignore to silence this)")
    by_role: dict[str, list[int]] = {}
    for position, column in enumerate(header):
        by_role.setdefault(roles[column], []).append(position)
    if "input" not in by_role:
        raise ImportFileError("no column is mapped to input; name a column 'input' or map one",
                              Remedy("map", f"{header[0] or 'question'}=input", "to map a column to input"))
    row_number = 1
    try:
        for cells in reader:
            row_number += 1
            if cells == []:
                continue
            if len(cells) != len(header):
                report.problem(row_number, "", f"has {len(cells)} cells; the header has {len(header)}")
                continue
            record: dict[str, Any] = {}
            for role, positions in by_role.items():
                if role == "ignore":
                    continue
                values = {header[p]: _cell(cells[p], row_number, header[p], report) for p in positions}
                if len(positions) == 1 and role != "metadata":
                    record[role] = next(iter(values.values()))
                elif role == "metadata" and len(positions) == 1:
                    value = next(iter(values.values()))
                    record[role] = value if isinstance(value, dict) or value is None else {header[positions[0]]: value}
                else:
                    record[role] = values
            yield row_number, record
    except csv.Error as error:
        raise ImportFileError(f"row {row_number + 1} cannot be read as CSV: {error}") from None


def _jsonl_rows(path: Path, report: ImportReport) -> Iterator[tuple[int, dict[str, Any]]]:
    for row_number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = strict_loads(line)
        except json.JSONDecodeError as error:
            report.problem(row_number, "", f"is not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            report.problem(row_number, "", "is not a JSON object")
            continue
        yield row_number, record


def _json_rows(path: Path, report: ImportReport) -> Iterator[tuple[int, dict[str, Any]]]:
    text = "".join(_text_lines(path))
    try:
        document = strict_loads(text)
    except json.JSONDecodeError as error:
        raise ImportFileError(f"the file is not valid JSON: {error}") from None
    del text
    if not isinstance(document, list):
        raise ImportFileError("a JSON import must be an array of objects, e.g. [{\"input\": ...}, ...]")
    for index, record in enumerate(document, start=1):
        if not isinstance(record, dict):
            report.problem(index, "", "is not a JSON object")
            continue
        yield index, record


def read_items(
    path: Path,
    *,
    file_format: str,
    filename: str,
    mapping: dict[str, str] | None = None,
    input_schema: dict[str, Any] | None = None,
    expected_output_schema: dict[str, Any] | None = None,
) -> ImportReport:
    """Every row of the file as an item, or the reasons it cannot be one."""
    report = ImportReport(format=file_format)
    if file_format == "csv":
        rows = _csv_rows(path, mapping or {}, report)
    elif file_format == "jsonl":
        rows = _jsonl_rows(path, report)
    else:
        rows = _json_rows(path, report)
    first_row_of: dict[str, int] = {}  # externalId -> the row that used it first
    for row_number, record in rows:
        report.rows += 1
        item = _to_item(row_number, record, filename, file_format, report)
        if item is None:
            continue
        found = schemas.violations("input", input_schema, item.content.input)
        if expected_output_schema is not None and item.content.expected_output is not None:
            found += schemas.violations("expectedOutput", expected_output_schema, item.content.expected_output)
        for violation in found:
            report.problem(row_number, violation["field"], violation["message"])
        if found:
            continue
        if item.external_id is not None:  # the first valid row with an externalId keeps it
            first = first_row_of.setdefault(item.external_id, row_number)
            if first != row_number:
                report.problem(row_number, "externalId",
                               f"externalId {item.external_id!r} is already used by row {first} of the file")
                continue
        report.items.append((row_number, item))
    report.rows = max(report.rows, len(report.invalid_rows | {r for r, _ in report.items}))
    return report


def _to_item(row: int, record: dict[str, Any], filename: str, file_format: str,
             report: ImportReport) -> NewItem | None:
    unknown = set(record) - {"input", "expectedOutput", "metadata", "externalId"}
    if unknown and file_format != "csv":
        report.problem(row, ",".join(sorted(unknown)), "unknown field(s); use input, expectedOutput, metadata, externalId")
        return None
    if record.get("input") is None:
        report.problem(row, "input", "input is missing or empty")
        return None
    metadata = record.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        report.problem(row, "metadata", "metadata must be an object")
        return None
    external_id = record.get("externalId")
    if external_id is not None:
        if not isinstance(external_id, str | int) or isinstance(external_id, bool) or str(external_id) == "":
            report.problem(row, "externalId", "externalId must be a non-empty string")
            return None
        external_id = str(external_id)
        if len(external_id) > 256:
            report.problem(row, "externalId", "externalId is longer than 256 characters")
            return None
    unstorable = problems({"input": record.get("input"), "expectedOutput": record.get("expectedOutput"),
                           "metadata": metadata, "externalId": external_id, "file": filename}, "")
    if unstorable:
        for problem in unstorable:
            report.problem(row, problem["field"].lstrip("/"), problem["message"])
        return None
    content = ItemContent(input=record["input"], expected_output=record.get("expectedOutput"), metadata=metadata)
    return NewItem(content=content, external_id=external_id,
                   source={"kind": "import", "file": filename, "format": file_format, "row": row})

