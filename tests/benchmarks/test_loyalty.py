"""`retento bench loyalty` keeps working at a tiny size: accrual, expiry and charges with their baselines, one
table row per backend (no timing assertions)."""

import re

from typer.testing import CliRunner

from retento.cli import app


def test_bench_loyalty_reports_accrual_expiry_and_charges_on_both_backends():
    result = CliRunner().invoke(app, ["bench", "loyalty", "--orders", "1000", "--charges", "10"])
    assert result.exit_code == 0, result.output
    for backend in ("SQLite", "PostgreSQL"):
        assert re.search(rf"\| {backend} [\d.]+ \| 1,000 \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d,]+ \| [\d.]+ \(1,000\) \|",
                         result.output), result.output


def test_bench_loyalty_names_a_wrong_backend():
    result = CliRunner().invoke(app, ["bench", "loyalty", "--backends", "oracle"])
    assert result.exit_code == 2 and "--backends" in result.output
