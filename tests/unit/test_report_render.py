"""The one report renderer (`retento.cmdline.emit`) through a command run by typer's CliRunner: a wide and a
narrow terminal, piped output (no width), CSV and JSON."""

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import typer
from typer.testing import CliRunner

from retento.cmdline import Col, FormatOption, Rows, emit

COLS = [Col("channel"), Col("sent", kind="int"), Col("read", kind="int", empty="not reported / нет данных"),
        Col("cost", kind="money", currency="RUB"), Col("cost_per_read", "cost per read", kind="money",
                                                          currency="RUB"),
        Col("read_rate", "read rate", kind="percent"), Col("at", "first send (UTC)", kind="time"),
        Col("note", "a long free text note")]
ROWS = [{"channel": "email", "sent": 50_000, "read": 10_000, "cost": Decimal("1500.00"),
         "cost_per_read": Decimal("0.15"), "read_rate": 0.2, "at": datetime(2026, 11, 30, 7, tzinfo=UTC),
         "note": "sent through the local relay, one connection per batch"},
        {"channel": "whatsapp", "sent": 40_000, "read": None, "cost": Decimal("224000.00"), "cost_per_read": None,
         "read_rate": None, "at": datetime(2026, 12, 1, 7, 30, tzinfo=UTC), "note": ""}]
app = typer.Typer()


@app.command()
def show(fmt: FormatOption = "table", summary: bool = False) -> None:
    tables = [Rows("channels", COLS, ROWS, title="by channel")]
    if summary:
        tables.append(Rows("summary", [Col("members", kind="int"), Col("net_saving", "net saving", kind="money",
                                                                        currency="RUB")],
                           [{"members": 50_000, "net_saving": Decimal("54500.00")}], stacked=True))
    emit(fmt, *tables, notes=["showing 2 of 2"])


runner = CliRunner()
NUMBERS = ("50,000", "40,000", "1,500.00", "224,000.00", "10,000", "20.0%", "2026-12-01 07:30")


def run(*args: str, **env: str) -> str:
    out = runner.invoke(app, list(args), env={"COLUMNS": "", **env})
    assert out.exit_code == 0, out.output
    return out.stdout


def test_piped_without_a_width_nothing_is_cut():
    text = run()
    assert "…" not in text
    for number in NUMBERS:
        assert number in text
    assert "sent through the local relay, one connection per batch" in text  # no wrapping either
    assert text.rstrip().endswith("showing 2 of 2")


def test_a_narrow_terminal_wraps_text_and_keeps_numbers_whole():
    text = run(COLUMNS="110")
    assert max(len(line) for line in text.splitlines()) <= 110
    assert "┃" in text and "…" not in text
    for number in NUMBERS:
        assert re.search(rf"│\s*{re.escape(number)}\s*│", text), number


def test_a_very_narrow_terminal_stacks_rows_as_blocks():
    text = run("--summary", COLUMNS="40")
    assert "┃" not in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 40
    assert re.search(r"^cost, RUB:\s+224,000\.00$", text, re.M)
    assert re.search(r"^read:\s+not reported / нет данных$", text, re.M)
    assert re.search(r"^net saving, RUB:\s+54,500\.00$", text, re.M)
    assert text.count("channel:") == 2


def test_csv_carries_raw_values():
    rows = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    assert rows[0] == {"channel": "email", "sent": "50000", "read": "10000", "cost": "1500.00",
                       "cost_per_read": "0.15", "read_rate": "0.2", "at": "2026-11-30T07:00:00+00:00",
                       "note": "sent through the local relay, one connection per batch", "currency": "RUB"}
    assert rows[1]["read"] == "" and rows[1]["cost"] == "224000.00"
    several = list(csv.DictReader(io.StringIO(run("--format", "csv", "--summary"))))
    assert [r["table"] for r in several] == ["channels", "channels", "summary"]
    assert several[2]["net_saving"] == "54500.00" and several[2]["members"] == "50000"


def test_json_carries_raw_values():
    out = runner.invoke(app, ["--format", "json"])
    rows = json.loads(out.stdout)
    assert rows[1] == {"channel": "whatsapp", "sent": 40000, "read": None, "cost": "224000.00",
                       "cost_per_read": None, "read_rate": None, "at": "2026-12-01T07:30:00+00:00", "note": "",
                       "currency": "RUB"}
    assert "showing 2 of 2" in out.stderr  # notes for people stay off the machine-readable output
    both = json.loads(runner.invoke(app, ["--format", "json", "--summary"]).stdout)
    assert both["summary"] == {"members": 50000, "net_saving": "54500.00", "currency": "RUB"}
    assert len(both["channels"]) == 2


def test_an_unknown_format_is_refused():
    out = runner.invoke(app, ["--format", "xml"])
    assert out.exit_code == 2 and "--format" in out.output
