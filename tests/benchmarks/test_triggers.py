"""`retento bench triggers` keeps working at a tiny size (no timing assertions: figures belong in docs)."""

import re

import pytest
from typer.testing import CliRunner

from retento.cli import app
from tests.conftest import PG_DSN


def test_bench_triggers_runs_on_sqlite_and_prints_both_tables():
    result = CliRunner().invoke(app, ["bench", "triggers", "--events", "300", "--timers", "200", "--rate", "400",
                                      "--backends", "sqlite"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\| SQLite [\d.]+ \| 1 \| 300 \|", result.output)  # one evaluating process on SQLite
    assert re.search(r"\| \d+% \|", result.output)  # of what the statements allow
    assert re.search(r"\| \d+\.\dx \|", result.output)  # the ratio to the driver insert
    assert re.search(r"\| SQLite [\d.]+ \| 200 \| 400 \|( [\d.,]+ \|){7}", result.output)  # incl. driver s, runs/s


def test_bench_triggers_rejects_an_unknown_backend():
    result = CliRunner().invoke(app, ["bench", "triggers", "--events", "10", "--backends", "oracle"])
    assert result.exit_code == 2
    assert "--backends" in result.output


@pytest.mark.postgres
def test_bench_triggers_evaluates_and_fires_with_several_worker_processes_on_postgres():
    """One and two spawned worker processes evaluate copies of the same events and add the same rows; two share
    the due timers, and every timer is reported done exactly once."""
    result = CliRunner().invoke(app, ["bench", "triggers", "--events", "200", "--timers", "300", "--rate", "300",
                                      "--backends", "postgres", "--fire-workers", "2", "--pg-dsn", PG_DSN])
    assert result.exit_code == 0, result.output
    evals = re.findall(r"^\| PostgreSQL [\d.]+ \| ([12]) \| 200 \|.*\| ([\d.]+) \| [\d.]+ \| [\d.]+x \| ([\d,]+) \|$",
                       result.output, re.M)
    assert [p for p, *_ in evals] == ["1", "2"], result.output
    assert evals[0][1:] == evals[1][1:]  # rows written per event, trigger-caused events
    row = re.search(r"\| PostgreSQL [\d.]+ \| 300 \| 300 \| 2 \|.*\| (.*) \|$", result.output, re.M)
    assert row, result.output
    assert sum(int(n.replace(",", "")) for n in re.findall(r"[a-z_]+ ([\d,]+)", row.group(1))) == 300
