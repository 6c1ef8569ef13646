"""`retento bench triggers` keeps working at a tiny size (no timing assertions: figures belong in docs)."""

import re
import time

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


@pytest.mark.postgres
def test_autovacuum_stand_in_vacuums_and_analyzes_a_table_that_grew(monkeypatch):
    """On a server with autovacuum off (the bench machine), `Autovacuum` does what autovacuum's rules would: a table
    that grew past its thresholds is vacuumed and analyzed while the phase runs; nothing happens once it is done."""
    from benchmarks.targets import Autovacuum, fresh

    monkeypatch.setattr(Autovacuum, "NAPTIME", 0.05)
    with fresh("postgres", PG_DSN) as target:
        with target.raw() as conn:
            conn.autocommit = True
            autovacuum_on = conn.execute("SHOW autovacuum").fetchone()[0] == "on"
            conn.execute("CREATE TABLE grown (id bigint PRIMARY KEY, v text)")
            conn.execute("INSERT INTO grown SELECT g, 'x' FROM generate_series(1, 5000) g")
        # the writer's connection is closed: its counters reached the server's statistics
        with Autovacuum(target) as av:
            deadline = time.monotonic() + 30
            while not autovacuum_on and av.count == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        with target.raw() as conn:
            vacuumed, analyzed = conn.execute("SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL "
                                              "FROM pg_stat_user_tables WHERE relname = 'grown'").fetchone()
    if autovacuum_on:
        assert av.count == 0  # the server's own autovacuum does it
    else:
        assert av.count >= 1 and vacuumed and analyzed
