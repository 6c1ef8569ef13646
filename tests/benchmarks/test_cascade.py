"""`retento bench cascade` keeps working at a tiny size (no timing assertions: figures belong in docs)."""

import re

from typer.testing import CliRunner

from retento.cli import app as cli


def test_bench_cascade_runs_on_sqlite():
    out = CliRunner().invoke(cli, ["bench", "cascade", "--recipients", "300", "--deliver", "50",
                                   "--backends", "sqlite"])
    assert out.exit_code == 0, out.output
    assert re.search(r"\| SQLite [\d.]+ \| 300 \|", out.output) and re.search(r"\| \d+\.\d\dx \|$", out.output,
                                                                               re.M)
