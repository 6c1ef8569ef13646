"""`retento bench segments` keeps working: PostgreSQL and DuckDB give the same answers to the same queries
(no timing assertions: figures belong in docs/benchmarks.md)."""

import pytest
from typer.testing import CliRunner

from retento.cli import app


@pytest.mark.postgres
def test_bench_segments_runs_small():
    result = CliRunner().invoke(app, ["bench", "segments", "--customers", "300", "--orders", "3000",
                                      "--events", "100"])
    assert result.exit_code == 0, result.output
    assert "| repeat |" in result.output and "| RFM values |" in result.output
    assert "100 order events in" in result.output and "live count p95" in result.output
