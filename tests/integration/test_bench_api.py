"""`retento bench api` keeps working: a server process, three routes, a table (no timing assertions)."""

import re

from typer.testing import CliRunner

from retento.cli import app


def test_bench_api_runs_a_server_process_and_reports_each_route():
    result = CliRunner().invoke(app, ["bench", "api", "--rate", "20", "--seconds", "1", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    for route in ("GET /bench/hello (baseline)", "GET /api/v1/customers/{id}", "POST /api/v1/events"):
        assert re.search(rf"\| SQLite [\d.]+ \| 1 \| {re.escape(route)} \| 20 \| \d+ \| 0 \|", result.output), result.output
