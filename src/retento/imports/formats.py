"""Reading import files (CSV with a header row, JSON Lines) record by record, and writing rejects.

Every record keeps the line it starts on and its original content, so a rejected record can be
reported by line number and written unchanged to the rejects file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from retento.core import parsing
from retento.core.errors import DomainError

EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
ENCODING = "utf-8-sig"  # a byte order mark (Excel writes one) is skipped


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class UnusableInput(Exception):
    """The file as a whole cannot be imported (missing, unreadable, unknown format, no header)."""


@dataclass
class Record:
    line: int  # 1-based line the record starts on
    raw: list[str] | str  # CSV cells / the JSON line as read, for the rejects file
    data: dict[str, Any] | None  # CSV: column -> cell; JSON Lines: the object; None if unreadable
    error: DomainError | None = None


def detect(path: Path, given: str | None) -> Format:
    if given:
        try:
            return Format(given.lower())
        except ValueError:
            raise UnusableInput(f"--format: unknown format {given!r} (use csv or jsonl)") from None
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UnusableInput(f"cannot tell the format of {path.name} from its extension "
                            "(.csv, .jsonl, .ndjson); give --format csv or --format jsonl")
    return Format(fmt)


class _Dialect(csv.excel):
    def __init__(self, delimiter: str) -> None:
        super().__init__()
        self.delimiter = delimiter


class InputFile:
    """An import file opened for reading; `records()` may be called more than once."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path, self.format = path, fmt
        if not path.is_file():
            raise UnusableInput(f"{path}: no such file")
        self.header: list[str] = []
        self.dialect: csv.Dialect = _Dialect(",")
        try:
            self.total = self._scan()
        except UnicodeDecodeError as exc:
            raise UnusableInput(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except csv.Error as exc:
            raise UnusableInput(f"{path.name}: unreadable CSV ({exc})") from None

    def _open(self) -> IO[str]:
        return self.path.open(encoding=ENCODING, newline="")

    def _scan(self) -> int:
        """Read the whole file once: header, delimiter, number of records (and every decode error, early)."""
        if self.format is Format.JSONL:
            with self._open() as fh:
                return sum(1 for line in fh if line.strip())
        with self._open() as fh:
            first = fh.readline()
            if not first.strip():
                raise UnusableInput(f"{self.path.name}: the first line must be a header row with column names")
            delimiter = max(",;\t", key=first.count)  # Excel in a Russian locale writes `;`
            self.dialect = _Dialect(delimiter)
            fh.seek(0)
            reader = csv.reader(fh, self.dialect)
            self.header = [h.strip() for h in next(reader)]
            if any(not h for h in self.header) or len(set(self.header)) != len(self.header):
                raise UnusableInput(f"{self.path.name}: header row has empty or repeated column names")
            return sum(1 for row in reader if row)

    def records(self) -> Iterator[Record]:
        return self._csv() if self.format is Format.CSV else self._jsonl()

    def _jsonl(self) -> Iterator[Record]:
        with self._open() as fh:
            for n, text in enumerate(fh, start=1):
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    data = parsing.json_value(text, root="json")  # what the database can hold, or the field
                except DomainError as exc:
                    yield Record(n, text, None, exc)
                    continue
                if not isinstance(data, dict):
                    yield Record(n, text, None, DomainError.one("json", "each line must be one JSON object"))
                    continue
                yield Record(n, text, data)

    def _csv(self) -> Iterator[Record]:
        with self._open() as fh:
            reader = csv.reader(fh, self.dialect)
            next(reader)
            width = len(self.header)
            while True:
                start = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                if not cells:
                    continue
                if len(cells) > width:
                    yield Record(start, cells, None, DomainError.one(
                        "csv", f"the row has {len(cells)} cells but the header has {width} columns"))
                    continue
                data = {h: c for h, c in zip(self.header, cells, strict=False) if c.strip()}
                yield Record(start, cells, data)


class Rejects:
    """Rejected records unchanged (CSV: under the original header) and a sibling `.errors` report."""

    def __init__(self, source: InputFile, path: Path) -> None:
        self.source, self.path = source, path
        self.errors_path = path.with_suffix(".errors")
        self.count = 0
        self._data: IO[str] | None = None
        self._errors: IO[str] | None = None
        for stale in (self.path, self.errors_path):
            stale.unlink(missing_ok=True)

    def add(self, record: Record, message: str) -> None:
        if self._data is None:
            self._data = self.path.open("w", encoding="utf-8", newline="")
            self._errors = self.errors_path.open("w", encoding="utf-8")
            if self.source.format is Format.CSV:
                self._writer = csv.writer(self._data, self.source.dialect)
                self._writer.writerow(self.source.header)
        if self.source.format is Format.CSV:
            self._writer.writerow(record.raw)
        else:
            self._data.write(f"{record.raw}\n")
        assert self._errors is not None
        self._errors.write(f"line {record.line}: {message}\n")
        self.count += 1

    def close(self) -> None:
        for fh in (self._data, self._errors):
            if fh is not None:
                fh.close()


def default_rejects_path(path: Path) -> Path:
    """customers.csv -> customers.rejects.csv, next to the input."""
    return path.with_name(f"{path.stem}.rejects{path.suffix or '.txt'}")
