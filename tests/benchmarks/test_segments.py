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
    assert "the segment path alone" in " ".join(result.output.split())  # the split of the incremental time


@pytest.mark.postgres
def test_bench_segments_reuses_a_kept_database():
    import os
    import re

    import psycopg

    from benchmarks.targets import DEFAULT_PG_DSN, _conninfo

    runner = CliRunner()
    args = ["bench", "segments", "--customers", "200", "--orders", "2000", "--events", "20", "--count-runs", "1"]
    first = runner.invoke(app, [*args, "--keep"])
    assert first.exit_code == 0, first.output
    name = re.search(r"database kept: (\S+)", first.output).group(1)
    try:
        again = runner.invoke(app, [*args, "--reuse", name])
        assert again.exit_code == 0, again.output
        assert "| repeat |" in again.output and "20 order events in" in again.output
        wrong = runner.invoke(app, [*args[:2], "--customers", "201", *args[4:], "--reuse", name])
        assert wrong.exit_code != 0 and "pass the --customers and --orders" in str(wrong.exception)
    finally:
        with psycopg.connect(_conninfo(os.environ.get("RETENTO_TEST_PG_DSN", DEFAULT_PG_DSN)), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
