"""`retento bench ingest` keeps working (no timing assertions: figures belong in docs/benchmarks.md)."""

import re

from typer.testing import CliRunner

from retento.cli import app


def test_bench_ingest_runs_on_sqlite_and_prints_a_ratio():
    result = CliRunner().invoke(
        app, ["bench", "ingest", "--orders", "300", "--batch", "100", "--backends", "sqlite"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"\| SQLite [\d.]+ \| 300 \|", result.output)
    assert re.search(r"\| \d+\.\d\dx \|", result.output)


def test_bench_ingest_rejects_an_unknown_backend():
    result = CliRunner().invoke(app, ["bench", "ingest", "--orders", "10", "--backends", "oracle"])
    assert result.exit_code == 2
    assert "--backends" in result.output
