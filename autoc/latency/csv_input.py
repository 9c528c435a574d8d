"""Reading the CSV files users bring (on-device results, whole-network latencies), with errors
that name the file, the line and the fix. ``.gz`` files are read transparently; lines starting
with ``#`` are comments (``# key: value`` comments carry metadata)."""
from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from autoc.errors import DeviceError


@dataclass(frozen=True)
class CsvRow:
    """One data row of a CSV file, with its line number for messages."""

    line: int  # 1-based line in the file
    values: dict[str, str]


@dataclass(frozen=True)
class CsvTable:
    """A parsed CSV file (its ``# key: value`` comment lines in ``meta``) whose errors name file and line."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[CsvRow, ...]
    meta: dict[str, str]
    header_line: int = 1

    def require(self, columns: list[str], *, fix: str, fields: tuple[str, ...] = ()) -> None:
        """A DeviceError naming the missing columns and ``fix`` (whose option names are ``fields``)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DeviceError(
                f"{self.path} line {self.header_line}: missing columns {missing} (has {list(self.columns)}); {fix}",
                fields=fields,
            )

    def error(self, row: CsvRow, message: str) -> DeviceError:
        return DeviceError(f"{self.path} line {row.line}: {message}")

    def milliseconds(self, row: CsvRow, column: str) -> float:
        """A positive finite time from ``column``, else an error naming file, line and column."""
        text = row.values.get(column, "")
        try:
            value = float(text)
        except ValueError:
            raise self.error(row, f"{column} = {text!r} is not a number; give times in ms, e.g. 12.5") from None
        if not math.isfinite(value) or value <= 0:
            raise self.error(row, f"{column} = {text!r} is not a positive time; a latency must be > 0 ms")
        return value


def read_csv(path: str | Path, *, what: str) -> CsvTable:
    """The whole table; DeviceError when the file is missing, unreadable, empty or ragged."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except FileNotFoundError:
        raise DeviceError(f"no {what} at {path}; check the path") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DeviceError(f"cannot read {what} {path} ({exc}); give a UTF-8 CSV file (optionally .gz)") from None
    return parse_csv(text, path=path, what=what)


def parse_csv(text: str, *, path: Path, what: str) -> CsvTable:
    """Parse ``text`` (read from ``path``, a ``what`` for messages): the header, then one value per column a row."""
    meta: dict[str, str] = {}
    lines = list(_numbered(text, meta))
    if not lines:
        raise DeviceError(f"{what} {path} has no header line; its first non-comment line must name the columns")
    header_line, header = lines[0]
    columns = tuple(c.strip() for c in next(csv.reader([header])))
    rows = []
    for line, content in lines[1:]:
        cells = next(csv.reader([content]))
        if len(cells) != len(columns):
            raise DeviceError(
                f"{path} line {line}: {len(cells)} fields but the header (line {header_line}) has {len(columns)}; "
                "every row needs one value per column"
            )
        rows.append(CsvRow(line, {c: v.strip() for c, v in zip(columns, cells)}))
    if not rows:
        raise DeviceError(f"{what} {path} has a header but no rows; add one row per measurement")
    return CsvTable(path=path, columns=columns, rows=tuple(rows), meta=meta, header_line=header_line)


def _numbered(text: str, meta: dict[str, str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(io.StringIO(text), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, sep, value = stripped[1:].partition(":")
            if sep:
                meta[key.strip()] = value.strip()
            continue
        yield number, stripped
