"""`retento bench api` keeps working: a server process, three routes, a table (no timing assertions)."""

import re

from typer.testing import CliRunner

from retento.cli import app


def test_bench_api_runs_a_server_process_and_reports_each_route():
    result = CliRunner().invoke(app, ["bench", "api", "--rate", "20", "--seconds", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    for route in ("GET /bench/hello (baseline)", "GET /api/v1/customers/{id}", "POST /api/v1/events"):
        assert re.search(rf"\| SQLite [\d.]+ \| 1 \| {re.escape(route)} \| 20 \| \d+ \| 0 \|", result.output), result.output


def test_bench_api_runs_chosen_routes_at_a_rate_and_at_capacity():
    result = CliRunner().invoke(app, ["bench", "api", "--rate", "20", "--seconds", "1", "--warmup", "0",
                                      "--routes", "event", "--clients", "4", "--capacity"])
    assert result.exit_code == 0, result.output
    assert "4 clients" in result.output
    assert re.search(r"\| SQLite [\d.]+ \| 1 \| POST /api/v1/events \| 20 \| \d+ \| 0 \|", result.output), result.output
    assert re.search(r"\| SQLite [\d.]+ \| 1 \| POST /api/v1/events \| max \| [\d,]+ \| 0 \|", result.output)
    assert "GET /api/v1/customers" not in result.output


def test_bench_api_names_a_wrong_route():
    result = CliRunner().invoke(app, ["bench", "api", "--routes", "event,nope"])
    assert result.exit_code == 2 and "--routes" in result.output


def test_bench_inbox_reports_ingestion_and_the_delay_to_an_open_stream():
    result = CliRunner().invoke(app, ["bench", "inbox", "--backends", "sqlite", "--server-workers", "1",
                                      "--rate", "20", "--seconds", "1"])
    assert result.exit_code == 0, result.output
    route = re.escape("POST /api/v1/messaging/webhooks/telegram (inbox)")
    row = re.search(rf"\| SQLite [\d.]+ \| 1 \| {route} \| 20 \| \d+ \| 0 \|.*\| (\d+) \(([\d,]+)\) \|", result.output)
    assert row, result.output
    assert int(row.group(2).replace(",", "")) >= 10  # messages seen on the stream (repeats are stored once)
