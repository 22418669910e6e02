"""Mappings from a CSV file: every bad row reported, nothing taken unless all are good."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import ValidationError

from conexapi.kit.errors import ValidationFailed
from conexapi.pipelines.schemas import MappingIn

#: The most mappings one request (a PUT or a file) may carry.
MAX_MAPPINGS = 5000

_CSV_COLUMNS = ("kind", "source_value", "target_value")


def parse_mappings_csv(raw: bytes) -> tuple[list[MappingIn], list[dict[str, Any]]]:
    """The rows, and one error entry per bad row (``line`` is the file's line number)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed("The file is not UTF-8 text.", code="csv_invalid") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if sorted(header) != sorted(_CSV_COLUMNS):
        raise ValidationFailed(
            "The first line must name the columns kind,source_value,target_value.",
            code="csv_invalid",
            details={"header": header[:10]},
        )
    reader.fieldnames = header
    items: list[MappingIn] = []
    errors: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                errors.append({"line": line, "errors": ["wrong number of columns"]})
                continue
            try:
                item = MappingIn(**{k: (row[k] or "").strip() for k in _CSV_COLUMNS})
            except ValidationError as exc:
                errors.append(
                    {
                        "line": line,
                        "errors": [
                            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in exc.errors()
                        ],
                    }
                )
                continue
            key = (item.kind.value, item.source_value)
            if key in seen:
                errors.append({"line": line, "errors": [f"repeats line {seen[key]}"]})
                continue
            seen[key] = line
            items.append(item)
            if len(items) > MAX_MAPPINGS:
                raise ValidationFailed(
                    f"At most {MAX_MAPPINGS} mappings per file.", code="csv_invalid"
                )
    except csv.Error as exc:
        raise ValidationFailed(f"The file is not valid CSV: {exc}.", code="csv_invalid") from None
    return items, errors
