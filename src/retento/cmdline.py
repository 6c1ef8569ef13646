"""What every command-line module uses: the consoles, failing with a message, the App of the running command, and
the one report renderer (`emit`: `--format table|csv|json` for every command that prints a table).

The `retento` root command (`retento.cli`) hands the App factory over (`use`) before any command runs, so a
domain's commands get the application without importing the module that builds it (which imports them)."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from retento.core import logs
from retento.core.config import get_settings
from retento.core.errors import DomainError
from retento.core.jsonable import jsonable

if TYPE_CHECKING:
    from retento.app import App

console = Console()
err = Console(stderr=True)
_factory: list[Callable[[], App]] = []  # set by the root command (`use`)


def use(factory: Callable[[], App]) -> None:
    """How the commands of this process build their App (`retento.cli` passes `bootstrap`)."""
    _factory[:] = [factory]


def open_app(*, log: bool = True) -> App:
    """A new App for the running command (the caller closes it or lets the process end); `log`: logging on stderr
    at `RETENTO_LOG_LEVEL`."""
    if not _factory:
        raise RuntimeError("not run from the `retento` command: it hands the application factory over (`use`)")
    if log:
        logs.configure(get_settings().log_level)
    return _factory[0]()


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def run_service(fn: Callable[[], Any]) -> Any:
    """Call fn; a DomainError becomes a message naming the field and a non-zero exit."""
    try:
        return fn()
    except DomainError as exc:
        fail(exc.message)


# --- Reports: every table a command prints, as a table that fits the terminal, CSV or JSON -----------------------

class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOption = Annotated[Format, typer.Option(
    "--format", case_sensitive=False,
    help="table (fits the terminal), csv or json (raw values) / таблица, csv или json")]

Kind = Literal["text", "int", "number", "money", "percent", "time", "timestamp", "date"]
_RIGHT = ("int", "number", "money", "percent")


@dataclass(frozen=True)
class Col:
    """One column: `key` of the row mapping (the CSV / JSON field name), `title` in the table (default: the key),
    `kind` how a value is shown in the table (int 1,500; number 1,500.5; money 1,500.00 with `currency` in the
    title; percent 0.125 as 12.5%; time as YYYY-MM-DD HH:MM UTC, timestamp with seconds; date), or `show` a
    function making the text; `empty` what the table shows for None.
    CSV and JSON always carry the raw value: numbers as they are, Decimal (money) as a string, times ISO UTC."""
    key: str
    title: str = ""
    kind: Kind = "text"
    currency: str | None = None
    empty: str = ""
    show: Callable[[Any], str] | None = None

    @property
    def heading(self) -> str:
        title = self.title or self.key
        return f"{title}, {self.currency}" if self.kind == "money" and self.currency else title


@dataclass(frozen=True)
class Rows:
    """One table of a report. `stacked`: always shown as `title: value` lines (a summary, one row)."""
    name: str
    columns: Sequence[Col]
    rows: Sequence[Mapping[str, Any]]
    title: str | None = None
    stacked: bool = False


def emit(fmt: Format, *tables: Rows, notes: Sequence[str] = (), data: Any = None) -> None:
    """Print a report in the chosen format on stdout.
    table: each table fits the terminal width (text columns wrap; when even that does not fit, each row becomes a
    block of `title: value` lines); piped with no COLUMNS, tables take the width they need (nothing is cut).
    csv: one table as it is; several as one CSV whose first column `table` names the table of each row.
    json: `data` when given (the whole report, as the API returns it), else one table as a list of objects,
    several as an object of them (a stacked one-row table as an object).
    `notes` are lines for people: after the tables on stdout, on stderr for csv and json."""
    if fmt is Format.csv:
        _csv(tables)
    elif fmt is Format.json:
        if data is None:
            data = ([_raw_row(tables[0], r) for r in tables[0].rows] if len(tables) == 1 else
                    {t.name: _raw_row(t, t.rows[0]) if t.stacked and len(t.rows) == 1 else
                     [_raw_row(t, r) for r in t.rows] for t in tables})
        sys.stdout.write(json.dumps(jsonable(data), ensure_ascii=False, indent=1) + "\n")
    else:
        width = terminal_width()
        for n, t in enumerate(tables):
            if n:
                sys.stdout.write("\n")
            _table(t, width)
    if notes:
        out = Console(stderr=fmt is not Format.table, width=terminal_width() or 10_000, highlight=False)
        for line in notes:
            out.print(Text(line))


def terminal_width() -> int | None:
    """COLUMNS when set, else the terminal's width; None when piped (no width to fit)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    probe = Console()
    return probe.width if probe.is_terminal else None


def cell(col: Col, value: Any) -> str:
    """The table text of a value."""
    if value is None:
        return col.empty
    if col.show is not None:
        return col.show(value)
    if col.kind == "int":
        return f"{value:,}"
    if col.kind == "money":
        return f"{Decimal(value):,.2f}"
    if col.kind == "number":
        return f"{value:,}" if isinstance(value, int) else f"{Decimal(str(value)).normalize():,f}"
    if col.kind == "percent":
        return f"{value:.1%}"
    if col.kind == "time":
        return _utc(value).strftime("%Y-%m-%d %H:%M")
    if col.kind == "timestamp":
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    if col.kind == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _raw(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _raw_columns(t: Rows) -> list[str]:
    keys = [c.key for c in t.columns]
    currencies = {c.currency for c in t.columns if c.kind == "money" and c.currency}
    return keys + ["currency"] if len(currencies) == 1 and "currency" not in keys else keys


def _raw_row(t: Rows, row: Mapping[str, Any]) -> dict[str, Any]:
    out = {c.key: _raw(row.get(c.key)) for c in t.columns}
    currencies = {c.currency for c in t.columns if c.kind == "money" and c.currency}
    if len(currencies) == 1 and "currency" not in out:
        out["currency"] = next(iter(currencies))
    return out


def _csv(tables: Sequence[Rows]) -> None:
    w = csv.writer(sys.stdout, lineterminator="\n")
    several = len(tables) > 1
    keys = list(dict.fromkeys(k for t in tables for k in _raw_columns(t)))
    w.writerow((["table"] if several else []) + keys)
    for t in tables:
        for row in t.rows:
            raw = _raw_row(t, row)
            w.writerow(([t.name] if several else []) + [_csv_value(raw.get(k)) for k in keys])


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_TEXT_FLOOR = 10  # a text column wraps down to this width before rows are stacked
_WORD_CAP = 20  # ... or to its longest word when that is no longer than this (names, codes stay whole)
_WHOLE = (*_RIGHT, "time", "timestamp", "date")  # never cut or wrapped


def _floor(col: Col, values: list[str], natural: int) -> int:
    """The narrowest a column may be (`values`: the cells that are not empty): a number or time as wide as its
    widest value (never cut), text `_TEXT_FLOOR` or its longest word; the heading and `empty` wrap between words,
    never inside one."""
    word = max(cell_len(w) for w in (col.heading + " " + col.empty).split())
    if col.kind in _WHOLE:
        return max([word, 1, *map(cell_len, values)])
    longest = max((cell_len(w) for v in values for w in v.split()), default=0)  # whole words, up to a point
    return max(word, min(natural, max(_TEXT_FLOOR, min(longest, _WORD_CAP))))


def _table(t: Rows, width: int | None) -> None:
    cells = [[cell(c, row.get(c.key)) for c in t.columns] for row in t.rows]
    if t.stacked:
        _stacked(t, cells, width)
        return
    natural = [max([cell_len(c.heading), *(max(map(cell_len, v[i].splitlines() or [""])) for v in cells)])
               for i, c in enumerate(t.columns)]
    room = None if width is None else width - (3 * len(t.columns) + 1)  # borders and one space each side
    if room is None or sum(natural) <= room:
        widths = natural
    else:
        floors = [_floor(c, [v[i] for v, row in zip(cells, t.rows, strict=True) if row.get(c.key) is not None], n)
                  for i, (c, n) in enumerate(zip(t.columns, natural, strict=True))]
        if sum(floors) > room:
            _stacked(t, cells, width)
            return
        widths = _spread(floors, natural, room)
    table = RichTable(title=t.title, show_lines=any("\n" in x for v in cells for x in v))
    for c, w in zip(t.columns, widths, strict=True):
        table.add_column(Text(c.heading), width=w, overflow="fold",
                         justify="right" if c.kind in _RIGHT else "left")
    for v in cells:
        table.add_row(*(Text(x) for x in v))
    total = sum(widths) + 3 * len(widths) + 1
    Console(width=max(total, width or 0), highlight=False).print(table)


def _spread(floors: list[int], natural: list[int], room: int) -> list[int]:
    """Widths from the floors up, sharing what room is left in proportion to what each column lacks."""
    widths, spare = list(floors), room - sum(floors)
    lack = [n - f for f, n in zip(floors, natural, strict=True)]
    total_lack = sum(lack)
    for i, missing in enumerate(lack):
        widths[i] += missing * spare // total_lack if total_lack else 0
    return widths


def _stacked(t: Rows, cells: list[list[str]], width: int | None) -> None:
    out = Console(width=width or 10_000, highlight=False)
    if t.title:
        out.print(Text(t.title, style="bold"))
    pad = max(cell_len(c.heading) for c in t.columns) + 2
    for n, v in enumerate(cells):
        if n:
            out.print()
        for c, x in zip(t.columns, v, strict=True):
            if width is None or pad + cell_len(x) <= width:
                out.print(Text(f"{c.heading}:".ljust(pad) + x), overflow="fold")
            else:  # the value on its own lines below its title
                out.print(Text(f"{c.heading}:"))
                out.print(Text(x), overflow="fold")
