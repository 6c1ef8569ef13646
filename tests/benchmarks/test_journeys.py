"""`retento bench journeys` keeps working at a tiny size: the transitions of every run against the driver insert of
the same step rows, with 1 and 2 worker processes on PostgreSQL (no timing assertions; the lag part, which takes
over two minutes of wall time, is left out)."""

import re

from typer.testing import CliRunner

from retento.cli import app


def test_bench_journeys_reports_transitions_on_both_backends():
    result = CliRunner().invoke(app, ["bench", "journeys", "--customers", "100", "--lag-seconds", "0"])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"\| (SQLite|PostgreSQL) [\d.]+ \| 100 \| (\d) \| 500 \| ", result.output)
    assert sorted(rows) == [("PostgreSQL", "1"), ("PostgreSQL", "2"), ("SQLite", "1")], result.output
    assert "journey_steps 500, msg_runs 100, tasks 100, customer_tags 100" in result.output


def test_bench_journeys_names_a_wrong_option():
    assert CliRunner().invoke(app, ["bench", "journeys", "--backends", "oracle"]).exit_code == 2
    result = CliRunner().invoke(app, ["bench", "journeys", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output
