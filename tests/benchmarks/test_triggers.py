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


def test_driver_time_counts_executes_fetches_and_commits_and_puts_everything_back(tmp_path):
    """"In the driver" is the statements' whole cost: sqlite3 steps a query's rows as they are fetched and writes
    its pages at the commit, so both count beside the execute; closing leaves SQLAlchemy as it was."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine.cursor import CursorFetchStrategy

    from benchmarks.triggers_setup import DriverTime

    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    original, commit = CursorFetchStrategy.fetchall, engine.dialect.do_commit
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    driver = DriverTime(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (n) WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
                          "WHERE n < 20000) SELECT n FROM c"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT a.n FROM t a WHERE a.n % 3 = 0")).all()
    driver.close()
    assert len(rows) == 6666
    assert all(driver.parts[p] > 0 for p in ("execute", "fetch", "commit")), driver.parts
    assert driver.seconds == sum(driver.parts.values())
    assert CursorFetchStrategy.fetchall is original and engine.dialect.do_commit == commit
    assert "do_commit" not in vars(engine.dialect)
    DriverTime(engine).close()  # a second one after the first is closed is fine
