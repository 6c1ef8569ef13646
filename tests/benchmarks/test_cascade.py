"""`retento bench cascade` keeps working at a tiny size (no timing assertions: figures belong in docs)."""

import re

from typer.testing import CliRunner

from retento.cli import app as cli


def test_bench_cascade_runs_on_sqlite():
    out = CliRunner().invoke(cli, ["bench", "cascade", "--recipients", "300", "--deliver", "50", "--emails", "200",
                                   "--wait-minutes", "10", "--backends", "sqlite"])
    assert out.exit_code == 0, out.output
    assert re.search(r"\| SQLite [\d.]+ \| 300 \|", out.output) and re.search(r"\| \d+\.\d\dx \|$", out.output,
                                                                               re.M)
    # the per-message window: 200 emails, each granted the 600 s window (within the 1 s tick) from its own send
    row = re.search(r"^\| SQLite [\d.]+ \| 200 \| 1 \|.*\| 600 \| 1 \| ([\d.,]+) / [\d.,]+ / [\d.,]+ / ([\d.,]+) \|",
                    out.output, re.M)
    assert row, out.output
    low, high = (float(x.replace(",", "")) for x in row.groups())
    assert 600 <= low <= high <= 601  # shown to 0.1 s
